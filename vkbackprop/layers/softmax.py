"""Softmax and LogSoftmax over the feature axis of (batch, features) activations (PyTorch semantics:
torch.nn names, outputs and derivatives). Rows are independent: one shader invocation per row,
the row maximum subtracted first (no overflow for huge logits), columns summed in a fixed order
(a step is bit-reproducible); rows of whole quads are read and written as vec4 quads (softmax
1024x1000 on lavapipe: forward 3.1 -> 1.8 ms, backward 3.5 -> 1.5). Backward uses the saved output y."""

from __future__ import annotations

import numbers

from .activation import quad_views
from .base import LayerIO, Module


def loop_steps(cols: int) -> int:
    """Iterations of one loop over a row: its quads where the row holds whole quads (the shaders
    then read x4 .. views), else its values."""
    return cols // 4 if cols % 4 == 0 else cols


def forward_loop_iterations(cols: int) -> int:
    """What one forward invocation spends of lavapipe's loop limit: the max, sum and write loops
    run n - 1, n and n times (n = loop_steps), and all loops of an invocation draw on one counter,
    which also counts the pass that leaves each loop (measured: 21,843 columns work, 21,845 do not;
    on quads 87,376 work, 87,380 do not)."""
    n = loop_steps(cols)
    return (n - 1) + n + n + 2


def backward_loop_iterations(cols: int) -> int:
    """The same for backward: the sum and write loops, n each, plus the exit of the first."""
    n = loop_steps(cols)
    return n + n + 1


class _RowwiseSoftmax(Module):
    forward_shader = ""
    backward_shader = ""
    backward_reads = ("y",)

    def __init__(self, dim: int = -1):
        # Activations are (batch, features): the feature axis is dim 1, or -1 counted from the end.
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or int(dim) not in (-1, 1):
            raise ValueError(f"{type(self).__name__}: dim must be -1 or 1 (the feature axis of "
                             f"(batch, features) activations), got {dim!r}")
        self.dim = int(dim)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim})"

    def _dispatch(self, io: LayerIO, shader: str, buffers: dict, iterations: int):
        rows, cols = io.x.shape
        device = io.device
        device.check_loop(iterations, f"{type(self).__name__} over {cols} features")
        program = device.program(shader)
        return device.dispatch(program, {**buffers, **quad_views(program, buffers)},
                               device.grid_1d(rows, program.local_size[0]), {"ROWS": rows, "COLS": cols})

    def forward(self, io: LayerIO) -> list:
        return [self._dispatch(io, self.forward_shader, {"x": io.x, "y": io.y},
                               forward_loop_iterations(io.x.shape[1]))]

    def backward(self, io: LayerIO) -> list:
        if io.dx is None:
            return []
        return [self._dispatch(io, self.backward_shader, {"y": io.y, "dy": io.dy, "dx": io.dx},
                               backward_loop_iterations(io.x.shape[1]))]


class Softmax(_RowwiseSoftmax):
    """y = exp(x - max) / sum(exp(x - max)) along the features of each row; backward
    dx = y * (dy - sum(dy * y)) from the saved output."""
    forward_shader = "softmax/forward.comp"
    backward_shader = "softmax/backward.comp"


class LogSoftmax(_RowwiseSoftmax):
    """y = (x - max) - log(sum(exp(x - max))) along the features of each row; backward
    dx = dy - exp(y) * sum(dy) from the saved output."""
    forward_shader = "log_softmax/forward.comp"
    backward_shader = "log_softmax/backward.comp"
