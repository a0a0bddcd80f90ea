"""Optimizers update parameters on the GPU. Step-varying values (the learning rate) live in a small
host-staged `hyper` buffer uploaded with each batch, so changing them never re-records the step."""

from __future__ import annotations

import math
import numbers

import numpy as np


class Optimizer:
    def hyper_values(self) -> np.ndarray:
        """The values of the hyper buffer for the next step."""
        raise NotImplementedError

    def update(self, device, hyper, param, grad):
        """The dispatch that updates one parameter from its gradient."""
        raise NotImplementedError


class SGD(Optimizer):
    """param -= lr * grad (PyTorch's torch.optim.SGD without momentum or weight decay)."""

    def __init__(self, lr: float):
        self.lr = lr

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
            raise ValueError(f"SGD: lr must be a finite number >= 0, got {value!r}")
        self._lr = float(value)

    def __repr__(self) -> str:
        return f"SGD(lr={self.lr})"

    def hyper_values(self) -> np.ndarray:
        return np.array([self.lr], dtype=np.float32)

    def update(self, device, hyper, param, grad):
        program = device.program("sgd/update.comp")
        return device.dispatch(program, {"hyper": hyper, "grad": grad, "param": param},
                               device.grid_1d(param.size, program.local_size[0]), {"NUMEL": param.size},
                               name=f"sgd {param.name}")
