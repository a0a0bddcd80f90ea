"""Benchmark: one training step of a small CIFAR-shaped ResNet (3x32x32 input, batch 64; a stem and
three residual blocks of 16/32/64 channels, global average pooling, linear; SGD) on the default
Vulkan device vs the same network in PyTorch on the CPU, in the same run.

    .venv/bin/python bench/cnn_step.py [--steps 10] [--batch 64] [--json out.json]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

import vkbackprop as vb
from vkbackprop import zoo
from timing import median_ms

SHAPE, CLASSES, WIDTHS, LR = (3, 32, 32), 10, (16, 32, 64), 0.01


class TorchBlock(torch.nn.Module):
    """The torch twin of zoo.residual_block."""

    def __init__(self, c_in, width, stride):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(c_in, width, 3, stride, 1, bias=False), torch.nn.BatchNorm2d(width), torch.nn.ReLU(),
            torch.nn.Conv2d(width, width, 3, 1, 1, bias=False), torch.nn.BatchNorm2d(width))
        self.skip = torch.nn.Identity() if stride == 1 and c_in == width else torch.nn.Sequential(
            torch.nn.Conv2d(c_in, width, 1, stride, bias=False), torch.nn.BatchNorm2d(width))

    def forward(self, x):
        return torch.relu(self.body(x) + self.skip(x))


def torch_resnet():
    layers = [torch.nn.Conv2d(SHAPE[0], WIDTHS[0], 3, 1, 1, bias=False), torch.nn.BatchNorm2d(WIDTHS[0]),
              torch.nn.ReLU()]
    c = WIDTHS[0]
    for i, width in enumerate(WIDTHS):
        layers.append(TorchBlock(c, width, 1 if i == 0 else 2))
        c = width
    layers += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(c, CLASSES)]
    return torch.nn.Sequential(*layers)


def torch_step(x, y):
    model = torch_resnet()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    xt, yt = torch.from_numpy(x).reshape(len(x), *SHAPE), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
        return loss.item()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, int(np.prod(SHAPE)))).astype(np.float32)
    y = rng.integers(0, CLASSES, args.batch)
    trainer = vb.Trainer(zoo.small_resnet(SHAPE, CLASSES, WIDTHS), vb.CrossEntropyLoss(), vb.SGD(lr=LR), args.batch)
    log = trainer.plan.train.log
    results = {
        "device": trainer.device.name,
        "model": f"ResNet stem + blocks {WIDTHS}, input {SHAPE}, batch {args.batch}, SGD",
        "vkbackprop_ms": median_ms(lambda: trainer.step(x, y), args.steps, warmup=2, desc="vkbackprop"),
        "torch_cpu_ms": median_ms(torch_step(x, y), args.steps, warmup=2, desc="pytorch"),
        "torch_threads": torch.get_num_threads(),
        "dispatches_per_step": sum(k == "dispatch" for k, _ in log),
        "barriers_per_step": sum(k == "barrier" for k, _ in log),
    }
    results["ratio_vs_torch"] = results["vkbackprop_ms"] / results["torch_cpu_ms"]
    print(f"device              {results['device']}")
    print(f"model               {results['model']}")
    print(f"vkbackprop step     {results['vkbackprop_ms']:.1f} ms (median of {args.steps}; "
          f"{results['dispatches_per_step']} dispatches, {results['barriers_per_step']} barriers)")
    print(f"PyTorch CPU step    {results['torch_cpu_ms']:.1f} ms ({results['torch_threads']} threads)")
    print(f"ratio               {results['ratio_vs_torch']:.2f}x PyTorch CPU")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
