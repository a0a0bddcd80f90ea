"""Layers that combine or route values in a graph."""

from __future__ import annotations

from .activation import elementwise
from .base import LayerIO, Module


class Add(Module):
    """y = x_1 + ... + x_n (n >= 2 inputs of one width); each input's gradient is dy."""

    def __repr__(self) -> str:
        return "Add()"

    def out_features(self, *in_features: int) -> int:
        if len(in_features) < 2:
            raise ValueError(f"Add takes at least 2 inputs, got {len(in_features)}")
        if len(set(in_features)) != 1:
            raise ValueError(f"Add needs inputs of one width, got widths {list(in_features)}")
        return in_features[0]

    def forward(self, io: LayerIO) -> list:
        n = io.y.size
        work = [elementwise(io.device, "add/forward.comp", {"a": io.xs[0], "b": io.xs[1], "y": io.y}, n)]
        for x in io.xs[2:]:
            work.append(elementwise(io.device, "add/forward.comp", {"a": io.y, "b": x, "y": io.y}, n))
        return work

    def backward(self, io: LayerIO) -> list:
        return [elementwise(io.device, "add/backward.comp", {"dy": io.dy, "dx": dx}, io.y.size)
                for dx in io.dxs if dx is not None]
