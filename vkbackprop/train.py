"""Trainer: one recorded GPU training step per call, PyTorch-like."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from . import checks
from .device import Device
from .losses import Loss
from .model import Sequential
from .optim import Optimizer
from .plan import StepPlan


class Trainer:
    def __init__(self, model: Sequential, loss: Loss, optimizer: Optimizer, batch_size: int, device: Device | None = None):
        if not isinstance(model, Sequential):
            raise ValueError(f"Trainer: model must be a vkbackprop Sequential, got {_qualname(model)}")
        if not isinstance(loss, Loss):
            raise ValueError(f"Trainer: loss must be a vkbackprop loss, got {_qualname(loss)}")
        if not isinstance(optimizer, Optimizer):
            raise ValueError(f"Trainer: optimizer must be a vkbackprop optimizer, got {_qualname(optimizer)}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"Trainer: batch_size must be a positive int, got {batch_size!r}")
        if model.in_features is None:
            raise ValueError("Trainer: the model's input width is unknown (start it with a layer such as Linear)")
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.batch_size = int(batch_size)
        self.device = device or Device.default()
        model.bind(self.device)
        self.plan = StepPlan(self.device, model, loss, optimizer, self.batch_size)

    @property
    def in_features(self) -> int:
        return self.model.widths[0]

    @property
    def out_features(self) -> int:
        return self.model.widths[-1]

    def step(self, x, y) -> float:
        """One training step on a batch (batch_size rows): forward, loss, backward, update. Returns the loss."""
        x = checks.float_array(x, "x", (self.batch_size, self.in_features))
        y = self.loss.check_target(y, self.batch_size, self.out_features)
        hyper = self.optimizer.hyper_values()
        plan = self.plan
        plan.input.host_view()[...] = x
        plan.target.host_view()[...] = y
        plan.hyper.host_view()[...] = hyper
        plan.train.sequence.eval()
        return float(plan.loss.host_view()[0])

    def predict(self, x) -> np.ndarray:
        """Model outputs for any number of rows (forward only), in chunks of batch_size."""
        x = checks.float_array(x, "x", (None, self.in_features))
        plan, b = self.plan, self.batch_size
        out = np.empty((len(x), self.out_features), dtype=np.float32)
        for start in range(0, len(x), b):
            chunk = x[start:start + b]
            view = plan.input.host_view()
            view[:len(chunk)] = chunk
            view[len(chunk):] = 0.0   # padding rows: computed, never returned
            plan.predict.sequence.eval()
            out[start:start + len(chunk)] = plan.output.host_view()[:len(chunk)]
        return out

    def gradients(self) -> "OrderedDict[str, np.ndarray]":
        """Parameter gradients of the last step, named like state_dict()."""
        return OrderedDict((name, self.device.read(buf)) for name, buf in self.plan.param_grads.items())


def _qualname(obj) -> str:
    """'torch.nn.modules.container.Sequential' rather than an ambiguous 'Sequential'; 'str' for builtins."""
    cls = type(obj)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
