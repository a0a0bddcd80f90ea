"""Dispatching the shared GEMM core (shaders/common/gemm.glsl): its tile sizes live here only."""

from __future__ import annotations

# Each invocation computes TM x TN outputs; a workgroup of WG_X x WG_Y invocations covers
# WG_X*TN columns and WG_Y*TM rows. Passed to the shader as -D defines.
TILE = {"TM": 8, "TN": 4, "WG_X": 64, "WG_Y": 1}


def loop_iterations(k: int, tile: dict = TILE) -> int:
    """Loop iterations of one invocation: the k loop, plus the core's short fixed loops should the
    compiler keep any."""
    return k + 4 * (tile["TM"] + tile["TN"])


def gemm_dispatch(device, shader: str, buffers: dict, m: int, n: int, k: int,
                  constants: dict | None = None, name: str | None = None, z: int = 1, tile: dict | None = None):
    """A dispatch of `shader` (which includes common/gemm.glsl) computing an m x n result over k
    (the k loop's length: a split-K shader's slice). `z` workgroup layers, e.g. one per
    convolution group: the shader tells them apart by gl_WorkGroupID.z. `tile`: other tile sizes
    than TILE (keys TM, TN, WG_X, WG_Y)."""
    tile = tile or TILE
    device.check_loop(loop_iterations(k, tile), f"{shader} (reduction length {k})")
    program = device.program(shader, tile)
    groups = (-(-n // (tile["WG_X"] * tile["TN"])), -(-m // (tile["WG_Y"] * tile["TM"])), z)
    return device.dispatch(program, buffers, groups, dict(M=m, N=n, K=k, **(constants or {})), name=name)
