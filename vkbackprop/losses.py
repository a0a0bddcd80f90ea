"""Losses: the base case of backprop. Each is one fused dispatch computing the loss and dL/d(pred),
given dL/d(loss) in a 1-float buffer (1 in training; any value in gradient checks)."""

from __future__ import annotations

import numpy as np

from . import checks


class Loss:
    target_dtype = np.float32

    def target_shape(self, batch: int, out_features: int) -> tuple:
        raise NotImplementedError

    def check_target(self, target, batch: int, out_features: int) -> np.ndarray:
        raise NotImplementedError

    def dispatch(self, device, pred, target, dloss, loss, dpred):
        raise NotImplementedError


class CrossEntropyLoss(Loss):
    """Softmax + negative log-likelihood over integer class labels, mean over the batch."""
    target_dtype = np.int32

    def __repr__(self) -> str:
        return "CrossEntropyLoss()"

    def target_shape(self, batch: int, out_features: int) -> tuple:
        return (batch,)

    def check_target(self, target, batch: int, out_features: int) -> np.ndarray:
        return checks.label_array(target, "labels", batch, out_features)

    def dispatch(self, device, pred, target, dloss, loss, dpred):
        batch, classes = pred.shape
        program = device.program("cross_entropy/forward_backward.comp")
        rows_per_invocation = -(-batch // program.local_size[0])
        device.check_loop(rows_per_invocation * classes, f"cross entropy over batch {batch} x {classes} classes")
        return device.dispatch(program,
                               {"logits": pred, "labels": target, "dloss": dloss, "loss": loss, "dlogits": dpred},
                               (1, 1, 1), dict(B=batch, C=classes), name="loss")


class MSELoss(Loss):
    """Mean over all elements of (pred - target)^2."""

    def __repr__(self) -> str:
        return "MSELoss()"

    def target_shape(self, batch: int, out_features: int) -> tuple:
        return (batch, out_features)

    def check_target(self, target, batch: int, out_features: int) -> np.ndarray:
        return checks.float_array(target, "targets", (batch, out_features))

    def dispatch(self, device, pred, target, dloss, loss, dpred):
        program = device.program("mse/forward_backward.comp")
        device.check_loop(-(-pred.size // program.local_size[0]), f"MSE over {pred.size} elements")
        return device.dispatch(program,
                               {"pred": pred, "target": target, "dloss": dloss, "loss": loss, "dpred": dpred},
                               (1, 1, 1), dict(NUMEL=pred.size), name="loss")
