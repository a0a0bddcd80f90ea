"""Stochastic gradient descent on the GPU, like torch.optim.SGD (single-tensor, foreach=False)."""

from __future__ import annotations

import numpy as np

from ..layers.activation import elementwise
from .base import Optimizer, check_bool, check_number


class SGD(Optimizer):
    """torch.optim.SGD(lr, momentum=0, dampening=0, weight_decay=0, nesterov=False):

        g = grad + weight_decay * param
        momentum > 0:  buf = g on the first step, else buf = momentum * buf + (1 - dampening) * g;
                       g = g + momentum * buf (nesterov) or g = buf
        param -= lr * g

    `lr`, `weight_decay` and `schedule` may change between steps (no re-recording); `momentum`,
    `dampening` and `nesterov` are fixed when the optimizer is made (they decide the shader and
    whether there is a momentum buffer). The momentum buffer belongs to the Trainer's plan: its
    first step is that trainer's first step."""

    def __init__(self, lr: float, momentum: float = 0.0, dampening: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False, *, schedule=None):
        self.lr = lr
        self._momentum = check_number(self, "momentum", momentum, minimum=0.0)
        self._dampening = check_number(self, "dampening", dampening)
        self.weight_decay = weight_decay
        self._nesterov = check_bool(self, "nesterov", nesterov)
        if self._nesterov and (self._momentum <= 0 or self._dampening != 0):
            raise ValueError(f"SGD: nesterov=True requires momentum > 0 and dampening = 0, "
                             f"got momentum={momentum!r}, dampening={dampening!r}")
        self.schedule = schedule

    @property
    def momentum(self) -> float:
        return self._momentum

    @property
    def dampening(self) -> float:
        return self._dampening

    @property
    def nesterov(self) -> bool:
        return self._nesterov

    def __repr__(self) -> str:
        args = [f"lr={self.lr}"]
        defaults = (("momentum", 0.0), ("dampening", 0.0), ("weight_decay", 0.0), ("nesterov", False))
        args += [f"{k}={getattr(self, k)}" for k, d in defaults if getattr(self, k) != d]
        args += [f"schedule={self.schedule!r}"] if self.schedule is not None else []
        return f"SGD({', '.join(args)})"

    def hyper_values(self, step: int) -> np.ndarray:
        # [lr, weight_decay, momentum, 1 - dampening, first]; both shaders read this layout.
        return np.array([self.lr_at(step), self.weight_decay, self.momentum, 1.0 - self.dampening,
                         1.0 if step == 0 else 0.0], dtype=np.float32)

    def state_shapes(self, param_shape: tuple) -> dict:
        return {"momentum_buffer": tuple(param_shape)} if self.momentum > 0 else {}

    def update(self, device, hyper, param, grad, state: dict, guard):
        buffers = {"hyper": hyper, "grad": grad, "param": param, "guard": guard}
        if self.momentum > 0:
            shader, constants = "sgd/momentum.comp", {"NESTEROV": self.nesterov}
            buffers["momentum_buffer"] = state["momentum_buffer"]
        else:
            shader, constants = "sgd/update.comp", {}
        return elementwise(device, shader, buffers, param.size, constants, name=f"sgd {param.name}")
