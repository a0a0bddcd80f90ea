"""Elementwise activations (PyTorch semantics: torch.nn names, defaults and derivative conventions)."""

from __future__ import annotations

import math
import numbers

import numpy as np

from .base import LayerIO, Module


def elementwise(device, shader: str, buffers: dict, numel: int, constants: dict | None = None):
    """A dispatch of a 1-D elementwise shader over numel items; `constants` are further
    specialization constants, bound by name (NUMEL is always set)."""
    program = device.program(shader)
    return device.dispatch(program, buffers, device.grid_1d(numel, program.local_size[0]),
                           {"NUMEL": numel, **(constants or {})})


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


class LeakyReLU(Module):
    """y = x where x > 0, else negative_slope * x. The derivative at exactly 0 is negative_slope, as
    in PyTorch; backward uses the saved input (with a negative slope, y's sign does not give x's)."""

    def __init__(self, negative_slope: float = 0.01):
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, numbers.Real):
            raise ValueError(f"LeakyReLU: negative_slope must be a real number, got {negative_slope!r}")
        value = float(negative_slope)
        if not math.isfinite(value) or abs(value) > float(np.finfo(np.float32).max):
            raise ValueError(f"LeakyReLU: negative_slope must be finite in float32, got {negative_slope!r}")
        # Keep an int an int (and a numpy scalar a Python number) so the repr reads like PyTorch's.
        self.negative_slope = int(negative_slope) if isinstance(negative_slope, numbers.Integral) else value

    def __repr__(self) -> str:
        return f"LeakyReLU(negative_slope={self.negative_slope})"

    def _constants(self) -> dict:
        return {"NEGATIVE_SLOPE": float(self.negative_slope)}

    def forward(self, io: LayerIO) -> list:
        return [elementwise(io.device, "leaky_relu/forward.comp", {"x": io.x, "y": io.y}, io.x.size,
                            self._constants())]

    def backward(self, io: LayerIO) -> list:
        if io.dx is None:
            return []
        return [elementwise(io.device, "leaky_relu/backward.comp", {"x": io.x, "dy": io.dy, "dx": io.dx},
                            io.x.size, self._constants())]


class Sigmoid(Module):
    """y = 1 / (1 + exp(-x)), overflow-free; backward dy * (1 - y) * y from the saved output."""

    def __repr__(self) -> str:
        return "Sigmoid()"

    def forward(self, io: LayerIO) -> list:
        return [elementwise(io.device, "sigmoid/forward.comp", {"x": io.x, "y": io.y}, io.x.size)]

    def backward(self, io: LayerIO) -> list:
        if io.dx is None:
            return []
        return [elementwise(io.device, "sigmoid/backward.comp", {"y": io.y, "dy": io.dy, "dx": io.dx},
                            io.x.size)]


class Tanh(Module):
    """y = tanh(x), saturating to exactly +-1; backward dy * (1 - y^2) from the saved output."""

    def __repr__(self) -> str:
        return "Tanh()"

    def forward(self, io: LayerIO) -> list:
        return [elementwise(io.device, "tanh/forward.comp", {"x": io.x, "y": io.y}, io.x.size)]

    def backward(self, io: LayerIO) -> list:
        if io.dx is None:
            return []
        return [elementwise(io.device, "tanh/backward.comp", {"y": io.y, "dy": io.dy, "dx": io.dx},
                            io.x.size)]


class GELU(Module):
    """y = x * Phi(x) with Phi the standard normal CDF (approximate='none', via erf), or
    0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))) (approximate='tanh'), as torch.nn.GELU.
    Backward uses the saved input."""

    def __init__(self, approximate: str = "none"):
        if not isinstance(approximate, str) or approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def __repr__(self) -> str:
        return f"GELU(approximate={self.approximate!r})"

    def _constants(self) -> dict:
        return {"TANH_APPROXIMATION": self.approximate == "tanh"}

    def forward(self, io: LayerIO) -> list:
        return [elementwise(io.device, "gelu/forward.comp", {"x": io.x, "y": io.y}, io.x.size, self._constants())]

    def backward(self, io: LayerIO) -> list:
        if io.dx is None:
            return []
        return [elementwise(io.device, "gelu/backward.comp", {"x": io.x, "dy": io.dy, "dx": io.dx},
                            io.x.size, self._constants())]
