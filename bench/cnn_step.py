"""Benchmark: one training step of a small CIFAR-shaped ResNet (3x32x32 input, batch 64; a stem and
three residual blocks of 16/32/64 channels, global average pooling, linear; SGD) on the default
Vulkan device vs the same network in PyTorch on the CPU, in the same run.
(`vkbackprop bench --suite steps` runs this configuration among others.)

    .venv/bin/python bench/cnn_step.py [--steps 10] [--batch 64] [--json out.json]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import vkbackprop as vb
from vkbackprop.bench import models
from vkbackprop.bench.report import print_step_comparison
from vkbackprop.bench.timing import wall_times

SHAPE, CLASSES, WIDTHS, LR = (3, 32, 32), 10, (16, 32, 64), 0.01


def median_ms(fn, steps: int) -> float:
    return wall_times(fn, steps, warmup=2).median * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, int(np.prod(SHAPE)))).astype(np.float32)
    y = rng.integers(0, CLASSES, args.batch)
    trainer = vb.Trainer(models.vkbackprop_resnet(SHAPE, CLASSES, WIDTHS), vb.CrossEntropyLoss(), vb.SGD(lr=LR),
                         args.batch)
    log = trainer.plan.train.log
    torch_step = models.torch_sgd_step(models.torch_resnet(SHAPE, CLASSES, WIDTHS), x, y, SHAPE, LR)
    results = {
        "device": trainer.device.name,
        "model": f"ResNet stem + blocks {WIDTHS}, input {SHAPE}, batch {args.batch}, SGD",
        "vkbackprop_ms": median_ms(lambda: trainer.step(x, y), args.steps),
        "torch_cpu_ms": median_ms(torch_step, args.steps),
        "torch_threads": torch.get_num_threads(),
        "dispatches_per_step": sum(k == "dispatch" for k, _ in log),
        "barriers_per_step": sum(k == "barrier" for k, _ in log),
    }
    results["ratio_vs_torch"] = results["vkbackprop_ms"] / results["torch_cpu_ms"]
    print_step_comparison(results, args.steps, args.json, decimals=1)


if __name__ == "__main__":
    main()
