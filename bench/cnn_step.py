"""Benchmark: one training step of a small CIFAR-shaped ResNet (3x32x32 input, batch 64; a stem and
three residual blocks of 16/32/64 channels, global average pooling, linear; SGD) on the default
Vulkan device vs the same network in PyTorch (on CUDA when present, else the CPU), in the same run.
(`vkbackprop bench --suite steps` runs this configuration among others.)

    .venv/bin/python bench/cnn_step.py [--steps 10] [--batch 64] [--json out.json]
"""

from __future__ import annotations

import argparse

import numpy as np

import vkbackprop as vb
from vkbackprop.bench import models
from vkbackprop.bench.report import print_step_comparison, step_summary
from vkbackprop.bench.timing import torch_device, wall_times

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
    where = torch_device()
    torch_step = models.torch_sgd_step(models.torch_resnet(SHAPE, CLASSES, WIDTHS), x, y, SHAPE, LR, where)
    results = step_summary(trainer, f"ResNet stem + blocks {WIDTHS}, input {SHAPE}, batch {args.batch}, SGD",
                           median_ms(lambda: trainer.step(x, y), args.steps), median_ms(torch_step, args.steps), where)
    print_step_comparison(results, args.steps, args.json, decimals=1)


if __name__ == "__main__":
    main()
