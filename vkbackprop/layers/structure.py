"""Layers that combine or route values in a graph."""

from __future__ import annotations

import math
import numbers

from .activation import elementwise
from .base import LayerIO, Module


class Add(Module):
    """y = x_1 + ... + x_n (n >= 2 inputs of one width); each input's gradient is dy: plan.py hands
    them dy's buffer itself, no copies (`passes_dy`)."""

    keeps_shape = True
    backward_reads = ()
    # A following ReLU (a residual block's) can be applied as the last sum's epilogue, and its
    # backward to dy as each copy's prologue: two dispatches and barriers less, the same bits. The
    # mask is then y, the ReLU's output, which its own backward_reads keep.
    epilogues = ("relu",)
    dy_prologues = ("relu",)

    def __repr__(self) -> str:
        return "Add()"

    def out_features(self, *in_features: int) -> int:
        if len(in_features) < 2:
            raise ValueError(f"Add takes at least 2 inputs, got {len(in_features)}")
        if len(set(in_features)) != 1:
            raise ValueError(f"Add needs inputs of one width, got widths {list(in_features)}")
        return in_features[0]

    def forward(self, io: LayerIO) -> list:
        n, last = io.y.size, len(io.xs) - 2
        return [elementwise(io.device, "add/forward.comp", {"a": io.y if i else io.xs[0], "b": x, "y": io.y}, n,
                            {"RELU": i == last and io.epilogue == "relu"},
                            texel_quads={"a4": io.y if i else io.xs[0], "b4": x})
                for i, x in enumerate(io.xs[1:])]

    @property
    def passes_dy(self) -> bool:
        """True, unless a subclass brings its own backward, which the plan must then run."""
        return type(self).backward is Add.backward

    def backward(self, io: LayerIO) -> list:
        # plan.py calls it where the inputs' gradient is dy masked by the fused ReLU, for dxs[0]
        # alone (maybe dy's own buffer: in place, each element read and then written by one
        # invocation); a subclass's plan (passes_dy False) gets a copy for each input.
        relu = io.dy_prologue == "relu"
        mask = io.y if relu else io.device.placeholder
        return [elementwise(io.device, "add/backward.comp", {"dy": io.dy, "mask": mask, "dx": dx}, io.y.size,
                            {"RELU_BACKWARD": relu})
                for dx in io.dxs if dx is not None]


class Concat(Module):
    """y = torch.cat([x_1, ..., x_n], dim=-1): n >= 2 inputs of any widths, joined along the
    features (dim -1 or 1); the output width is the sum. Values with per-sample shapes (C_i, H, W)
    are joined along channels with Concat(dim=1), as torch.cat(dim=1). Each input is copied into
    its column slice of y (one dispatch per input); each input's gradient is its slice of dy."""

    backward_reads = ()

    def __init__(self, dim: int = -1):
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or int(dim) not in (-1, 1):
            raise ValueError(f"Concat: dim must be -1 or 1 (the features), got {dim!r}")
        self.dim = int(dim)

    def __repr__(self) -> str:
        return f"Concat(dim={self.dim})"

    def out_features(self, *in_features: int) -> int:
        if len(in_features) < 2:
            raise ValueError(f"Concat takes at least 2 inputs, got {len(in_features)}")
        return sum(in_features)

    def output_shape(self, *shapes) -> tuple:
        # Per sample, (C_i, H, W) values stored row-major concatenated along C are exactly their
        # flattened rows concatenated: channel concatenation (torch.cat(dim=1)) is the same copy.
        width = self.out_features(*(math.prod(s) for s in shapes))
        if all(len(s) == 1 for s in shapes):
            return (width,)
        if self.dim != 1 or len({tuple(s[1:]) for s in shapes}) != 1:
            raise ValueError(f"{self!r}: per-sample shapes {[tuple(s) for s in shapes]} can only be joined along "
                             "dim 1 (channels) with equal trailing dims: use Concat(dim=1), or Flatten first")
        return (sum(s[0] for s in shapes),) + tuple(shapes[0][1:])

    @staticmethod
    def _slices(io: LayerIO):
        """(index, width, column offset) of each input; widths from the buffers, so one Concat
        object called on inputs of different widths is fine."""
        out_width, offset = io.y.shape[1], 0
        for k, x in enumerate(io.xs):
            width = x.shape[1]
            yield k, {"NUMEL": io.batch * width, "WIDTH": width, "OUT_WIDTH": out_width, "OFFSET": offset}
            offset += width

    def forward(self, io: LayerIO) -> list:
        return [elementwise(io.device, "concat/forward.comp", {"x": io.xs[k], "y": io.y}, c["NUMEL"], c)
                for k, c in self._slices(io)]

    def backward(self, io: LayerIO) -> list:
        return [elementwise(io.device, "concat/backward.comp", {"dy": io.dy, "dx": io.dxs[k]}, c["NUMEL"], c)
                for k, c in self._slices(io) if io.dxs[k] is not None]
