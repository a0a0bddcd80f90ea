"""Dispatching the vec4 + subgroup-shuffle GEMM core (shaders/common/gemm_shuffle.glsl) where it
applies, else None so the caller uses the scalar core (gemm.py). Its tiles live here only."""

from __future__ import annotations

import os

from .. import tuning

# Each invocation computes TM rows x 4 NC columns; SHARE lanes hold one tile's A rows; WG_X
# invocations per workgroup. Passed to the shader as specialization constants (`tile_constants`).
# TM 32 x 4 columns is the default: on 2-core lavapipe (texel reads) it beat TM 32 x 8 columns on
# each of the MLP's GEMMs (e.g. 256x784x128: 0.94 vs 1.08 ms, 128x256x256 forward 0.37 vs 0.64) and
# at 1024^3 (32 vs 35 ms), and the MLP step by ~5% in alternating runs: half the accumulators per
# lane, so fewer spilled registers for the same loads per FMA.
TILE = {"TM": 32, "NC": 1, "WG_X": 16, "SHARE": 8}
# For a GEMM with a handful of rows (Linear's transposed forward for few outputs, M = out_features):
# one subgroup per workgroup, 8 rows x 4 columns per lane (M=10, N=128, K=256: 2.2x faster than TILE).
FEW_ROWS_TILE = {"TM": 8, "NC": 1, "WG_X": 8, "SHARE": 8}
# Convolutions of fewer than 32 channels (conv.py's defaults): 16 rows x 8 columns a lane rather than
# leave half of TILE's rows idle (a 16-channel 3x3 forward at batch 64, 32x32: 6.7 ms against 11.0
# on lavapipe), and 16 x 4 in workgroups of 32 columns for a weight gradient of few columns (16
# channels x 9 taps = 144: 6.8 ms against 9.9 with 128-column workgroups).
HALF_ROWS_TILE = {"TM": 16, "NC": 2, "WG_X": 16, "SHARE": 8}
NARROW_TILE = {"TM": 16, "NC": 1, "WG_X": 8, "SHARE": 8}
# The family VKBACKPROP_TUNE=1 chooses from (vkbackprop/tuning.py); TM a multiple of SHARE. The
# 64-row and 16-column tiles fit large shapes (52-55 GFLOP/s at 1024^3 for TM 32 x 16 columns) and
# starve small ones of workgroups; 8 rows suit a handful of columns. Not TM 64 x 16 columns: llvmpipe
# compiles a pipeline at its first dispatch, 30 s for that tile's 256 vec4 accumulators (7 s for
# 128, 0.5 for 32; each shape is its own pipeline), and it won none of the 52 shape classes of a tuned
# `vkbackprop bench --suite steps` (docs/benchmarks.md, session 11).
TILES = [TILE, FEW_ROWS_TILE, HALF_ROWS_TILE, NARROW_TILE, {"TM": 32, "NC": 4, "WG_X": 8, "SHARE": 8},
         {"TM": 64, "NC": 2, "WG_X": 8, "SHARE": 8}, {"TM": 32, "NC": 1, "WG_X": 32, "SHARE": 8},
         {"TM": 16, "NC": 4, "WG_X": 8, "SHARE": 8}, {"TM": 8, "NC": 1, "WG_X": 32, "SHARE": 8}]

# Marks the texel-read variant of a shader in the tuning cache's keys.
TEXEL_SUFFIX = " (texel reads)"

# Which kernel gemm dispatches use: "auto" (the shuffle core on CPU devices, where it was
# measured; GPUs keep the scalar core until the tuning issue measures them), "shuffle", "scalar".
KERNEL = "auto"
KERNELS = ("auto", "shuffle", "scalar")
# Overrides KERNEL for a process, e.g. to measure the shuffle core on a GPU.
KERNEL_ENV = "VKBACKPROP_GEMM_KERNEL"


def chosen_kernel() -> str:
    """KERNEL, or the kernel VKBACKPROP_GEMM_KERNEL names (ValueError for any other value)."""
    kernel = os.environ.get(KERNEL_ENV) or KERNEL
    if kernel not in KERNELS:
        raise ValueError(f"{KERNEL_ENV} must be one of {', '.join(KERNELS)}, got {kernel!r}")
    return kernel


def chosen(device) -> bool:
    """Whether GEMMs on this device take the shuffle core where their shapes allow (the kernel
    choice alone: `applies` checks a shape too)."""
    kernel = chosen_kernel()
    return kernel == "shuffle" or (kernel == "auto" and device.properties["device_type"] == "Cpu")


def applies(device, m: int, n: int, k: int, b_n_contiguous: bool, a_m_contiguous: bool = False) -> bool:
    """Whether the shuffle core can run this shape and is chosen. Its vec4 loads need whole quads:
    A stored [m][k] needs k % 4 == 0, A stored [k][m] (a_m_contiguous) m % 4 == 0; B stored [k][n]
    (b_n_contiguous) needs n % 4 == 0, B stored [n][k] k % 4 == 0. (With A [k][m] and B [k][n], the
    core steps through the k % 4 tail one k at a time.)"""
    if not chosen(device):
        return False
    a_ok = m % 4 == 0 if a_m_contiguous else k % 4 == 0
    b_ok = n % 4 == 0 if b_n_contiguous else k % 4 == 0
    return a_ok and b_ok


