"""Dispatching the shared GEMM core (shaders/common/gemm.glsl): its tile sizes live here only."""

from __future__ import annotations

# Each invocation computes TM x TN outputs; a workgroup of WG_X x WG_Y invocations covers
# WG_X*TN columns and WG_Y*TM rows. Passed to the shader as -D defines.
TILE = {"TM": 8, "TN": 4, "WG_X": 64, "WG_Y": 1}


def gemm_dispatch(device, shader: str, buffers: dict, m: int, n: int, k: int,
                  constants: dict | None = None, name: str | None = None):
    """A dispatch of `shader` (which includes common/gemm.glsl) computing an m x n result over k."""
    # The k loop, plus headroom for the core's short fixed loops should the compiler keep any.
    device.check_loop(k + 4 * (TILE["TM"] + TILE["TN"]), f"{shader} (reduction length {k})")
    program = device.program(shader, TILE)
    groups = (-(-n // (TILE["WG_X"] * TILE["TN"])), -(-m // (TILE["WG_Y"] * TILE["TM"])))
    return device.dispatch(program, buffers, groups, dict(M=m, N=n, K=k, **(constants or {})), name=name)
