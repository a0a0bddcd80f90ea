"""Learning-rate schedules, computed on the host: PyTorch's torch.optim.lr_scheduler as pure functions.

A schedule maps (base learning rate, step index) to the learning rate of that step:
`schedule.lr(base_lr, k)`. It is attached to an optimizer (`vb.Adam(lr=1e-3, schedule=...)` or
`opt.schedule = ...`), and a Trainer's k-th `step()` (k = 0, 1, ...; `trainer.steps` before it)
uses `opt.lr_at(k) = schedule.lr(opt.lr, k)`. The schedule thus advances once per training step, as
calling PyTorch's `scheduler.step()` after every `optimizer.step()` does; for a per-epoch schedule,
give its lengths in steps (e.g. `StepLR(step_size=epochs * steps_per_epoch)`). A schedule only
changes the values uploaded into the hyper buffer: it never re-records the step.

The values equal those of PyTorch's schedulers (which mostly use recursive forms; these are the
closed forms PyTorch documents, equal up to float64 rounding):

| here | PyTorch |
|---|---|
| `StepLR(step_size, gamma=0.1)` | `StepLR(opt, step_size, gamma)` |
| `ExponentialLR(gamma)` | `ExponentialLR(opt, gamma)` |
| `CosineAnnealingLR(T_max, eta_min=0)` | `CosineAnnealingLR(opt, T_max, eta_min)` (periodic past T_max, as PyTorch) |
| `LinearLR(start_factor=1/3, end_factor=1, total_iters=5)` | `LinearLR(opt, start_factor, end_factor, total_iters)` |
| `LinearWarmup(warmup_steps, start_factor=1/3)` | `LinearLR(opt, start_factor, 1.0, total_iters=warmup_steps)` |
| `SequentialLR(schedules, milestones)` | `SequentialLR(opt, schedulers, milestones)` |
| `ChainedScheduler(schedules)` | `ChainedScheduler(schedulers)` |
"""

from __future__ import annotations

import bisect
import math
import numbers

from .base import check_number


class LRSchedule:
    """Base class. `lr(base_lr, step)`: the learning rate of step `step` (0-based). Multiplicative
    schedules (lr = base_lr * factor(step)) can be chained with ChainedScheduler."""

    multiplicative = True

    def factor(self, step: int) -> float:
        """lr / base_lr at `step` (multiplicative schedules only)."""
        raise NotImplementedError

    def lr(self, base_lr: float, step: int) -> float:
        _check_step(self, step)
        return base_lr * self.factor(step)

    def lrs(self, base_lr: float, steps: int) -> list:
        """The learning rates of steps 0 .. steps-1."""
        return [self.lr(base_lr, k) for k in range(steps)]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._args().items())
        return f"{type(self).__name__}({args})"

    def _args(self) -> dict:
        return {}


class StepLR(LRSchedule):
    """lr = base_lr * gamma ** (step // step_size)."""

    def __init__(self, step_size: int, gamma: float = 0.1):
        self.step_size = _check_int(self, "step_size", step_size, minimum=1)
        self.gamma = check_number(self, "gamma", gamma, minimum=0.0)

    def factor(self, step: int) -> float:
        return self.gamma ** (step // self.step_size)

    def _args(self) -> dict:
        return {"step_size": self.step_size, "gamma": self.gamma}


class ExponentialLR(LRSchedule):
    """lr = base_lr * gamma ** step."""

    def __init__(self, gamma: float):
        self.gamma = check_number(self, "gamma", gamma, minimum=0.0)

    def factor(self, step: int) -> float:
        return self.gamma ** step

    def _args(self) -> dict:
        return {"gamma": self.gamma}


class CosineAnnealingLR(LRSchedule):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * step / T_max)) / 2: from base_lr at step 0
    down to eta_min at step T_max; past T_max it rises again (period 2 T_max), as in PyTorch."""

    def __init__(self, T_max: int, eta_min: float = 0.0):
        self.T_max = _check_int(self, "T_max", T_max, minimum=1)
        self.eta_min = check_number(self, "eta_min", eta_min, minimum=0.0)

    @property
    def multiplicative(self) -> bool:
        return self.eta_min == 0.0

    def _cosine(self, step: int) -> float:
        return (1 + math.cos(math.pi * step / self.T_max)) / 2

    def factor(self, step: int) -> float:
        if not self.multiplicative:
            raise ValueError(f"{self!r} with eta_min != 0 is not a multiple of the base learning rate")
        return self._cosine(step)

    def lr(self, base_lr: float, step: int) -> float:
        _check_step(self, step)
        return self.eta_min + (base_lr - self.eta_min) * self._cosine(step)

    def _args(self) -> dict:
        return {"T_max": self.T_max, "eta_min": self.eta_min}


class LinearLR(LRSchedule):
    """lr = base_lr * (start_factor + (end_factor - start_factor) * min(step, total_iters) / total_iters)."""

    def __init__(self, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5):
        self.start_factor = check_number(self, "start_factor", start_factor)
        if not 0 < self.start_factor <= 1:
            raise ValueError(f"{type(self).__name__}: start_factor must be in (0, 1], got {start_factor!r}")
        self.end_factor = check_number(self, "end_factor", end_factor)
        if not 0 <= self.end_factor <= 1:
            raise ValueError(f"{type(self).__name__}: end_factor must be in [0, 1], got {end_factor!r}")
        self.total_iters = _check_int(self, "total_iters", total_iters, minimum=1)

    def factor(self, step: int) -> float:
        return (self.start_factor
                + (self.end_factor - self.start_factor) * min(self.total_iters, step) / self.total_iters)

    def _args(self) -> dict:
        return {"start_factor": self.start_factor, "end_factor": self.end_factor, "total_iters": self.total_iters}


class LinearWarmup(LinearLR):
    """Linear warm-up from start_factor * base_lr at step 0 to base_lr at step warmup_steps, then
    base_lr: PyTorch's LinearLR(start_factor, end_factor=1.0, total_iters=warmup_steps)."""

    def __init__(self, warmup_steps: int, start_factor: float = 1.0 / 3):
        _check_int(self, "warmup_steps", warmup_steps, minimum=1)
        super().__init__(start_factor, 1.0, warmup_steps)

    @property
    def warmup_steps(self) -> int:
        return self.total_iters

    def _args(self) -> dict:
        return {"warmup_steps": self.warmup_steps, "start_factor": self.start_factor}


