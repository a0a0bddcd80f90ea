"""Dispatching the shared GEMM core (shaders/common/gemm.glsl, or common/gemm_tiled.glsl for the
shared-memory tiles): its tile sizes live here only."""

from __future__ import annotations

from .. import tuning

# Each invocation computes TM x TN outputs; a workgroup of WG_X x WG_Y invocations covers
# WG_X*TN columns and WG_Y*TM rows. Passed to the shader as specialization constants
# (`tile_constants`); a BK selects the shared-memory core, compiled apart (`tile_defines`).
TILE = {"TM": 8, "TN": 4, "WG_X": 64, "WG_Y": 1}
# A 16 x 16 block per invocation: ~2.3x faster than TILE for convolutions on lavapipe, ~3 s to compile.
CPU_TILE = {"TM": 16, "TN": 16, "WG_X": 8, "WG_Y": 1}
# The family VKBACKPROP_TUNE=1 chooses from per (device, shader, shape class) (vkbackprop/tuning.py).
PLAIN_TILES = [TILE, CPU_TILE, {"TM": 16, "TN": 8, "WG_X": 16, "WG_Y": 1}, {"TM": 4, "TN": 4, "WG_X": 16, "WG_Y": 4},
               {"TM": 8, "TN": 8, "WG_X": 32, "WG_Y": 2}]
# Shared-memory tiles (a BK selects common/gemm_tiled.glsl): the workgroup copies BK-deep slices of
# its WG_Y*TM rows of A and WG_X*TN columns of B into shared memory and every invocation reads them
# there. For GPUs, where the issue measured such tiles on an H100 at 19 TFLOP/s (1024^3) and 24-27
# (4096^3); 128 x 128 blocks for large products, 64-row blocks for few rows (M = 128 starves big
# blocks of workgroups); the last, 128 x 128 with 2/3 of the barriers, needs 25 KiB (BK 16 would
# need 33, more than lavapipe's 32 KiB: untestable here). At most 256 invocations. `fits` checks
# the device (Vulkan guarantees 16 KiB and 128 invocations; GPUs have 32-64 KiB and 1024). On
# lavapipe (512^3 linear forward) the first tile ran at 14.1 GFLOP/s, between TILE (7.7) and
# CPU_TILE (18.1).
SHARED_TILES = [{"TM": 8, "TN": 8, "WG_X": 16, "WG_Y": 16, "BK": 8}, {"TM": 4, "TN": 8, "WG_X": 16, "WG_Y": 16, "BK": 8},
                {"TM": 8, "TN": 4, "WG_X": 16, "WG_Y": 8, "BK": 8}, {"TM": 4, "TN": 4, "WG_X": 16, "WG_Y": 16, "BK": 16},
                {"TM": 8, "TN": 8, "WG_X": 16, "WG_Y": 16, "BK": 12}]
TILES = PLAIN_TILES + SHARED_TILES


# A tile's keys and the core's specialization constants they set (BK: shared-memory tiles only).
_CONSTANTS = {"TM": "TM", "TN": "TN", "WG_X": "local_size_x", "WG_Y": "local_size_y", "BK": "BK"}
_KEYS = ("TM", "TN", "WG_X", "WG_Y")


def check_shape(tile: dict, what: str) -> None:
    """ValueError unless `tile` is a tile the cores compute correctly with: positive TM, TN, WG_X,
    WG_Y (and BK), and for the shared-memory core whole quads (TM, TN multiples of 4) and equal
    shares of each step's copies (BM*BK and BK*BN multiples of the workgroup's invocations)."""
    keys = _KEYS + (("BK",) if "BK" in tile else ())
    if set(tile) != set(keys) or not all(isinstance(tile[k], int) and tile[k] > 0 for k in keys):
        raise ValueError(f"{what}: a tile has positive integers {', '.join(_KEYS)} and optionally BK, got {tile}")
    if "BK" not in tile:
        return
    invocations = tile["WG_X"] * tile["WG_Y"]
    if tile["TM"] % 4 or tile["TN"] % 4:
        raise ValueError(f"{what}: the shared-memory core reads whole quads: TM and TN must be multiples of 4, "
                         f"got {tile}")
    if (tile["WG_Y"] * tile["TM"] * tile["BK"]) % invocations or (tile["BK"] * tile["WG_X"] * tile["TN"]) % invocations:
        raise ValueError(f"{what}: each invocation copies equal shares: WG_Y*TM*BK and BK*WG_X*TN must be "
                         f"multiples of WG_X*WG_Y = {invocations}, got {tile}")


