"""Trainer.fit and Trainer.evaluate: epochs of training steps over a data set, and float64 metrics.

Batches of an epoch: the rows in a shuffled order (a permutation from
`np.random.default_rng((seed, epoch))`, epoch counted over the trainer's life so that a resumed run
continues the same sequence, or 0..n-1 without shuffling) cut into ceil(n / batch_size) batches. A training step
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


def batch_order(rows: int, batch_size: int, epochs: int, shuffle: bool = True, seed: int = 0,
                first_epoch: int = 0) -> list:
    """The batches `fit` trains on in epochs first_epoch, first_epoch + 1, ...: a list per epoch of
    index arrays (for reproducing a fit by hand)."""
    return [epoch_batches(rows, batch_size, np.random.default_rng((seed, e)) if shuffle else None)
            for e in range(first_epoch, first_epoch + epochs)]


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


def _gather(xs: list, ys: list, idx: np.ndarray) -> tuple:
    """One batch's rows of every input and target (the host-side preparation of a step)."""
    return [a[idx] for a in xs], [t[idx] for t in ys]


def fit(trainer, x, y, epochs: int, validation_data=None, shuffle: bool = True, seed: int = 0,
        verbose: bool = True, checkpoint=None) -> dict:
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

    b = trainer.batch_size
    first = trainer.epochs
    for epoch, batches in enumerate(batch_order(rows, b, int(epochs), bool(shuffle), int(seed), first), first):
        losses, correct, seen = [], 0, 0
        quiet = not verbose or (trainer.comm is not None and trainer.comm.rank != 0)   # one bar per job
        with tqdm(total=rows, desc=f"epoch {epoch + 1}/{first + epochs}", unit="sample", disable=quiet,
                  dynamic_ncols=True) as bar:
            ahead = _gather(xs, ys, batches[0])
            for k in range(len(batches)):
                bx, by = ahead
                trainer._submit(bx, by)    # the data was checked once, up front
                try:
                    if k + 1 < len(batches):
                        ahead = _gather(xs, ys, batches[k + 1])   # host work overlapping the GPU step
                finally:
                    losses.append(trainer._collect())
                fresh = min(b, rows - k * b)   # rows of this batch not wrapped in from the start
                if labelled:   # the logits of the step's (training-mode) forward, before its update
                    correct += trainer._count_correct(by[0], fresh)
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
        trainer.epochs += 1
        for key, values in history.items():
            trainer.history.setdefault(key, []).append(values[-1])
        if checkpoint is not None:
            trainer.save(checkpoint)
    return history
