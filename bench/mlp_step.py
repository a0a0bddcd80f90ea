"""Benchmark: one training step of an MLP 784-256-256-10, batch 128, SGD, on the default Vulkan
device vs PyTorch on the CPU in the same run; and the fixed cost of one submitted sequence.

    .venv/bin/python bench/mlp_step.py [--steps 50] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import numpy as np
import torch
import vkbackprop as vb
from vkbackprop.schedule import Recorder
from timing import median_ms

SIZES, BATCH, LR = (784, 256, 256, 10), 128, 0.01


def vkbackprop_step(x, y):
    layers = []
    for fan_in, fan_out in zip(SIZES, SIZES[1:]):
        layers += [vb.Linear(fan_in, fan_out), vb.ReLU()]
    trainer = vb.Trainer(vb.Sequential(*layers[:-1]), vb.CrossEntropyLoss(), vb.SGD(lr=LR), BATCH)
    return trainer, lambda: trainer.step(x, y)


def torch_step(x, y):
    layers = []
    for fan_in, fan_out in zip(SIZES, SIZES[1:]):
        layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
        return loss.item()
    return step


def fixed_submit_cost_us(device, steps: int) -> float:
    """eval() of a recorded sequence holding one 1-element dispatch: the per-step overhead floor."""
    one = device.buffer("one", (1,), staged=True)
    out = device.buffer("out", (1,))
    rec = Recorder(device)
    rec.dispatch(device.dispatch("relu/forward.comp", {"x": one, "y": out}, (1, 1, 1), {"NUMEL": 1}))
    return median_ms(rec.sequence.eval, steps * 4, desc="submit") * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], BATCH)

    trainer, vk_step = vkbackprop_step(x, y)
    results = {
        "device": trainer.device.name,
        "model": "MLP " + "-".join(map(str, SIZES)) + f", batch {BATCH}, SGD",
        "vkbackprop_ms": median_ms(vk_step, args.steps, desc="vkbackprop"),
        "torch_cpu_ms": median_ms(torch_step(x, y), args.steps, desc="pytorch"),
        "torch_threads": torch.get_num_threads(),
        "fixed_submit_us": fixed_submit_cost_us(trainer.device, args.steps),
        "dispatches_per_step": sum(k == "dispatch" for k, _ in trainer.plan.train.log),
        "barriers_per_step": sum(k == "barrier" for k, _ in trainer.plan.train.log),
    }
    results["ratio_vs_torch"] = results["vkbackprop_ms"] / results["torch_cpu_ms"]

    print(f"device              {results['device']}")
    print(f"model               {results['model']}")
    print(f"vkbackprop step     {results['vkbackprop_ms']:.2f} ms (median of {args.steps}; "
          f"{results['dispatches_per_step']} dispatches, {results['barriers_per_step']} barriers)")
    print(f"PyTorch CPU step    {results['torch_cpu_ms']:.2f} ms ({results['torch_threads']} threads)")
    print(f"ratio               {results['ratio_vs_torch']:.2f}x PyTorch CPU")
    print(f"fixed submit cost   {results['fixed_submit_us']:.0f} us per eval of a recorded sequence")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
