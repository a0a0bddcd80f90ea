"""Adam and AdamW on the GPU, like torch.optim.Adam / AdamW (single-tensor, foreach=False)."""

from __future__ import annotations

import numbers

import numpy as np

from ..layers.activation import elementwise
from .base import Optimizer, check_bool, check_number


class Adam(Optimizer):
    """torch.optim.Adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False).
    At step t = 1, 2, ... (per Trainer):

        g = grad + weight_decay * param                    (L2; AdamW instead decays the parameter)
        exp_avg    = lerp(exp_avg, g, 1 - beta1)
        exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g^2
        v = max(max_exp_avg_sq, exp_avg_sq) with amsgrad (kept in max_exp_avg_sq), else exp_avg_sq
        param -= lr / (1 - beta1^t) * exp_avg / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    The bias corrections are computed on the host each step (in double, like PyTorch) and uploaded
    with the batch. `lr`, `betas`, `eps`, `weight_decay` and `schedule` may change between steps
    (no re-recording); `amsgrad` is fixed when the optimizer is made. The moments are device-only
    buffers of the Trainer's plan, zeroed when it is made."""

    _decoupled = False

    def __init__(self, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 amsgrad: bool = False, *, schedule=None):
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self._amsgrad = check_bool(self, "amsgrad", amsgrad)
        self.schedule = schedule

    @property
    def betas(self) -> tuple:
        return self._betas

    @betas.setter
    def betas(self, value) -> None:
        name = type(self).__name__
        if (isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2
                or not all(isinstance(b, numbers.Real) for b in value)):
            raise ValueError(f"{name}: betas must be a pair of numbers in [0, 1), got {value!r}")
        self._betas = tuple(check_number(self, f"betas[{i}]", b, minimum=0.0, below=1.0) for i, b in enumerate(value))

    @property
    def eps(self) -> float:
        return self._eps

    @eps.setter
    def eps(self, value) -> None:
        self._eps = check_number(self, "eps", value, minimum=0.0)

    @property
    def amsgrad(self) -> bool:
        return self._amsgrad

    def __repr__(self) -> str:
        args = [f"lr={self.lr}", f"betas={self.betas}", f"eps={self.eps}", f"weight_decay={self.weight_decay}",
                f"amsgrad={self.amsgrad}"]
        args += [f"schedule={self.schedule!r}"] if self.schedule is not None else []
        return f"{type(self).__name__}({', '.join(args)})"

    def hyper_values(self, step: int) -> np.ndarray:
        # [-step_size, sqrt(1 - beta2^t), eps, 1 - beta1, beta2, 1 - beta2, l2, decay] (shaders/adam/adam.glsl)
        t = step + 1
        lr = self.lr_at(step)
        beta1, beta2 = self.betas
        step_size = lr / (1 - beta1 ** t)
        bias_correction2_sqrt = (1 - beta2 ** t) ** 0.5
        if self._decoupled:
            l2, decay = 0.0, 1 - lr * self.weight_decay
        else:
            l2, decay = self.weight_decay, 1.0
        return np.array([-step_size, bias_correction2_sqrt, self.eps, 1 - beta1, beta2, 1 - beta2, l2, decay],
                        dtype=np.float32)

    def state_shapes(self, param_shape: tuple) -> dict:
        names = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if self.amsgrad else ())
        return {n: tuple(param_shape) for n in names}

    def update(self, device, hyper, param, grad, state: dict, guard):
        shader = "adam/amsgrad.comp" if self.amsgrad else "adam/update.comp"
        buffers = {"hyper": hyper, "grad": grad, "param": param, "guard": guard, **state}
        return elementwise(device, shader, buffers, param.size, name=f"{type(self).__name__.lower()} {param.name}")


class AdamW(Adam):
    """torch.optim.AdamW(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
    Adam with decoupled weight decay, `param *= 1 - lr * weight_decay` before the Adam step (with the
    scheduled lr), instead of adding `weight_decay * param` to the gradient."""

    _decoupled = True

    def __init__(self, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
                 amsgrad: bool = False, *, schedule=None):
        super().__init__(lr, betas, eps, weight_decay, amsgrad, schedule=schedule)
