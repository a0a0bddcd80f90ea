"""Linear: y = x W^T + b, with PyTorch's parameter names, shapes and initialisation."""

from __future__ import annotations

import math

import numpy as np

from .. import random
from .base import LayerIO, Module
from . import gemm_shuffle
from .gemm import gemm_dispatch


# Each GEMM pass: (scalar core shader, vec4 + subgroup-shuffle core shader).
_SHADERS = {"forward": ("linear/forward.comp", "linear/forward_shuffle.comp"),
            "backward_weight": ("linear/backward_weight.comp", "linear/backward_weight_shuffle.comp"),
            "backward_input": ("linear/backward_input.comp", "linear/backward_input_shuffle.comp")}


class Linear(Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, name: str | None = None):
        for what, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Linear: {what} must be a positive int, got {value!r}")
        self.in_features, self.out = int(in_features), int(out_features)
        self.bias = bool(bias)
        self.name = name
        # torch.nn.Linear's default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
        bound = 1.0 / math.sqrt(self.in_features)
        rng = random.generator()
        self._init = {"weight": rng.uniform(-bound, bound, (self.out, self.in_features)).astype(np.float32)}
        if self.bias:
            self._init["bias"] = rng.uniform(-bound, bound, self.out).astype(np.float32)

    def __repr__(self) -> str:
        return f"Linear(in_features={self.in_features}, out_features={self.out}, bias={self.bias})"

    def parameters(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self._init.items()}

    def out_features(self, *in_features: int) -> int:
        in_features = super().out_features(*in_features)  # exactly one input
        if in_features != self.in_features:
            raise ValueError(f"{self!r} takes {self.in_features} input features, got {in_features}")
        return self.out

    def _gemm(self, io, pass_: str, buffers: dict, m: int, n: int, k: int, a_k: bool, b_n: bool, constants=None):
        """One of the three GEMMs: the vec4 + shuffle core where it applies, else the scalar core."""
        scalar, shuffle = _SHADERS[pass_]
        if a_k and gemm_shuffle.applies(io.device, m, n, k, b_n):
            return gemm_shuffle.shuffle_dispatch(io.device, shuffle, buffers, m, n, k, constants)
        return gemm_dispatch(io.device, scalar, buffers, m, n, k, constants)

    # A following ReLU can be applied as the forward GEMM's epilogue (one dispatch and barrier less).
    epilogues = ("relu",)
    # A preceding ReLU's backward can be applied as the input-gradient GEMM's epilogue (same saving).
    dx_epilogues = ("relu",)

    def forward(self, io: LayerIO) -> list:
        bias = io.params["bias"] if self.bias else io.device.placeholder
        buffers = {"x": io.x, "weight": io.params["weight"], "bias": bias, "y": io.y}
        constants = {"HAS_BIAS": self.bias, "RELU": io.epilogue == "relu"}
        if self._few_outputs(io):
            # y^T = W x^T: A = W is [out][in], B = x^T is stored [batch][in] (n-major); stored transposed.
            return [gemm_shuffle.shuffle_dispatch(io.device, "linear/forward_shuffle_t.comp", buffers, self.out,
                                                  io.batch, self.in_features, constants, tile=gemm_shuffle.FEW_ROWS_TILE)]
        # y = x W^T: A = x is [batch][in] (k-contiguous), B = W^T is stored [out][in] (n-major).
        return [self._gemm(io, "forward", buffers, io.batch, self.out, self.in_features, True, False, constants)]

    def _few_outputs(self, io: LayerIO) -> bool:
        """Whether the forward GEMM runs transposed on the vec4 core: with at most a quarter of a
        workgroup's columns of outputs, most lanes of the usual orientation would idle."""
        return (4 * self.out <= gemm_shuffle.columns(gemm_shuffle.TILE)
                and gemm_shuffle.applies(io.device, self.out, io.batch, self.in_features, False))

    def backward(self, io: LayerIO) -> list:
        # dW, db and dx only read dy, x and W: independent of each other, no barriers between them.
        dx = []
        if io.dx is not None:
            # dx = dy W: A = dy is [batch][out], B = W is [out][in].
            dx = [self._gemm(io, "backward_input", {"dy": io.dy, "weight": io.params["weight"], "dx": io.dx, "x": io.x},
                             io.batch, self.in_features, self.out, True, True,
                             {"RELU_BACKWARD": io.dx_epilogue == "relu"})]
        # dW = dy^T x over the batch: A = dy^T, B = x is [batch][in].
        if gemm_shuffle.applies(io.device, self.out, self.in_features, io.batch, True, a_m_contiguous=True):
            # The vec4 core reads A = dy^T where dy lies; its first column of workgroups sums dbias.
            bias = io.grads["bias"] if self.bias else io.device.placeholder
            buffers = {"dy": io.dy, "x": io.x, "dweight": io.grads["weight"], "dbias": bias}
            io.device.check_loop(io.batch + 1, f"linear/backward_weight_shuffle_dy.comp's bias sums (batch {io.batch})")
            return dx + [gemm_shuffle.shuffle_dispatch(io.device, "linear/backward_weight_shuffle_dy.comp", buffers,
                                                       self.out, self.in_features, io.batch, {"HAS_BIAS": self.bias})]
        if gemm_shuffle.applies(io.device, self.out, self.in_features, io.batch, True):
            transpose, weight = self._transposed_weight_gradient(io)
            return [transpose] + dx + [weight]   # dx runs while the transposed copy settles
        # The scalar core reads A = dy^T where it lies: dy is [batch][out] (m-contiguous).
        work = [self._gemm(io, "backward_weight", {"dy": io.dy, "x": io.x, "dweight": io.grads["weight"]},
                           self.out, self.in_features, io.batch, False, True)]
        if self.bias:
            io.device.check_loop(io.batch + 1, f"linear/backward_bias.comp (batch {io.batch})")  # +1: the exit
            program = io.device.program("linear/backward_bias.comp")
            work.append(io.device.dispatch(
                program, {"dy": io.dy, "dbias": io.grads["bias"]},
                io.device.grid_1d(self.out, program.local_size[0]), dict(B=io.batch, N=self.out)))
        return work + dx

    def _transposed_weight_gradient(self, io: LayerIO) -> tuple:
        """For the vec4 core when out_features % 4 != 0 (dy's rows are not whole quads): copy dy to
        [out][batch] float by float, the same pass summing the bias gradient; then dW = dyt x."""
        device = io.device
        dyt = device.buffer(f"{io.dy.name}.T", (self.out, io.batch))
        buffers = {"dy": io.dy, "dyt": dyt, "dbias": io.grads["bias"] if self.bias else device.placeholder}
        program = device.program("linear/transpose_dy_scalar.comp")
        device.check_loop(io.batch + 1, f"linear/transpose_dy_scalar.comp (batch {io.batch})")
        transpose = device.dispatch(program, buffers, (-(-self.out // program.local_size[0]), 1, 1),
                                    dict(B=io.batch, N=self.out, HAS_BIAS=self.bias))
        weight = self._gemm(io, "backward_weight", {"dyt": dyt, "x": io.x, "dweight": io.grads["weight"]},
                            self.out, self.in_features, io.batch, True, True)
        return transpose, weight
