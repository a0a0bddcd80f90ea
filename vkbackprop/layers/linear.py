"""Linear: y = x W^T + b, with PyTorch's parameter names, shapes and initialisation."""

from __future__ import annotations

import math

import numpy as np

from .. import random
from .base import LayerIO, Module
from .gemm import gemm_dispatch


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

    def forward(self, io: LayerIO) -> list:
        bias = io.params["bias"] if self.bias else io.device.placeholder
        return [gemm_dispatch(io.device, "linear/forward.comp",
                              {"x": io.x, "weight": io.params["weight"], "bias": bias, "y": io.y},
                              io.batch, self.out, self.in_features, {"HAS_BIAS": self.bias})]

    def backward(self, io: LayerIO) -> list:
        # dW and db and dx only read dy, x and W: independent of each other, no barriers between them.
        work = [gemm_dispatch(io.device, "linear/backward_weight.comp",
                              {"dy": io.dy, "x": io.x, "dweight": io.grads["weight"]},
                              self.out, self.in_features, io.batch)]
        if self.bias:
            io.device.check_loop(io.batch + 1, f"linear/backward_bias.comp (batch {io.batch})")  # +1: the exit
            program = io.device.program("linear/backward_bias.comp")
            work.append(io.device.dispatch(
                program, {"dy": io.dy, "dbias": io.grads["bias"]},
                io.device.grid_1d(self.out, program.local_size[0]), dict(B=io.batch, N=self.out)))
        if io.dx is not None:
            work.append(gemm_dispatch(io.device, "linear/backward_input.comp",
                                      {"dy": io.dy, "weight": io.params["weight"], "dx": io.dx},
                                      io.batch, self.in_features, self.out))
        return work
