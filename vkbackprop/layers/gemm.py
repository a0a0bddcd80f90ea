"""Dispatching the shared GEMM core (shaders/common/gemm.glsl): its tile sizes live here only."""

from __future__ import annotations

from .. import tuning

# Each invocation computes TM x TN outputs; a workgroup of WG_X x WG_Y invocations covers
# WG_X*TN columns and WG_Y*TM rows. Passed to the shader as -D defines.
TILE = {"TM": 8, "TN": 4, "WG_X": 64, "WG_Y": 1}
# A 16 x 16 block per invocation: ~2.3x faster than TILE for convolutions on lavapipe, ~3 s to compile.
CPU_TILE = {"TM": 16, "TN": 16, "WG_X": 8, "WG_Y": 1}
# The family VKBACKPROP_TUNE=1 chooses from per (device, shader, shape class) (vkbackprop/tuning.py).
TILES = [TILE, CPU_TILE, {"TM": 16, "TN": 8, "WG_X": 16, "WG_Y": 1}, {"TM": 4, "TN": 4, "WG_X": 16, "WG_Y": 4},
         {"TM": 8, "TN": 8, "WG_X": 32, "WG_Y": 2}]


def loop_iterations(k: int, tile: dict = TILE) -> int:
    """Loop iterations of one invocation: the k loop, plus the core's short fixed loops should the
    compiler keep any."""
    return k + 4 * (tile["TM"] + tile["TN"])


def gemm_dispatch(device, shader: str, buffers: dict, m: int, n: int, k: int,
                  constants: dict | None = None, name: str | None = None, z: int = 1, tile: dict | None = None):
    """A dispatch of `shader` (which includes common/gemm.glsl) computing an m x n result over k
    (the k loop's length: a split-K shader's slice). `z` workgroup layers, e.g. one per
    convolution group: the shader tells them apart by gl_WorkGroupID.z. `tile`: the default tile
    (keys TM, TN, WG_X, WG_Y; TILE if None); a tuned tile cached for this shape class wins."""
    def check(tile):
        device.check_loop(loop_iterations(k, tile), f"{shader} (reduction length {k})")

    def build(tile, bound=buffers):
        program = device.program(shader, tile)
        groups = (-(-n // (tile["WG_X"] * tile["TN"])), -(-m // (tile["WG_Y"] * tile["TM"])), z)
        return device.dispatch(program, bound, groups, dict(M=m, N=n, K=k, **(constants or {})), name=name)
    return build(tuning.planned_tile(check, device, shader, (m, n, k), TILES, tile or TILE, build, buffers))
