"""The optimizer interface, shared argument checks and the state-zeroing dispatch.

An optimizer updates parameters on the GPU, one dispatch per parameter (SGD without momentum: up to 6
per dispatch), recorded once into the
training step. Everything that may change between steps (learning rate, its schedule, betas, weight
decay, Adam's bias corrections, SGD's first-step flag) is folded on the host into a few float32
values, `hyper_values(step)`, uploaded with every batch into the plan's `hyper` buffer; so changing
them never re-records the step. What must not change after the plan is made (whether there is a
momentum buffer, nesterov, amsgrad: they pick shaders and state) is fixed when the optimizer is made.

Optimizer state (momentum buffers, Adam's moments) is one set of device-only buffers per parameter,
described by `state_shapes(param_shape)`, allocated by the plan and zeroed there once with
`fill` (device-only memory is not initialised), then handed to `update`.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..layers.activation import elementwise


class Optimizer:
    """Base class: subclasses define `hyper_values`, `state_shapes` and `update`."""

    _lr: float
    _schedule = None

    # --- what the plan and the trainer call ----------------------------------------------
    def hyper_values(self, step: int) -> np.ndarray:
        """The float32 values of the hyper buffer for the step with 0-based index `step` (the number of
        steps this plan took before; PyTorch's state['step'] after its increment is `step + 1`).
        Its length never changes."""
        raise NotImplementedError

    def state_shapes(self, param_shape: tuple) -> dict:
        """Optimizer state per parameter: {state name: shape}, e.g. {'exp_avg': param_shape}."""
        return {}

    def update(self, device, hyper, param, grad, state: dict, guard):
        """The one dispatch that updates `param` from `grad`; `state` maps the names of
        `state_shapes` to their (zeroed) device buffers. `guard` is the step's [clip coefficient,
        total norm, bad, first bad parameter + 1] (shaders/guard/guard.comp): the shader uses
        `grad * coef` and, when bad is set, writes nothing (neither the parameter nor the state)."""
        raise NotImplementedError

    def updates(self, device, hyper, items: list, guard) -> list:
        """The dispatches updating every (param, grad, state) of `items`, as `update` does each; an
        optimizer with a multi-parameter (foreach) shader overrides this to update several per dispatch."""
        return [self.update(device, hyper, param, grad, state, guard) for param, grad, state in items]

    @property
    def weight_decay(self) -> float:
        """L2 penalty (SGD, Adam) or decoupled decay (AdamW); may change between steps."""
        return self._weight_decay

    @weight_decay.setter
    def weight_decay(self, value) -> None:
        self._weight_decay = check_number(self, "weight_decay", value, minimum=0.0)

    # --- learning rate and its schedule --------------------------------------------------
    @property
    def lr(self) -> float:
        """The base learning rate; with a schedule, step k uses `schedule.lr(lr, k)` (see `lr_at`)."""
        return self._lr

    @lr.setter
    def lr(self, value) -> None:
        self._lr = check_number(self, "lr", value, minimum=0.0)

    @property
    def schedule(self):
        """An LRSchedule (vkbackprop.optim.lr_scheduler) or None: advanced once per training step."""
        return self._schedule

    @schedule.setter
    def schedule(self, value) -> None:
        from .lr_scheduler import LRSchedule
        if value is not None and not isinstance(value, LRSchedule):
            raise ValueError(f"{type(self).__name__}: schedule must be a vkbackprop learning-rate schedule "
                             f"(e.g. vb.StepLR) or None, got {type(value).__name__}")
        self._schedule = value

    def lr_at(self, step: int) -> float:
        """The learning rate of the step with 0-based index `step` (the trainer's `steps` before it)."""
        if self._schedule is None:
            return self._lr
        lr = self._schedule.lr(self._lr, step)
        with np.errstate(over="ignore"):
            ok = math.isfinite(lr) and lr >= 0.0 and math.isfinite(float(np.float32(lr)))
        if not ok:
            raise ValueError(f"{type(self).__name__}: the schedule gives learning rate {lr!r} at step {step}; "
                             "expected a finite number >= 0")
        return lr


def fill(device, buffer, value: float = 0.0):
    """A dispatch that sets every element of a float buffer to `value` (shaders/optim/fill.comp)."""
    return elementwise(device, "optim/fill.comp", {"values": buffer}, buffer.size, {"VALUE": value},
                       name=f"fill {buffer.name}")


def copy(device, src, dst, src_offset: int = 0, dst_offset: int = 0, numel: int | None = None):
    """A dispatch that copies `numel` floats of `src` from `src_offset` into `dst` at `dst_offset`
    (default: all of `src` into all of `dst`, the same size; shaders/optim/copy.comp): how host
    values reach device-only optimizer state through a staged `src` (a checkpoint's), and how
    data-parallel training packs gradients into flat buckets."""
    if numel is None:
        if src.size != dst.size:
            raise ValueError(f"copy: '{src.name}' has {src.size} elements, '{dst.name}' {dst.size}")
        numel = dst.size
    if src_offset + numel > src.size or dst_offset + numel > dst.size:
        raise ValueError(f"copy: {numel} elements from '{src.name}'[{src_offset}:] to '{dst.name}'[{dst_offset}:] "
                         f"run past {src.size} / {dst.size} elements")
    program = device.program("optim/copy.comp")
    return device.dispatch(program, {"src": src, "dst": dst}, device.grid_1d(numel, program.local_size[0]),
                           {"NUMEL": numel, "SRC_OFFSET": src_offset, "DST_OFFSET": dst_offset},
                           name=f"copy {src.name} -> {dst.name}")


def check_number(owner, name: str, value, minimum: float | None = None, below: float | None = None) -> float:
    """A finite real number (not a bool), also finite in float32, in [minimum, below); else a
    ValueError naming the optimizer, the argument, what was expected and what was given."""
    who = owner if isinstance(owner, str) else type(owner).__name__
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
    if ok:
        with np.errstate(over="ignore"):
            ok = math.isfinite(float(np.float32(value)))
    ok = ok and (minimum is None or value >= minimum) and (below is None or value < below)
    if not ok:
        expected = "a finite number"
        if minimum is not None and below is not None:
            expected += f" in [{minimum:g}, {below:g})"
        elif minimum is not None:
            expected += f" >= {minimum:g}"
        raise ValueError(f"{who}: {name} must be {expected}, got {value!r}")
    return float(value)


def check_bool(owner, name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{type(owner).__name__}: {name} must be True or False, got {value!r}")
    return bool(value)
