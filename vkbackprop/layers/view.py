"""Views: layers that only reinterpret a value's per-sample shape. The plan gives their output the
input's buffer (no copy, no dispatch) and routes their output gradient straight into the input's."""

from __future__ import annotations

import math

import numpy as np

from .base import Module


class View(Module):
    is_view = True

    def forward(self, io) -> list:
        return []

    def backward(self, io) -> list:
        return []


class Identity(View):
    """y = x."""

    def __repr__(self) -> str:
        return "Identity()"

    def output_shape(self, *shapes) -> tuple:
        if len(shapes) != 1:
            raise ValueError(f"Identity takes one input, got {len(shapes)}")
        return shapes[0]


class Flatten(View):
    """Merges per-sample dims start_dim..end_dim (counted with the batch as dim 0, like torch.nn.Flatten)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        for what, d in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
                raise ValueError(f"Flatten: {what} must be an int, got {d!r}")
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def __repr__(self) -> str:
        return f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim})"

    def output_shape(self, *shapes) -> tuple:
        if len(shapes) != 1:
            raise ValueError(f"Flatten takes one input, got {len(shapes)}")
        full = (None,) + tuple(shapes[0])            # dim 0 is the batch
        start, end = (d % len(full) for d in (self.start_dim, self.end_dim))
        if not 1 <= start <= end < len(full):
            raise ValueError(f"Flatten: dims {self.start_dim}..{self.end_dim} are not per-sample dims "
                             f"of a (batch, {', '.join(map(str, shapes[0]))}) value")
        return full[1:start] + (math.prod(full[start:end + 1]),) + full[end + 1:]


class Reshape(View):
    """Per-sample reshape, like x.view(batch, *shape); one dim may be -1."""

    def __init__(self, *shape: int):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        if (not shape or sum(d == -1 for d in shape) > 1
                or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or (d < 1 and d != -1)
                       for d in shape)):
            raise ValueError(f"Reshape: shape must be positive ints with at most one -1, got {shape!r}")
        self.shape = tuple(int(d) for d in shape)

    def __repr__(self) -> str:
        return f"Reshape{self.shape}"

    def output_shape(self, *shapes) -> tuple:
        if len(shapes) != 1:
            raise ValueError(f"Reshape takes one input, got {len(shapes)}")
        size, known = math.prod(shapes[0]), math.prod(d for d in self.shape if d != -1)
        shape = tuple(size // known if d == -1 else d for d in self.shape)
        if math.prod(shape) != size:
            raise ValueError(f"Reshape: cannot view {tuple(shapes[0])} ({size} values per sample) as {self.shape}")
        return shape
