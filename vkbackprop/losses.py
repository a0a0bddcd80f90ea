"""Losses: the base case of backprop. Each is one fused dispatch computing the loss and dL/d(pred),
given dL/d(loss) in a 1-float buffer (1 in training; any value in gradient checks).

Every loss follows PyTorch's functional of the same name, with the same `reduction` argument
(passed to its shader as a specialization constant). Constructor arguments and targets are checked
on the host, before any GPU work, with a ValueError naming what was expected and what was given.
"""

from __future__ import annotations

import math

import numpy as np

from . import checks

# Reductions by shader code (the REDUCTION specialization constant) and divisor.
_REDUCTION_CODES = {"mean": 0, "sum": 1, "batchmean": 2}


def _one_of(values) -> str:
    quoted = [repr(v) for v in values]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _choice(owner: str, arg: str, value, allowed: tuple) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{owner}: {arg} must be {_one_of(allowed)}, got {value!r}")
    return value


def _flag(owner: str, arg: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{owner}: {arg} must be True or False, got {value!r}")
    return bool(value)


def _fraction(owner: str, arg: str, value) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{owner}: {arg} must be a float in [0, 1], got {value!r}")
    return float(value)


def _loop_cost(program, *loops: int) -> int:
    """Worst-case loop iterations one invocation runs, as lavapipe counts them (device.check_loop):
    one counter for all loops of the invocation, and each loop entered costs its iterations + 1.
    `loops` are the other loops' costs; the fixed-order workgroup sum's loop (log2 of the workgroup
    size iterations) is added here. An upper bound: the compiler may drop a loop it can count (a row
    loop that runs once) and the last loop's final exit does not matter, so lavapipe runs a few more."""
    return sum(loops) + int(math.log2(program.local_size[0])) + 1


def _per_invocation(items: int, program) -> int:
    """Iterations of a loop striding `items` over the workgroup's invocations."""
    return -(-items // program.local_size[0])


def _probabilities(value, name: str, shape: tuple, rows_sum_to_one: bool, dtype_hint: str = "",
                   negative_hint: str = "") -> np.ndarray:
    """Float targets of `shape`: finite, >= 0 and (optionally) each row summing to 1 within 1e-3."""
    array = np.asarray(value)
    if array.dtype.kind != "f":
        hint = dtype_hint if array.dtype.kind in "iu" else ""
        raise ValueError(f"{name}: expected floating-point probabilities, got dtype {array.dtype}{hint}")
    probs = checks.float_array(array, name, shape)
    negative = probs < 0
    if negative.any():
        where = tuple(int(i) for i in np.argwhere(negative)[0])
        raise ValueError(f"{name}: value {float(probs[where])!r} at index {where} is negative, "
                         f"expected probabilities >= 0{negative_hint}")
    if rows_sum_to_one:
        sums = probs.sum(axis=1, dtype=np.float64)
        off = np.abs(sums - 1.0) > 1e-3
        if off.any():
            row = int(np.argmax(off))
            raise ValueError(f"{name}: row {row} sums to {float(sums[row]):.6g}, expected 1 (within 1e-3)")
    return probs


class Loss:
    """`reduction` is 'mean' (the default) or 'sum', as in PyTorch; subclasses may allow more."""
    target_dtype = np.float32
    reductions = ("mean", "sum")

    def __init__(self, reduction: str = "mean"):
        self.reduction = _choice(type(self).__name__, "reduction", reduction, self.reductions)

    def _args(self) -> dict:
        """Constructor arguments that differ from their defaults (for repr)."""
        return {"reduction": self.reduction} if self.reduction != "mean" else {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._args().items())})"

    @property
    def _code(self) -> int:
        return _REDUCTION_CODES[self.reduction]

    def target_shape(self, batch: int, out_features: int) -> tuple:
        raise NotImplementedError

    def check_target(self, target, batch: int, out_features: int) -> np.ndarray:
        raise NotImplementedError

    def dispatch(self, device, pred, target, dloss, loss, dpred):
        raise NotImplementedError

    def _elementwise(self, device, path, pred, target, dloss, loss, dpred, what, **constants):
        """One dispatch of a loss whose shader strides over all elements once (MSE, BCE, KL)."""
        program = device.program(path)
        device.check_loop(_loop_cost(program, _per_invocation(pred.size, program) + 1),
                          f"{what} over {pred.size} elements")
        return device.dispatch(program,
                               {"pred": pred, "target": target, "dloss": dloss, "loss": loss, "dpred": dpred},
                               (1, 1, 1), dict(NUMEL=pred.size, REDUCTION=self._code, **constants), name="loss")


