"""The training-step suite: wall time of `Trainer.step` (SGD, cross-entropy) against the same
model's step in PyTorch, and sweeps of MLP batch size and depth. A configuration whose estimated
measuring time (FLOPs / this device's measured GEMM rate, times the runs) exceeds the budget is
skipped, and says so."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import models
from .isolated import IsolatedLayer
from .ops import PASSES, host_arrays, pass_flops
from .timing import Timing, torch_sync, wall_times

LR = 0.01
MLP_SMALL = (784, 256, 256, 10)
CALIBRATION = (256, 512, 512)        # the linear shape whose GPU rate estimates step times
SWEEP_BATCHES = (16, 64, 256, 1024)  # MLP_SMALL at these batch sizes
SWEEP_DEPTHS = (1, 2, 4, 8)          # hidden layers of 256, batch 128


@dataclass(frozen=True)
class StepConfig:
    name: str
    batch: int
    input_shape: tuple                 # per sample
    classes: int
    vkbackprop_model: Callable         # () -> vb.Model
    torch_model: Callable              # () -> torch.nn.Module
    missing: str | None = None         # why it cannot run in this build


@dataclass
class StepResult:
    name: str
    batch: int
    status: str                        # "ok", "skipped" or "not available"
    reason: str = ""
    flops: int | None = None           # weight GEMMs of forward + backward (ops.pass_flops)
    estimated_s: float | None = None   # estimated time to measure it (warm-up + repeats)
    vkbackprop: Timing | None = None
    torch: Timing | None = None
    extra: dict = field(default_factory=dict)   # e.g. {"hidden_layers": 4} in a sweep

    @property
    def ratio(self) -> float | None:
        """vkbackprop time / PyTorch time (median steps)."""
        return self.vkbackprop.median / self.torch.median if self.vkbackprop and self.torch else None


def mlp_config(sizes, batch: int, name: str | None = None) -> StepConfig:
    return StepConfig(name or "MLP " + "-".join(map(str, sizes)), batch, (sizes[0],), sizes[-1],
                      lambda: models.vkbackprop_mlp(sizes), lambda: models.torch_mlp(sizes))


def resnet_config(batch: int = 64, input_shape=(3, 32, 32), classes: int = 10, widths=(16, 32, 64)) -> StepConfig:
    missing = models.missing_resnet_layers()
    return StepConfig(f"ResNet {'/'.join(map(str, widths))} on {'x'.join(map(str, input_shape))}", batch,
                      tuple(input_shape), classes,
                      lambda: models.vkbackprop_resnet(input_shape, classes, widths),
                      lambda: models.torch_resnet(input_shape, classes, widths),
                      f"not available: vkbackprop has no {', '.join('vb.' + m for m in missing)}" if missing else None)


def suite_configs() -> list[StepConfig]:
    return [mlp_config(MLP_SMALL, 128, "MLP small 784-256-256-10"),
            mlp_config((784, 1024, 1024, 10), 1024, "MLP medium 784-1024-1024-10"),
            mlp_config((4096, 4096, 4096, 1000), 4096, "MLP large 4096-4096-4096-1000"),
            resnet_config()]


def sweep_configs() -> dict:
    """{"batch": [(batch, config)], "hidden_layers": [(depth, config)]}: how cost grows with work."""
    return {"batch": [(b, mlp_config(MLP_SMALL, b)) for b in SWEEP_BATCHES],
            "hidden_layers": [(d, mlp_config((784,) + (256,) * d + (10,), 128)) for d in SWEEP_DEPTHS]}


def step_flops(model, batch: int) -> int:
    """Forward + backward FLOPs of the weight GEMMs of every layer call (elementwise work,
    the loss and the update are left out: they are small next to the GEMMs of these models)."""
    return sum(pass_flops(c.layer, batch, c.output.shape, p) or 0 for c in model.calls for p in PASSES)


def gemm_rate(device, repeats: int, warmup: int) -> float:
    """FLOP/s of the Linear shaders at the CALIBRATION shape on this device: the slower pass's
    (backward's weight gradient slows down first as shapes grow), so estimates err long."""
    from ..layers.linear import Linear
    batch, fan_in, fan_out = CALIBRATION
    layer = Linear(fan_in, fan_out)
    isolated = IsolatedLayer(device, layer, batch, [(fan_in,)])
    isolated.load(host_arrays(layer, batch, [(fan_in,)], np.random.default_rng(0)))
    return min(pass_flops(layer, batch, (fan_out,), p) / isolated.record(p).gpu_times(repeats, warmup)[0].median
               for p in PASSES)


def _duration(seconds: float) -> str:
    return f"~{seconds / 60:.0f} min" if seconds >= 90 else f"~{seconds:.0f} s" if seconds >= 1 else f"~{seconds:.2f} s"


def measure_step(config: StepConfig, device, repeats: int, warmup: int, max_seconds: float, rate: float,
                 torch_device: str, extra: dict | None = None) -> StepResult:
    """Median wall time of one training step in vkbackprop and in PyTorch, or why not."""
    import torch
    import vkbackprop as vb

    result = StepResult(config.name, config.batch, "ok", extra=dict(extra or {}))
    if config.missing:
        result.status, result.reason = "not available", config.missing
        return result
    model = config.vkbackprop_model()
    result.flops = step_flops(model, config.batch)
    result.estimated_s = (warmup + repeats) * result.flops / rate
    if result.estimated_s > max_seconds:
        result.status = "skipped"
        result.reason = f"skipped: {_duration(result.estimated_s)} estimated (> --max-seconds {max_seconds:g})"
        return result
    rng = np.random.default_rng(0)
    x = rng.standard_normal((config.batch, math.prod(config.input_shape))).astype(np.float32)
    y = rng.integers(0, config.classes, config.batch)
    trainer = vb.Trainer(model, vb.CrossEntropyLoss(), vb.SGD(lr=LR), config.batch, device=device)
    result.vkbackprop = wall_times(lambda: trainer.step(x, y), repeats, warmup)
    torch.manual_seed(0)
    step = models.torch_sgd_step(config.torch_model(), x, y, config.input_shape, LR, torch_device)
    result.torch = wall_times(step, repeats, warmup, torch_sync(torch_device))
    return result
