"""Benchmark: one training step of an MLP 784-256-256-10, batch 128, SGD, on the default Vulkan
device vs PyTorch in the same run (on CUDA when present, else the CPU); and the fixed cost of one
submitted sequence. All of it under the CPU idle policy as configured, then again in low-latency
mode (vkbackprop/latency.py) where this process may request it. (`vkbackprop bench --suite steps` runs this configuration among
others.)

    .venv/bin/python bench/mlp_step.py [--steps 50] [--json out.json] [--profile]

--profile also prints the step's commands with their GPU times (timestamps; each adds a little).
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

import vkbackprop as vb
from vkbackprop.bench import models
from vkbackprop.bench.report import print_step_comparison, step_summary
from vkbackprop.bench.timing import TimedRecorder, torch_device, wall_times
from vkbackprop.latency import WakeLatencyRequest
from vkbackprop.layers.activation import elementwise
from vkbackprop.schedule import Recorder

SIZES, BATCH, LR = (784, 256, 256, 10), 128, 0.01


def median_ms(fn, steps: int, warmup: int = 5) -> float:
    return wall_times(fn, steps, warmup).median * 1e3


def fixed_submit_cost(device, steps: int) -> dict:
    """eval() of a recorded sequence holding one 1-element dispatch: the per-step overhead floor.
    Its median and 10th/90th percentiles: on a VM it is mostly the wake-ups of idle virtual CPUs
    (the driver's submit and worker threads), and their cost switches between levels."""
    one = device.buffer("one", (1,), staged=True)
    out = device.buffer("out", (1,))
    rec = Recorder(device)
    rec.dispatch(elementwise(device, "relu/forward.comp", {"x": one, "y": out}, 1))
    us = np.array(wall_times(rec.sequence.eval, steps * 8, 20).seconds) * 1e6
    return {"fixed_submit_us": float(np.median(us)), "fixed_submit_us_p10": float(np.percentile(us, 10)),
            "fixed_submit_us_p90": float(np.percentile(us, 90))}


def measure(trainer, torch_step, where: str, x, y, steps: int) -> dict:
    """Step times of both frameworks and the fixed submit cost, under the CPU idle policy in force."""
    summary = step_summary(trainer, "MLP " + "-".join(map(str, SIZES)) + f", batch {BATCH}, SGD",
                           median_ms(lambda: trainer.step(x, y), steps), median_ms(torch_step, steps), where)
    return dict(summary, **fixed_submit_cost(trainer.device, steps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--profile", action="store_true", help="also time each command of the step on the GPU")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], BATCH)

    trainer = vb.Trainer(models.vkbackprop_mlp(SIZES), vb.CrossEntropyLoss(), vb.SGD(lr=LR), BATCH)
    where = torch_device()
    torch_step = models.torch_sgd_step(models.torch_mlp(SIZES), x, y, SIZES[:1], LR, where)
    results = dict(measure(trainer, torch_step, where, x, y, args.steps),
                   low_latency_mode=trainer.device.low_latency)   # VKBACKPROP_LOW_LATENCY=1 held it throughout
    if not trainer.device.low_latency:
        # The same again in low-latency mode where this process may hold it (vkbackprop/latency.py).
        request = WakeLatencyRequest(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            held = request.acquire()
        results["low_latency"] = measure(trainer, torch_step, where, x, y, args.steps) if held else None
        request.release()

    if args.profile:
        results["profile"] = profile(trainer, args.steps)
    print_step_comparison(results, args.steps, args.json, decimals=2)


def profile(trainer, steps: int) -> list[dict]:
    """The step's commands with their GPU times (median over `steps` evaluations), printed."""
    times = TimedRecorder.replay(trainer.plan.train).command_times(steps, warmup=5)
    print("\nper command, GPU timestamps (median ms):")
    for kind, what, t in times:
        print(f"  {t.median * 1e3:8.3f}  {kind:9s} {what[:90]}")
    print(f"  {sum(t.median for _, _, t in times) * 1e3:8.3f}  total")
    return [{"kind": kind, "what": what, **t.to_json()} for kind, what, t in times]


if __name__ == "__main__":
    main()
