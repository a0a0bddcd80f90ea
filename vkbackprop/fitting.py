"""Trainer.fit and Trainer.evaluate: epochs of training steps over a data set, and float64 metrics.

Batches of an epoch: the rows in a shuffled order (a permutation from `np.random.default_rng(seed)`,
one per epoch, or 0..n-1 without shuffling) cut into ceil(n / batch_size) batches. A training step
needs exactly batch_size rows, so the last, partial batch is filled by wrapping around: it continues
with the first rows of the same epoch's order (positions taken modulo n, so a data set smaller than a
batch repeats rows). Every row is trained on at least once per epoch; the wrapped-in rows a second time.
The same seed gives the same batches, losses and parameters.
"""

from __future__ import annotations

import math

import numpy as np
from tqdm import tqdm

from . import reference
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, KLDivLoss, MSELoss, NLLLoss


def epoch_batches(rows: int, batch_size: int, epoch_rng: np.random.Generator | None) -> list:
    """Index arrays of one epoch's batches (each exactly batch_size rows; see the module docstring).
    `epoch_rng` None: no shuffling."""
    order = epoch_rng.permutation(rows) if epoch_rng is not None else np.arange(rows)
    steps = math.ceil(rows / batch_size)
    positions = np.arange(steps * batch_size) % rows
    return [order[positions[k * batch_size:(k + 1) * batch_size]] for k in range(steps)]


def batch_order(rows: int, batch_size: int, epochs: int, shuffle: bool = True, seed: int = 0) -> list:
    """The batches `fit` trains on: a list per epoch of index arrays (for reproducing a fit by hand)."""
    rng = np.random.default_rng(seed)
    return [epoch_batches(rows, batch_size, rng if shuffle else None) for _ in range(epochs)]


def _labelled(losses) -> bool:
    """Whether accuracy is defined: one output whose loss takes integer class labels."""
    if len(losses) != 1:
        return False
    loss = losses[0]
    return isinstance(loss, NLLLoss) or (isinstance(loss, CrossEntropyLoss) and loss.target == "labels")


def _check_data(trainer, x, y, what: str = ""):
    """Validated inputs (list of float32 arrays), targets (list, one per loss) and the row count."""
    xs = trainer._check_inputs(x, None)
    rows = len(xs[0])
    if any(len(a) != rows for a in xs):
        raise ValueError(f"{what}x: the inputs have different numbers of rows {[len(a) for a in xs]}")
    if rows == 0:
        raise ValueError(f"{what}x: no rows")
    from .train import _per_item, _prefixed
    ys = _per_item(y, len(trainer.losses), f"{what}y", "output")
    out = []
    for i, (loss, t, v) in enumerate(zip(trainer.losses, ys, trainer.model.outputs)):
        where = f"{what}y" if len(ys) == 1 else f"{what}y[{i}]"
        out.append(_prefixed(lambda: loss.check_target(t, rows, v.width), where))
    return xs, out, rows


def loss_value(loss, pred, target) -> float:
    """The loss of `pred` (all rows at once) in float64 NumPy, with the loss's own reduction and options."""
    if isinstance(loss, CrossEntropyLoss):
        return reference.cross_entropy_forward(pred, target, loss.reduction, loss.label_smoothing)
    if isinstance(loss, NLLLoss):
        return reference.nll_forward(pred, target, loss.reduction)
    if isinstance(loss, MSELoss):
        return reference.mse_forward(pred, target, loss.reduction)
    if isinstance(loss, BCEWithLogitsLoss):
        return reference.bce_with_logits_forward(pred, target, loss.reduction)
    if isinstance(loss, KLDivLoss):
        return reference.kl_div_forward(pred, target, loss.reduction, loss.log_target)
    raise ValueError(f"evaluate: no float64 reference for {type(loss).__name__}")


def _metrics(trainer, xs, ys) -> dict:
    outs = trainer.predict(xs if len(xs) > 1 else xs[0])
    outs = outs if isinstance(outs, list) else [outs]
    result = {"loss": float(sum(loss_value(l, o, t) for l, o, t in zip(trainer.losses, outs, ys)))}
    if _labelled(trainer.losses):
        result["accuracy"] = float(np.mean(outs[0].argmax(axis=1) == ys[0]))
    return result


def evaluate(trainer, x, y) -> dict:
    """{'loss': ..., 'accuracy': ...} over every row of (x, y); see Trainer.evaluate."""
    xs, ys, _ = _check_data(trainer, x, y)
    return _metrics(trainer, xs, ys)


def fit(trainer, x, y, epochs: int, validation_data=None, shuffle: bool = True, seed: int = 0,
        verbose: bool = True) -> dict:
    """See Trainer.fit."""
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"fit: epochs must be an int >= 0, got {epochs!r}")
    if not isinstance(shuffle, (bool, np.bool_)):
        raise ValueError(f"fit: shuffle must be True or False, got {shuffle!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"fit: seed must be an int >= 0, got {seed!r}")
    xs, ys, rows = _check_data(trainer, x, y)
    val = None
    if validation_data is not None:
        if not isinstance(validation_data, (list, tuple)) or len(validation_data) != 2:
            raise ValueError("fit: validation_data must be a pair (x_val, y_val)")
        val = _check_data(trainer, *validation_data, what="validation_data ")

    labelled = _labelled(trainer.losses)
    history = {"loss": []}
    if labelled:
        history["accuracy"] = []
    if val is not None:
        history["val_loss"] = []
        if labelled:
            history["val_accuracy"] = []

    rng = np.random.default_rng(int(seed))
    b = trainer.batch_size
    one_x = len(xs) == 1
    for epoch in range(int(epochs)):
        batches = epoch_batches(rows, b, rng if shuffle else None)
        losses, correct, seen = [], 0, 0
        with tqdm(total=rows, desc=f"epoch {epoch + 1}/{epochs}", unit="sample", disable=not verbose,
                  dynamic_ncols=True) as bar:
            for k, idx in enumerate(batches):
                fresh = min(b, rows - k * b)   # rows of this batch not wrapped in from the start
                bx = [a[idx] for a in xs]
                by = [t[idx] for t in ys]
                losses.append(trainer.step(bx[0] if one_x else bx, by[0] if len(by) == 1 else by))
                if labelled:   # the logits of the step's (training-mode) forward, before its update
                    logits = trainer.device.read(trainer.plan.outputs[0])
                    correct += int((logits[:fresh].argmax(axis=1) == by[0][:fresh]).sum())
                    seen += fresh
                bar.update(fresh)
                bar.set_postfix(loss=f"{np.mean(losses):.4f}", refresh=False)
            history["loss"].append(float(np.mean(losses)))
            if labelled:
                history["accuracy"].append(correct / seen)
            if val is not None:
                metrics = _metrics(trainer, val[0], val[1])
                history["val_loss"].append(metrics["loss"])
                if labelled:
                    history["val_accuracy"].append(metrics["accuracy"])
            bar.set_postfix({key: f"{values[-1]:.4f}" for key, values in history.items()})
    return history