def tile_defines(tile: dict) -> dict:
    """The -D defines a tile's core is compiled with: the shared-memory core for tiles with a BK."""
    return {"SHARED_MEMORY": 1} if "BK" in tile else {}


def tile_constants(tile: dict) -> dict:
    """A tile as the core's specialization constants (the workgroup size is local_size_x/y)."""
    return {_CONSTANTS[key]: value for key, value in tile.items()}


def tile_of(constants: dict) -> dict | None:
    """The tile a dispatch's specialization constants hold (`tile_constants` read back); None
    for a dispatch of another kind."""
    if not all(_CONSTANTS[key] in constants for key in _KEYS):
        return None
    return {key: constants[name] for key, name in _CONSTANTS.items() if name in constants}


def shared_memory_bytes(tile: dict) -> int:
    """Shared memory a tile's workgroup holds at most: two BK-deep slices of its A rows and B
    columns, each row of the slices padded by a quad (common/gemm_tiled.glsl pads a block copied
    along k)."""
    if "BK" not in tile:
        return 0
    return 2 * tile["BK"] * (tile["WG_Y"] * tile["TM"] + 4 + tile["WG_X"] * tile["TN"] + 4) * 4


def loop_iterations(k: int, tile: dict = TILE) -> int:
    """Loop iterations of one invocation: the k loop (a shared-memory tile's steps and their BK
    terms each), plus the core's short fixed loops should the compiler keep any."""
    if "BK" in tile:
        return k + 2 * -(-k // tile["BK"]) + 4 * (tile["TM"] + tile["TN"]) + 8 * tile["BK"]
    return k + 4 * (tile["TM"] + tile["TN"])


def fits(device, tile: dict, what: str) -> None:
    """ValueError if the device cannot run `tile`'s workgroup (size or shared memory)."""
    invocations, shared = tile["WG_X"] * tile["WG_Y"], shared_memory_bytes(tile)
    if invocations > device.properties["max_work_group_invocations"]:
        raise ValueError(f"{what}: tile {tile} has {invocations} invocations per workgroup; "
                         f"{device.name} allows {device.properties['max_work_group_invocations']}")
    if shared > device.properties["max_shared_memory_size"]:
        raise ValueError(f"{what}: tile {tile} needs {shared} bytes of shared memory; "
                         f"{device.name} has {device.properties['max_shared_memory_size']}")


def check_tile(device, shader: str, k: int, tile: dict) -> None:
    """ValueError if `tile` cannot run `shader` over a reduction of k terms on this device."""
    check_shape(tile, shader)
    fits(device, tile, shader)
    device.check_loop(loop_iterations(k, tile), f"{shader} (reduction length {k})")


def tile_dispatch(device, shader: str, buffers: dict, m: int, n: int, k: int, tile: dict,
                  constants: dict | None = None, name: str | None = None, z: int = 1):
    """A dispatch of `shader` with exactly `tile` (no tuning, no checks: see check_tile)."""
    program = device.program(shader, tile_defines(tile))
    groups = (-(-n // (tile["WG_X"] * tile["TN"])), -(-m // (tile["WG_Y"] * tile["TM"])), z)
    return device.dispatch(program, buffers, groups, dict(M=m, N=n, K=k, **tile_constants(tile), **(constants or {})),
                           name=name)


def gemm_dispatch(device, shader: str, buffers: dict, m: int, n: int, k: int,
                  constants: dict | None = None, name: str | None = None, z: int = 1, tile: dict | None = None):
    """A dispatch of `shader` (which includes common/gemm.glsl) computing an m x n result over k
    (the k loop's length: a split-K shader's slice). `z` workgroup layers, e.g. one per
    convolution group: the shader tells them apart by gl_WorkGroupID.z. `tile`: the default tile
    (keys TM, TN, WG_X, WG_Y and for shared-memory tiles BK; TILE if None); a tuned tile cached for
    this shape class wins."""
    def build(tile, bound=buffers):
        return tile_dispatch(device, shader, bound, m, n, k, tile, constants, name, z)
    return build(tuning.planned_tile(lambda tile: check_tile(device, shader, k, tile), device, shader, (m, n, k),
                                     TILES, tile or TILE, build, buffers))
