"""Trainer: one recorded GPU training step per call, PyTorch-like."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from . import checks
from .device import Device
from .losses import Loss
from .model import Model
from .optim import Optimizer
from .optim.base import check_number
from .plan import StepPlan


class Trainer:
    """Trains a Model (or Sequential). With several outputs, `loss` is a list with one loss per
    output and the step minimises their sum; `x` and `y` are then lists too (one array per model
    input / output).

    clip_grad_norm: None, or max_norm of torch.nn.utils.clip_grad_norm_ (global 2-norm over all
    parameter gradients, computed on the GPU in a fixed order, so bit-reproducible): the gradients
    are scaled by min(max_norm / (total_norm + 1e-6), 1) before the optimizer (weight decay then
    acts on the clipped gradient, like torch). `last_grad_norm` is the total norm of the last step,
    before clipping.

    on_nonfinite: every step checks on the GPU whether a loss or the gradient norm is NaN/Inf; such
    a step writes nothing (parameters and optimizer state keep their bits). 'raise' (default):
    FloatingPointError naming the step (`steps`, 0-based) and the first parameter whose gradient is
    not finite (or the loss). 'skip': step returns the non-finite loss, `skipped_steps` counts it and
    `steps` does not advance, so schedules, Adam's bias corrections and SGD's first-momentum step
    see only the steps that happened (like torch.cuda.amp.GradScaler skipping optimizer.step()).

    resume: a checkpoint path (`trainer.save`) to continue from: parameters, buffers, optimizer
    state, counts and fit history are restored (see load_state).

    distributed: data-parallel over the ranks of an MPI job (vkbackprop.distributed): every rank
    is given the same global batches of batch_size rows (which the world size must divide) and
    trains on its shard; gradients are averaged over the ranks. None (default): on when the
    process runs under mpirun with more than one rank."""

    def __init__(self, model: Model, loss, optimizer: Optimizer, batch_size: int, device: Device | None = None,
                 clip_grad_norm: float | None = None, on_nonfinite: str = "raise", resume=None,
                 distributed: bool | None = None):
        losses = _checked_arguments(model, loss, optimizer, batch_size, on_nonfinite, distributed)
        if clip_grad_norm is not None:
            clip_grad_norm = check_number("Trainer", "clip_grad_norm", clip_grad_norm, minimum=0.0)
        self.model, self.losses, self.optimizer = model, losses, optimizer
        self._value_checks = _direct_consumers(model)   # layers that check the data of model inputs
        self.batch_size = int(batch_size)
        self.clip_grad_norm, self.on_nonfinite = clip_grad_norm, on_nonfinite
        device = self._join_ranks(distributed, device)
        self.device = device or Device.default()
        model.bind(self.device)
        from .distributed import DataParallelPlan
        plan = DataParallelPlan if self.comm else StepPlan
        self.plan = plan(self.device, model, losses, optimizer, self.local_batch, clip_grad_norm=clip_grad_norm)
        self.steps = 0   # training steps taken; with a layer's seed, it picks that step's random numbers
        self.skipped_steps = 0      # non-finite steps skipped with on_nonfinite='skip'
        self.last_grad_norm = None  # total gradient norm of the last step, before clipping
        self.epochs = 0             # epochs completed by fit (it resumes the shuffle order from here)
        self.history = {}           # fit's per-epoch metrics over every fit call (and resumed runs)
        if resume is not None:
            self.load_state(resume)

    def _join_ranks(self, distributed, device):
        """Data-parallel set-up: `comm` (None for one process), `local_batch` (this process's rows
        per step) and, without a given device, this rank's device (None: the default)."""
        from . import distributed as dist
        if distributed is None:
            distributed = dist.mpi_world_size() > 1
        self.comm = dist.Communicator() if distributed else None
        ranks = self.comm.size if self.comm else 1
        if self.batch_size % ranks:
            raise ValueError(f"Trainer: batch_size {self.batch_size} does not divide over {ranks} ranks; "
                             f"use a multiple of {ranks}")
        self.local_batch = self.batch_size // ranks
        if device is None and self.comm:
            from .device import list_devices
            index = dist.choose_device_index(list_devices(), self.comm.local_rank, self.comm.local_size)
            device = Device(index) if index is not None else None
        return device

    @property
    def loss(self) -> Loss:
        return self.losses[0]

    def step(self, x, y) -> float:
        """One training step on a batch (batch_size rows): forward, loss, backward, update.
        Returns the loss (the sum of the losses of a model with several outputs)."""
        xs = self._check_inputs(x, self.batch_size)
        ys = _per_item(y, len(self.losses), "y", "output")
        ys = [loss.check_target(t, self.batch_size, v.width) if len(ys) == 1 else
              _prefixed(lambda: loss.check_target(t, self.batch_size, v.width), f"y[{i}]")
              for i, (loss, t, v) in enumerate(zip(self.losses, ys, self.model.outputs))]
        self._submit(xs, ys)
        return self._collect()

    def _submit(self, xs: list, ys: list) -> None:
        """Start the recorded step on checked batch arrays and return at once (the GPU runs it;
        the host may prepare the next batch meanwhile); `_collect` waits for it."""
        plan = self.plan
        if self.comm:   # this rank's shard of the global batch
            lo = self.comm.rank * self.local_batch
            xs, ys = [a[lo:lo + self.local_batch] for a in xs], [t[lo:lo + self.local_batch] for t in ys]
        for buf, value in zip(plan.inputs + plan.targets, xs + ys):
            buf.host_view()[...] = value
        # Step-dependent optimizer values (scheduled lr, bias corrections) for this trainer's step.
        plan.hyper.host_view()[...] = self.optimizer.hyper_values(self.steps)
        plan.step.host_view()[...] = self.steps
        plan.train.sequence.eval_async()

    def _collect(self) -> float:
        """Wait for the step `_submit` started; its loss (the guard raises or counts a skip)."""
        plan = self.plan
        if self.comm:   # the other backward segments, the gradient all-reduce and the update
            loss = plan.run_step(self.comm, self.steps)
        else:
            plan.train.sequence.eval_await()
            loss = float(sum(float(b.host_view()[0]) for b in plan.losses))
        if self._check_guard(loss):
            self.steps += 1
        return loss

    def _check_guard(self, loss: float) -> bool:
        """Reads the guard the step downloaded: True for a finite step; a non-finite one raises or
        is counted as skipped and gives False (the GPU already wrote nothing for it)."""
        coef, norm, bad, first = (float(v) for v in self.plan.guard.host_view())
        self.last_grad_norm = norm
        if bad == 0.0:
            return True
        if first > 0:
            name = self.plan.param_names[int(first) - 1]
            what = f"the gradient of parameter '{name}' (gradient norm {norm})"
        elif not np.isfinite(loss):
            what = f"the loss ({loss})"
        else:
            what = f"the total gradient norm ({norm})"
        if self.on_nonfinite == "skip":
            self.skipped_steps += 1
            return False
        raise FloatingPointError(f"Trainer.step: {what} is not finite at step {self.steps}; nothing was "
                                 "written (parameters and optimizer state unchanged)")

    def predict(self, x):
        """Model outputs for any number of rows (forward only), in chunks of batch_size; a list of
        arrays for a model with several outputs."""
        xs = self._check_inputs(x, None)
        rows = len(xs[0])
        if any(len(a) != rows for a in xs):
            raise ValueError(f"x: the inputs have different numbers of rows {[len(a) for a in xs]}")
        if self.comm:   # each rank predicts a block of rows; every rank gets all of them
            self._use_rank0_buffers()
            block = -(-rows // self.comm.size)
            mine = self._predict_rows([a[self.comm.rank * block:(self.comm.rank + 1) * block] for a in xs])
            outs = [self.comm.gather_rows(o, "predict (gathering rows)") for o in mine]
        else:
            outs = self._predict_rows(xs)
        return outs[0] if len(outs) == 1 else outs

    def _use_rank0_buffers(self) -> None:
        """Running statistics are each rank's own while training (PyTorch DDP's per-rank batch
        statistics); eval mode uses rank 0's on every rank, as DDP's default buffer broadcast does."""
        store = self.model._store
        if store.states:
            values = {name: self.comm.broadcast(self.device.read(buf), f"broadcasting buffer '{name}'")
                      for name, buf in store.states.items()}
            for name, value in values.items():
                self.device.write(store.states[name], value)

    def _predict_rows(self, xs: list) -> list:
        """Outputs of this process's device for the rows of xs, in chunks of its planned batch."""
        rows = len(xs[0])
        plan, b = self.plan, self.local_batch
        outs = [np.empty((rows, v.width), dtype=np.float32) for v in self.model.outputs]
        for start in range(0, rows, b):
            n = min(b, rows - start)
            for buf, a in zip(plan.inputs, xs):
                view = buf.host_view()
                view[:n] = a[start:start + n]
                view[n:] = 0.0   # padding rows: computed, never returned
            plan.predict.sequence.eval()
            for out, buf in zip(outs, plan.outputs):
                out[start:start + n] = buf.host_view()[:n]
        return outs

    def _count_correct(self, labels: np.ndarray, fresh: int) -> int:
        """Argmax hits of the last step's training-mode logits among the batch's first `fresh`
        rows (over every rank)."""
        logits = self.device.read(self.plan.outputs[0])
        lo = self.comm.rank * self.local_batch if self.comm else 0
        mine = max(0, min(fresh - lo, self.local_batch))
        hits = int((logits[:mine].argmax(axis=1) == labels[lo:lo + mine]).sum())
        return int(self.comm.sum(np.array([hits]), "the accuracy count")[0]) if self.comm else hits

    def fit(self, x, y, epochs: int, validation_data=None, shuffle: bool = True, seed: int = 0,
            verbose: bool = True, checkpoint=None) -> dict:
        """Train `epochs` more epochs of ceil(n / batch_size) steps; returns their history, a dict of
        per-epoch lists: 'loss' (mean of the epoch's step losses) and, for one output with integer
        labels (CrossEntropyLoss(target='labels'), NLLLoss), 'accuracy' (of the training-mode logits
        of each step, every row counted once); with validation_data=(x_val, y_val) also 'val_loss'
        and 'val_accuracy' (Trainer.evaluate after each epoch). `trainer.history` collects every
        epoch of every fit (and survives checkpoints); `trainer.epochs` counts them. Epoch e (counted
        over the trainer's life) shuffles the rows by np.random.default_rng((seed, e)), so a resumed
        run continues the same order; the last partial batch wraps around to the first rows of the
        epoch's order (vkbackprop.fitting.batch_order lists the batches). While the GPU runs a step,
        the host gathers the next batch. `checkpoint`: a path saved (atomically) after each epoch.
        A tqdm bar (loss, samples/s, ETA) per epoch unless verbose=False."""
        from .fitting import fit
        return fit(self, x, y, epochs, validation_data=validation_data, shuffle=shuffle, seed=seed,
                   verbose=verbose, checkpoint=checkpoint)

    def evaluate(self, x, y) -> dict:
        """{'loss': ..., 'accuracy': ...} over every row of (x, y): the outputs of predict (eval
        mode) and the model's loss (its reduction and options; the sum for several outputs) in float64
        NumPy; 'accuracy' only for one output with integer labels. Inputs are checked like step's."""
        from .fitting import evaluate
        return evaluate(self, x, y)

    def gradients(self) -> "OrderedDict[str, np.ndarray]":
        """Parameter gradients of the last step, named like state_dict()."""
        return OrderedDict((name, self.device.read(buf)) for name, buf in self.plan.param_grads.items())

    def device_memory(self) -> dict:
        """Bytes of device memory the planned step holds, by kind: {'parameters', 'activations',
        'activation gradients', 'parameter gradients', 'optimizer state', 'other'} (this process's
        plan; like torch.cuda.memory_allocated, broken down)."""
        return self.plan.device_bytes()

    def optimizer_state(self) -> "OrderedDict[str, dict]":
        """The optimizer state on the device, per parameter (named like state_dict()): e.g.
        {'0.weight': {'exp_avg': ..., 'exp_avg_sq': ...}}, PyTorch's state names; empty dicts for plain SGD."""
        return OrderedDict((name, {s: self.device.read(buf) for s, buf in state.items()})
                           for name, state in self.plan.optimizer_state.items())

    def save(self, path) -> None:
        """Write a checkpoint (safetensors: parameters, buffers, optimizer state, step and epoch
        counts, fit history, optimizer description, format version, checksum) atomically to `path`
        (vkbackprop.checkpoint)."""
        from .checkpoint import save
        if self.comm is None or self.comm.rank == 0:   # every rank holds the same state: rank 0 writes
            save(self, path)
        if self.comm:
            self.comm.barrier(f"saving the checkpoint {path}")

    def load_state(self, path) -> None:
        """Resume from a checkpoint of a trainer built the same way (model, optimizer kind, Dropout
        seeds): restores parameters, buffers, optimizer state, `steps`, `skipped_steps`, `epochs` and
        `history`. A damaged or mismatched file raises ValueError and changes nothing
        (vkbackprop.checkpoint)."""
        from .checkpoint import load
        load(self, path)

    def _check_inputs(self, x, rows) -> list:
        inputs = self.model.inputs
        xs = _per_item(x, len(inputs), "x", "input")
        if len(xs) == 1:
            xs = [checks.float_array(xs[0], "x", (rows, inputs[0].width))]
        else:
            xs = [checks.float_array(a, f"x[{i}] ({v.name})", (rows, v.width)) for i, (a, v) in enumerate(zip(xs, inputs))]
        for i, call, j in self._value_checks:   # token ids, lengths: the layers' own checks
            where = "x" if len(xs) == 1 else f"x[{i}] ({inputs[i].name})"
            _prefixed(lambda: call.layer.check_input_values(j, xs[i], [v.shape for v in call.inputs]), where)
        return xs


def _checked_arguments(model, loss, optimizer, batch_size, on_nonfinite, distributed) -> list:
    """The Trainer's arguments checked (ValueError naming the bad one); returns the list of losses."""
    if not isinstance(model, Model):
        raise ValueError(f"Trainer: model must be a vkbackprop Model or Sequential, got {_qualname(model)}")
    losses = list(loss) if isinstance(loss, (list, tuple)) else [loss]
    for item in losses:
        if not isinstance(item, Loss):
            raise ValueError(f"Trainer: loss must be a vkbackprop loss, got {_qualname(item)}")
    if len(losses) != len(model.outputs):
        raise ValueError(f"Trainer: the model has {len(model.outputs)} outputs but {len(losses)} losses were given")
    if not isinstance(optimizer, Optimizer):
        raise ValueError(f"Trainer: optimizer must be a vkbackprop optimizer, got {_qualname(optimizer)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"Trainer: batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(on_nonfinite, str) or on_nonfinite not in ("raise", "skip"):
        raise ValueError(f"Trainer: on_nonfinite must be 'raise' or 'skip', got {on_nonfinite!r}")
    if distributed is not None and not isinstance(distributed, bool):
        raise ValueError(f"Trainer: distributed must be True, False or None, got {distributed!r}")
    return losses


def _direct_consumers(model) -> list:
    """(model input index, call, input position) for every layer input that is a model input, or a
    view of one (views keep the values)."""
    index = {id(v): i for i, v in enumerate(model.inputs)}
    source = {}
    for call in model.calls:
        if getattr(call.layer, "is_view", False) and id(call.inputs[0]) in index:
            index[id(call.output)] = index[id(call.inputs[0])]
    for call in model.calls:
        for j, v in enumerate(call.inputs):
            if id(v) in index and not getattr(call.layer, "is_view", False):
                source.setdefault((id(call), j), (index[id(v)], call, j))
    return list(source.values())


def _per_item(value, count: int, name: str, what: str) -> list:
    """One array per model input/output: the value itself for one, a list or tuple for several."""
    if count == 1:
        return [value]
    if not isinstance(value, (list, tuple)) or len(value) != count:
        got = f"{len(value)} items" if isinstance(value, (list, tuple)) else type(value).__name__
        raise ValueError(f"{name}: the model has {count} {what}s; expected a list of {count} arrays, got {got}")
    return list(value)


def _prefixed(check, where: str):
    try:
        return check()
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def _qualname(obj) -> str:
    """'torch.nn.modules.container.Sequential' rather than an ambiguous 'Sequential'; 'str' for builtins."""
    cls = type(obj)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