# A tile's keys and the core's specialization constants they set.
_CONSTANTS = {"TM": "TM", "NC": "NC", "WG_X": "local_size_x", "SHARE": "SHARE"}
_KEYS = tuple(_CONSTANTS)


def check_shape(tile: dict, what: str, a_m_contiguous: bool = False) -> None:
    """ValueError unless the core computes correctly with `tile`: positive TM, NC, WG_X, SHARE; TM a
    multiple of SHARE (each sharing lane holds whole rows of the tile); with A stored [k][m] SHARE a
    multiple of 4 (a sharing lane loads 4 rows at once)."""
    if set(tile) != set(_KEYS) or not all(isinstance(tile[k], int) and tile[k] > 0 for k in _KEYS):
        raise ValueError(f"{what}: a shuffle tile has positive integers {', '.join(_KEYS)}, got {tile}")
    if tile["TM"] % tile["SHARE"]:
        raise ValueError(f"{what}: TM must be a multiple of SHARE, got {tile}")
    if a_m_contiguous and tile["SHARE"] % 4:
        raise ValueError(f"{what}: A stored [k][m] needs SHARE % 4 == 0, got {tile}")


def tile_constants(tile: dict) -> dict:
    """A tile as the core's specialization constants (the workgroup size is local_size_x)."""
    return {_CONSTANTS[key]: value for key, value in tile.items()}


def tile_of(constants: dict) -> dict | None:
    """The tile a dispatch's specialization constants hold (`tile_constants` read back); None
    for a dispatch of another kind."""
    if not all(name in constants for name in _CONSTANTS.values()):
        return None
    return {key: constants[name] for key, name in _CONSTANTS.items()}


def fixed_loop_iterations(tile: dict) -> int:
    """Loop iterations one invocation may run besides the k loop's one per quad: headroom for the
    core's short fixed loops should the compiler keep any."""
    return 4 * (tile["TM"] * tile["NC"] + 8)


def columns(tile: dict) -> int:
    """Output columns one workgroup of `tile` covers."""
    return 4 * tile["NC"] * tile["WG_X"]


def grid(tile: dict, m: int, n: int) -> tuple:
    """Workgroups (x, y) of a dispatch of `tile` computing an m x n result."""
    return -(-n // columns(tile)), -(-m // tile["TM"])


def shuffle_dispatch(device, shader: str, buffers: dict, m: int, n: int, k: int,
                     constants: dict | None = None, name: str | None = None, tile: dict | None = None,
                     defines: dict | None = None, per_invocation: dict | None = None, z: int = 1):
    """A dispatch of `shader` (which includes common/gemm_shuffle.glsl) computing an m x n result
    over k; check `applies` first. `tile`: the default (TILE if None); a tuned tile cached for this
    shape class wins. `defines`: the shader's own -D switches (e.g. A_M_CONTIGUOUS).
    `per_invocation`: {binding: buffer name} for outputs of one float per invocation of the grid
    (the core's STORE_SQUARES), made here once the tile is known; `Dispatch.bound` has them. `z`
    workgroup layers, e.g. one per convolution group (the core leaves gl_WorkGroupID.z to the shader)."""
    def check(tile):
        check_shape(tile, shader, bool((defines or {}).get("A_M_CONTIGUOUS")))
        device.check_loop(k // 4 + fixed_loop_iterations(tile), f"{shader} (reduction length {k})")

    reads = device.read_defines(buffers.values())   # texel or storage buffers (common/vec4_input.glsl)

    def build(tile, bound=buffers):
        program = device.program(shader, dict(reads, **(defines or {})))
        groups = grid(tile, m, n)
        invocations = groups[0] * groups[1] * tile["WG_X"]
        outputs = {binding: device.buffer(buffer_name, (invocations,))
                   for binding, buffer_name in (per_invocation or {}).items()}
        return device.dispatch(program, {**bound, **outputs}, groups + (z,),
                               dict(M=m, N=n, K=k, **tile_constants(tile), **(constants or {})), name=name)
    return build(tuning.planned_tile(check, device, tuning_name(shader, dict(reads, **(defines or {}))),
                                     (m, n, k), TILES, tile or TILE, build, buffers))


def tuning_name(shader: str, defines: dict) -> str:
    """The tuning cache's name for a variant of `shader` compiled with `defines`: texel and
    storage-buffer reads are tuned apart (their costs differ), and so are the shader's own switches."""
    switches = sorted((k, v) for k, v in defines.items() if k != "TEXEL_READS")
    return (shader + (TEXEL_SUFFIX if defines.get("TEXEL_READS") else "")
            + "".join(f" ({k}={v})" for k, v in switches))
