"""Elementwise activations (PyTorch semantics: torch.nn names, defaults and derivative conventions)."""

from __future__ import annotations

import math
import numbers

import numpy as np

from .base import LayerIO, Module


def elementwise(device, shader: str, buffers: dict, numel: int, constants: dict | None = None,
                name: str | None = None, texel_quads: dict | None = None):
    """A dispatch of a 1-D elementwise shader over numel items; `constants` are further
    specialization constants, bound by name (NUMEL is always set).

    A shader that works on quads (shaders/common/vec4_index.glsl) declares a vec4 view `<b>4` beside
    a float binding `<b>`: the same buffer is bound under both names here. Its invocations loop over
    the quads, so any grid is correct; Device.quads_per_invocation only sizes it. `texel_quads`
    binds the read-only quads a shader declares with common/vec4_input.glsl, as texels where the
    device prefers them."""
    program = device.program(shader, device.read_defines(texel_quads.values()) if texel_quads else None)
    views = {**quad_views(program, buffers), **(texel_quads or {})}
    invocations = -(-numel // (4 * device.quads_per_invocation)) if views else numel
    return device.dispatch(program, {**buffers, **views}, device.grid_1d(invocations, program.local_size[0]),
                           {"NUMEL": numel, **(constants or {})}, name=name)


def quad_views(program, buffers: dict) -> dict:
    """The vec4 views `<b>4` a program declares beside float bindings `<b>` (common/vec4_index.glsl),
    each bound to the buffer of `<b>`."""
    return {b.name: buffers[b.name[:-1]] for b in program.bindings
            if b.element_type == "vec4" and b.name[:-1] in buffers}


class Activation(Module):
    """An elementwise layer: one forward shader (x -> y, common/unary_quads.glsl) and one backward
    shader that reads the saved tensor `saves` ("x" or "y") with dy and writes dx
    (common/unary_backward_quads.glsl). Subclasses name their shaders and any specialization
    constants."""

    forward_shader: str
    backward_shader: str
    saves: str   # "x" or "y": what backward needs from the forward pass
    backward_reads = property(lambda self: (self.saves,))
    keeps_shape = True

    def __repr__(self) -> str:
        # The built-in activation's name, also for a user's subclass of it (gradcheck messages add the class).
        builtin = next(c for c in type(self).__mro__ if c.__module__ == __name__ and c is not Activation)
        return f"{builtin.__name__}()"

    def _constants(self) -> dict:
        return {}

    def forward(self, io: LayerIO) -> list:
        return [elementwise(io.device, self.forward_shader, {"x": io.x, "y": io.y}, io.x.size, self._constants())]

    def backward(self, io: LayerIO) -> list:
        if io.dx is None:
            return []
        saved = io.x if self.saves == "x" else io.y
        return [elementwise(io.device, self.backward_shader, {"saved": saved, "dy": io.dy, "dx": io.dx},
                            io.x.size, self._constants())]


class ReLU(Activation):
    """y = max(x, 0); backward uses the saved output (y > 0 exactly where x > 0). A Linear before
    it may store max(., 0) itself (plan.py fuses the pair): backward needs only y either way."""
    forward_shader, backward_shader, saves = "relu/forward.comp", "relu/backward.comp", "y"

    @property
    def fusible_as(self) -> str | None:
        """"relu" (neighbouring Linears may do this layer's work, plan.py), unless a subclass brings
        its own forward or backward: fused, those would silently not run."""
        cls = type(self)
        own = (cls.forward is ReLU.forward and cls.backward is ReLU.backward
               and (cls.forward_shader, cls.backward_shader) == (ReLU.forward_shader, ReLU.backward_shader))
        return "relu" if own else None


class LeakyReLU(Activation):
    """y = x where x > 0, else negative_slope * x. The derivative at exactly 0 is negative_slope, as
    in PyTorch; backward uses the saved input (with a negative slope, y's sign does not give x's)."""
    forward_shader, backward_shader, saves = "leaky_relu/forward.comp", "leaky_relu/backward.comp", "x"

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


class Sigmoid(Activation):
    """y = 1 / (1 + exp(-x)), overflow-free; backward dy * (1 - y) * y from the saved output."""
    forward_shader, backward_shader, saves = "sigmoid/forward.comp", "sigmoid/backward.comp", "y"


class Tanh(Activation):
    """y = tanh(x), saturating to exactly +-1; backward dy * (1 - y^2) from the saved output."""
    forward_shader, backward_shader, saves = "tanh/forward.comp", "tanh/backward.comp", "y"


class GELU(Activation):
    """y = x * Phi(x) with Phi the standard normal CDF (approximate='none', via erf), or
    0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))) (approximate='tanh'), as torch.nn.GELU.
    Backward uses the saved input."""
    forward_shader, backward_shader, saves = "gelu/forward.comp", "gelu/backward.comp", "x"

    def __init__(self, approximate: str = "none"):
        if not isinstance(approximate, str) or approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def __repr__(self) -> str:
        return f"GELU(approximate={self.approximate!r})"

    def _constants(self) -> dict:
        return {"TANH_APPROXIMATION": self.approximate == "tanh"}
