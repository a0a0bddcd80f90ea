"""Elementwise activations."""

from __future__ import annotations

from .base import LayerIO, Module


def elementwise(device, shader: str, buffers: dict, numel: int):
    """A dispatch of a 1-D elementwise shader over numel items."""
    program = device.program(shader)
    return device.dispatch(program, buffers, device.grid_1d(numel, program.local_size[0]), {"NUMEL": numel})


class ReLU(Module):
    """y = max(x, 0); backward uses the saved output (y > 0 exactly where x > 0)."""

    def __repr__(self) -> str:
        return "ReLU()"

    def forward(self, io: LayerIO) -> list:
        return [elementwise(io.device, "relu/forward.comp", {"x": io.x, "y": io.y}, io.x.size)]

    def backward(self, io: LayerIO) -> list:
        if io.dx is None:
            return []
        return [elementwise(io.device, "relu/backward.comp", {"y": io.y, "dy": io.dy, "dx": io.dx}, io.x.size)]
