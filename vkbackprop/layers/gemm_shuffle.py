"""Dispatching the vec4 + subgroup-shuffle GEMM core (shaders/common/gemm_shuffle.glsl) where it
applies, else None so the caller uses the scalar core (gemm.py). Its tiles live here only."""

from __future__ import annotations

from .. import tuning

# Rows per invocation: 32 when A is [M][K] (one shuffle per row and k-quad), 8 when A is [K][M]
# (four shuffles per row block; 16 rows already spill on lavapipe: 2 GFLOP/s instead of 16).
# SHARE lanes hold one tile's A rows; WG_X invocations per workgroup, 4 columns each.
TILE_A_ROWS = {"TM": 32, "WG_X": 32, "SHARE": 8}
TILE_A_COLUMNS = {"TM": 8, "WG_X": 32, "SHARE": 8}
# The families VKBACKPROP_TUNE=1 chooses from (vkbackprop/tuning.py); TM a multiple of SHARE, and
# both of 4 when A is [K][M].
TILES_A_ROWS = [TILE_A_ROWS, {"TM": 32, "WG_X": 64, "SHARE": 8}, {"TM": 16, "WG_X": 32, "SHARE": 8},
                {"TM": 8, "WG_X": 32, "SHARE": 8}]
TILES_A_COLUMNS = [TILE_A_COLUMNS, {"TM": 8, "WG_X": 64, "SHARE": 8}, {"TM": 4, "WG_X": 32, "SHARE": 4},
                   {"TM": 16, "WG_X": 32, "SHARE": 8}]

# Which kernel gemm dispatches use: "auto" (the shuffle core on CPU devices, where it was
# measured; GPUs keep the scalar core until the tuning issue measures them), "shuffle", "scalar".
KERNEL = "auto"


def applies(device, m: int, n: int, k: int, a_k_contiguous: bool, b_n_contiguous: bool) -> bool:
    """Whether the shuffle core can run this shape (vec4 rows need multiples of 4) and is chosen."""
    if KERNEL == "scalar" or (KERNEL == "auto" and device.properties["device_type"] != "Cpu"):
        return False
    return k % 4 == 0 and (a_k_contiguous or m % 4 == 0) and (not b_n_contiguous or n % 4 == 0)


def shuffle_dispatch(device, shader: str, buffers: dict, m: int, n: int, k: int, a_k_contiguous: bool,
                     constants: dict | None = None, name: str | None = None):
    """A dispatch of `shader` (which includes common/gemm_shuffle.glsl with the A layout given by
    `a_k_contiguous`) computing an m x n result over k; check `applies` first."""
    def check(tile):
        # The k loop over quads, plus headroom for the core's short fixed loops should the compiler keep any.
        device.check_loop(k // 4 + 4 * (tile["TM"] + 8), f"{shader} (reduction length {k})")

    def build(tile):
        program = device.program(shader, tile)
        groups = (-(-n // (4 * tile["WG_X"])), -(-m // tile["TM"]))
        return device.dispatch(program, buffers, groups, dict(M=m, N=n, K=k, **(constants or {})), name=name)
    default, family = (TILE_A_ROWS, TILES_A_ROWS) if a_k_contiguous else (TILE_A_COLUMNS, TILES_A_COLUMNS)
    return build(tuning.planned_tile(check, device, shader, (m, n, k), family, default, build))