class CrossEntropyLoss(Loss):
    """Softmax + negative log-likelihood (torch.nn.functional.cross_entropy without class weights).

    target='labels' (default): integer class labels of shape (batch,).
    target='probabilities': float class probabilities of shape (batch, classes), each row a
    distribution (finite, >= 0, summing to 1 within 1e-3).
    PyTorch picks the mode from the target's dtype at each call; here the Trainer plans the target
    buffer once, so the mode is chosen when the loss is made and a target of the other kind is a
    ValueError that says so.
    label_smoothing = eps in [0, 1] mixes the target with the uniform distribution, as PyTorch:
    (1 - eps) * onehot + eps / C for labels, (1 - eps) * p + eps / C for probabilities.
    reduction: 'mean' divides the sum over rows by the batch size, 'sum' does not.
    """
    targets = ("labels", "probabilities")

    def __init__(self, reduction: str = "mean", label_smoothing: float = 0.0, target: str = "labels"):
        super().__init__(reduction)
        self.label_smoothing = _fraction("CrossEntropyLoss", "label_smoothing", label_smoothing)
        self.target = _choice("CrossEntropyLoss", "target", target, self.targets)

    def _args(self) -> dict:
        args = super()._args()
        if self.label_smoothing != 0.0:
            args["label_smoothing"] = self.label_smoothing
        if self.target != "labels":
            args["target"] = self.target
        return args

    @property
    def target_dtype(self):
        return np.int32 if self.target == "labels" else np.float32

    def target_shape(self, batch: int, out_features: int) -> tuple:
        return (batch,) if self.target == "labels" else (batch, out_features)

    def check_target(self, target, batch: int, out_features: int) -> np.ndarray:
        kind = np.asarray(target).dtype.kind
        if self.target == "labels":
            if kind == "f":
                raise ValueError(f"labels: expected integer class labels, got dtype {np.asarray(target).dtype} "
                                 "(for class-probability targets use CrossEntropyLoss(target='probabilities'))")
            return checks.label_array(target, "labels", batch, out_features)
        return _probabilities(target, "probabilities", (batch, out_features), rows_sum_to_one=True,
                              dtype_hint=" (for integer class labels use CrossEntropyLoss(target='labels'))")

    def dispatch(self, device, pred, target, dloss, loss, dpred):
        batch, classes = pred.shape
        labels = self.target == "labels"
        program = device.program("cross_entropy/forward_backward.comp" if labels
                                 else "cross_entropy/probabilities.comp")
        rows = _per_invocation(batch, program)
        # Per row: three loops over the classes (maximum from class 1, exp-sum, gradient).
        device.check_loop(_loop_cost(program, rows + 1, rows * (classes + 2 * (classes + 1))),
                          f"cross entropy over batch {batch} x {classes} classes")
        return device.dispatch(program,
                               {"logits": pred, ("labels" if labels else "target"): target, "dloss": dloss,
                                "loss": loss, "dlogits": dpred},
                               (1, 1, 1), dict(B=batch, C=classes, REDUCTION=self._code,
                                               SMOOTHING=self.label_smoothing), name="loss")


