"""Timing: GPU time of recorded commands from timestamps, wall time of host calls, and the
min/median/max of repeated runs."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from ..schedule import Recorder, command_label


@dataclass(frozen=True)
class Timing:
    """Repeated measurements of one thing, in seconds."""
    seconds: tuple

    @property
    def min(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def max(self) -> float:
        return max(self.seconds)

    def to_json(self) -> dict:
        return {"min_ms": self.min * 1e3, "median_ms": self.median * 1e3, "max_ms": self.max * 1e3,
                "repeats": len(self.seconds)}


class TimedRecorder(Recorder):
    """A Recorder whose sequence latches a timestamp after every command. Each dispatch brings at
    most one barrier with it, so 2 x dispatches commands always fit."""

    def __init__(self, device, dispatches: int):
        super().__init__(device)
        self.sequence = device.sequence(timestamps=2 * max(1, dispatches))

    def gpu_times(self, repeats: int, warmup: int) -> tuple[Timing, dict]:
        """Evaluate the recorded sequence warmup + repeats times. Returns the GPU time of the
        whole sequence per eval (first command's start to last command's end) and, per dispatch
        shader, its own time per eval (barriers are counted in the total only)."""
        totals, per_dispatch = [], {}
        for seconds in self._runs(repeats, warmup):
            totals.append(sum(seconds))
            # One log entry per recorded command, in recording order: the same order as the timestamps.
            by_name = {}
            for (kind, what), s in zip(self.log, seconds):
                if kind == "dispatch":   # dispatches of one shader add up
                    by_name[what.name] = by_name.get(what.name, 0.0) + s
            for name, s in by_name.items():
                per_dispatch.setdefault(name, []).append(s)
        return Timing(tuple(totals)), {name: Timing(tuple(s)) for name, s in per_dispatch.items()}

    @classmethod
    def replay(cls, recorder) -> "TimedRecorder":
        """The commands `recorder` recorded, recorded again in the same order with the same barriers
        and a timestamp after each: where a plan's sequence (e.g. a training step) spends GPU time."""
        timed = cls(recorder.device, len(recorder.log))
        for kind, what in recorder.log:
            getattr(timed, kind)(what)   # upload, barrier, dispatch or download
        return timed

    def command_times(self, repeats: int, warmup: int) -> list[tuple[str, str, Timing]]:
        """(kind, what, GPU times) per recorded command, over warmup + repeats evaluations."""
        runs = self._runs(repeats, warmup)
        return [(kind, command_label(what), Timing(tuple(run[i] for run in runs)))
                for i, (kind, what) in enumerate(self.log)]

    def _runs(self, repeats: int, warmup: int) -> list[list[float]]:
        """Per-command seconds of each of `repeats` evaluations, after `warmup` untimed ones."""
        for _ in range(warmup):
            self.sequence.eval()
        runs = []
        for _ in range(repeats):
            self.sequence.eval()
            runs.append(self.sequence.op_seconds())
        return runs


def wall_times(fn, repeats: int, warmup: int, sync=None) -> Timing:
    """Wall time of fn() over `repeats` calls after `warmup` calls; `sync()` (if given) runs
    before the clock stops, to wait for asynchronous work (CUDA)."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        samples.append(time.perf_counter() - start)
    return Timing(tuple(samples))


def torch_device() -> str:
    """Where the PyTorch comparison runs: CUDA when available, else the CPU. On CUDA in true fp32,
    as vkbackprop computes: TF32 off for matmuls and cuDNN convolutions (cuDNN's default is on)."""
    import torch
    if not torch.cuda.is_available():
        return "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return "cuda"


def torch_sync(device: str):
    """What wall_times needs to time PyTorch on `device` (CUDA kernels run asynchronously)."""
    if device == "cuda":
        import torch
        return torch.cuda.synchronize
    return None