class SequentialLR(LRSchedule):
    """schedules[i] from milestones[i-1] on, each counting its steps from 0 at its milestone (as
    PyTorch's SequentialLR restarts each scheduler there), all from the same base learning rate.
    E.g. warm-up then cosine: SequentialLR([LinearWarmup(5, 0.1), CosineAnnealingLR(45)], [5])."""

    def __init__(self, schedules, milestones):
        self.schedules = _check_schedules(self, schedules)
        if (isinstance(milestones, (str, bytes)) or not hasattr(milestones, "__len__")
                or len(milestones) != len(self.schedules) - 1):
            raise ValueError(f"SequentialLR: milestones must be a list of {len(self.schedules) - 1} step(s), "
                             f"one fewer than the schedules, got {milestones!r}")
        self.milestones = [_check_int(self, f"milestones[{i}]", m, minimum=1) for i, m in enumerate(milestones)]
        if any(b <= a for a, b in zip(self.milestones, self.milestones[1:])):
            raise ValueError(f"SequentialLR: milestones must be strictly increasing, got {list(milestones)!r}")

    @property
    def multiplicative(self) -> bool:
        return all(s.multiplicative for s in self.schedules)

    def _local(self, step: int):
        i = bisect.bisect_right(self.milestones, step)
        return self.schedules[i], step - (self.milestones[i - 1] if i else 0)

    def factor(self, step: int) -> float:
        schedule, local = self._local(step)
        return schedule.factor(local)

    def lr(self, base_lr: float, step: int) -> float:
        _check_step(self, step)
        schedule, local = self._local(step)
        return schedule.lr(base_lr, local)

    def _args(self) -> dict:
        return {"schedules": self.schedules, "milestones": self.milestones}


class ChainedScheduler(LRSchedule):
    """The product of multiplicative schedules: lr = base_lr * prod(s.factor(step)), which is what
    PyTorch's ChainedScheduler computes when every scheduler multiplies the learning rate (e.g.
    ChainedScheduler([LinearWarmup(5, 0.1), ExponentialLR(0.95)])). A CosineAnnealingLR with
    eta_min != 0 is not a factor and is refused; one with eta_min = 0 is, up to its T_max (past
    T_max PyTorch restarts a chained cosine additively, which matches the product only where the
    other factors no longer change)."""

    def __init__(self, schedules):
        self.schedules = _check_schedules(self, schedules)
        for i, s in enumerate(self.schedules):
            if not s.multiplicative:
                raise ValueError(f"ChainedScheduler: schedules[{i}] must multiply the learning rate; got {s!r} "
                                 "(use eta_min=0, or SequentialLR)")

    def factor(self, step: int) -> float:
        return math.prod(s.factor(step) for s in self.schedules)

    def _args(self) -> dict:
        return {"schedules": self.schedules}


def _check_int(owner, name: str, value, minimum: int) -> int:
    who = type(owner).__name__
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{who}: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_step(owner, step) -> None:
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        raise ValueError(f"{type(owner).__name__}: step must be an int >= 0, got {step!r}")


def _check_schedules(owner, schedules) -> list:
    who = type(owner).__name__
    if isinstance(schedules, (str, bytes)) or not hasattr(schedules, "__len__") or len(schedules) < 1:
        raise ValueError(f"{who}: schedules must be a non-empty list of schedules, got {schedules!r}")
    for i, s in enumerate(schedules):
        if not isinstance(s, LRSchedule):
            raise ValueError(f"{who}: schedules[{i}] must be a vkbackprop learning-rate schedule, "
                             f"got {type(s).__name__}")
    return list(schedules)