class NLLLoss(Loss):
    """Negative log-likelihood of integer labels (batch,) given log-probabilities (batch, classes)
    (torch.nn.functional.nll_loss without class weights): -sum_b pred[b, label[b]], divided by the
    batch size for reduction='mean'. Usually follows LogSoftmax."""
    target_dtype = np.int32

    def target_shape(self, batch: int, out_features: int) -> tuple:
        return (batch,)

    def check_target(self, target, batch: int, out_features: int) -> np.ndarray:
        return checks.label_array(target, "labels", batch, out_features)

    def dispatch(self, device, pred, target, dloss, loss, dpred):
        batch, classes = pred.shape
        program = device.program("nll/forward_backward.comp")
        device.check_loop(_loop_cost(program, _per_invocation(batch * classes, program) + 1,
                                     _per_invocation(batch, program) + 1),
                          f"NLL over batch {batch} x {classes} classes")
        return device.dispatch(program,
                               {"logp": pred, "labels": target, "dloss": dloss, "loss": loss, "dlogp": dpred},
                               (1, 1, 1), dict(B=batch, C=classes, REDUCTION=self._code), name="loss")


class MSELoss(Loss):
    """(pred - target)^2 summed over all elements; reduction='mean' divides by the element count."""

    def target_shape(self, batch: int, out_features: int) -> tuple:
        return (batch, out_features)

    def check_target(self, target, batch: int, out_features: int) -> np.ndarray:
        return checks.float_array(target, "targets", (batch, out_features))

    def dispatch(self, device, pred, target, dloss, loss, dpred):
        return self._elementwise(device, "mse/forward_backward.comp", pred, target, dloss, loss, dpred, "MSE")


class BCEWithLogitsLoss(Loss):
    """Sigmoid + binary cross entropy on logits (torch.nn.functional.binary_cross_entropy_with_logits
    without weights): max(x, 0) - x t + log1p(exp(-|x|)) per element, stable for any logit; float
    targets of the prediction's shape (finite; 0..1 for probabilities, though like PyTorch any value
    is accepted). reduction='mean' divides by the element count."""

    def target_shape(self, batch: int, out_features: int) -> tuple:
        return (batch, out_features)

    def check_target(self, target, batch: int, out_features: int) -> np.ndarray:
        return checks.float_array(target, "targets", (batch, out_features))

    def dispatch(self, device, pred, target, dloss, loss, dpred):
        return self._elementwise(device, "bce_with_logits/forward_backward.comp", pred, target, dloss, loss, dpred,
                                 "BCE with logits")


class KLDivLoss(Loss):
    """Kullback-Leibler divergence (torch.nn.functional.kl_div): the prediction is log-probabilities
    x, the target probabilities t (finite, >= 0) or, with log_target=True, log-probabilities
    (finite), both of the prediction's shape. Pointwise t (log t - x), 0 where t == 0
    (exp(t) (t - x) with log_target). reduction: 'mean' (the default, as PyTorch's) divides by the
    element count, 'batchmean' by the batch size (the mathematical KL divergence), 'sum' by 1."""
    reductions = ("mean", "sum", "batchmean")

    def __init__(self, reduction: str = "mean", log_target: bool = False):
        super().__init__(reduction)
        self.log_target = _flag("KLDivLoss", "log_target", log_target)

    def _args(self) -> dict:
        return dict(super()._args(), **({"log_target": True} if self.log_target else {}))

    def target_shape(self, batch: int, out_features: int) -> tuple:
        return (batch, out_features)

    def check_target(self, target, batch: int, out_features: int) -> np.ndarray:
        if self.log_target:
            return checks.float_array(target, "targets", (batch, out_features))
        return _probabilities(target, "targets", (batch, out_features), rows_sum_to_one=False,
                              negative_hint=" (for log-probability targets use KLDivLoss(log_target=True))")

    def dispatch(self, device, pred, target, dloss, loss, dpred):
        return self._elementwise(device, "kl_div/forward_backward.comp", pred, target, dloss, loss, dpred,
                                 "KL divergence", B=pred.shape[0], LOG_TARGET=self.log_target)
