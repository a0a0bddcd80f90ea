"""Benchmark: one training step of a sequence classifier, LSTM(32, 64, num_layers=1) over 64 steps,
batch 16, its final hidden state -> Linear(64, 10), cross-entropy, SGD, on the default Vulkan device
vs the same model in PyTorch on the CPU in the same run; plus the recorded step's make-up.

    .venv/bin/python bench/lstm_step.py [--steps 20] [--seq 64] [--batch 16] [--hidden 64] [--json out.json]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

import vkbackprop as vb
from vkbackprop.bench.timing import wall_times

FEATURES, CLASSES, LR = 32, 10, 0.01


def vkbackprop_model(seq: int, hidden: int):
    x = vb.Input((seq, FEATURES))
    lstm = vb.LSTM(FEATURES, hidden, return_state=True)
    _, (h_n, _) = lstm.split(lstm(x))
    return vb.Model(x, vb.Linear(hidden, CLASSES)(vb.Flatten()(h_n)))


def torch_step(hidden: int, x: np.ndarray, y: np.ndarray):
    """One SGD step of the same model in PyTorch (batch_first, float32, CPU)."""
    lstm = torch.nn.LSTM(FEATURES, hidden, batch_first=True)
    head = torch.nn.Linear(hidden, CLASSES)
    opt = torch.optim.SGD(list(lstm.parameters()) + list(head.parameters()), lr=LR)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()

    def step():
        opt.zero_grad()
        _, (h_n, _) = lstm(xt)
        loss = torch.nn.functional.cross_entropy(head(h_n[-1]), yt)
        loss.backward()
        opt.step()
        return loss.item()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, args.seq, FEATURES)).astype(np.float32)
    y = rng.integers(0, CLASSES, args.batch)
    trainer = vb.Trainer(vkbackprop_model(args.seq, args.hidden), vb.CrossEntropyLoss(), vb.SGD(lr=LR), args.batch)
    flat = x.reshape(args.batch, -1)
    log = trainer.plan.train.log
    results = {
        "device": trainer.device.name,
        "model": f"LSTM({FEATURES}, {args.hidden}) over {args.seq} steps -> Linear({args.hidden}, {CLASSES}), "
                 f"batch {args.batch}, SGD",
        "vkbackprop_ms": wall_times(lambda: trainer.step(flat, y), args.steps, 3).median * 1e3,
        "torch_cpu_ms": wall_times(torch_step(args.hidden, x, y), args.steps, 3).median * 1e3,
        "torch_threads": torch.get_num_threads(),
        "dispatches_per_step": sum(k == "dispatch" for k, _ in log),
        "barriers_per_step": sum(k == "barrier" for k, _ in log),
    }
    results["ratio_vs_torch"] = results["vkbackprop_ms"] / results["torch_cpu_ms"]

    print(f"device              {results['device']}")
    print(f"model               {results['model']}")
    print(f"vkbackprop step     {results['vkbackprop_ms']:.2f} ms (median of {args.steps}; "
          f"{results['dispatches_per_step']} dispatches, {results['barriers_per_step']} barriers)")
    print(f"PyTorch CPU step    {results['torch_cpu_ms']:.2f} ms ({results['torch_threads']} threads)")
    print(f"ratio               {results['ratio_vs_torch']:.2f}x PyTorch CPU")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
