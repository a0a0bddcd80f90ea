"""Benchmark: one training step of a sequence classifier, LSTM(32, 64, num_layers=1) over 64 steps,
batch 16, its final hidden state -> Linear(64, 10), cross-entropy, SGD, on the default Vulkan device
vs the same model in PyTorch (on CUDA when present, else the CPU) in the same run; plus the recorded
step's make-up.

    .venv/bin/python bench/lstm_step.py [--steps 20] [--seq 64] [--batch 16] [--hidden 64] [--json out.json]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import vkbackprop as vb
from vkbackprop.bench.report import print_step_comparison, step_summary
from vkbackprop.bench.timing import torch_device, wall_times

FEATURES, CLASSES, LR = 32, 10, 0.01


def vkbackprop_model(seq: int, hidden: int):
    x = vb.Input((seq, FEATURES))
    lstm = vb.LSTM(FEATURES, hidden, return_state=True)
    _, (h_n, _) = lstm.split(lstm(x))
    return vb.Model(x, vb.Linear(hidden, CLASSES)(vb.Flatten()(h_n)))


def torch_step(hidden: int, x: np.ndarray, y: np.ndarray, where: str):
    """One SGD step of the same model in PyTorch (batch_first, float32, on `where`)."""
    lstm = torch.nn.LSTM(FEATURES, hidden, batch_first=True).to(where)
    head = torch.nn.Linear(hidden, CLASSES).to(where)
    opt = torch.optim.SGD(list(lstm.parameters()) + list(head.parameters()), lr=LR)
    xt, yt = torch.from_numpy(x).to(where), torch.from_numpy(y).long().to(where)

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
    where = torch_device()
    results = step_summary(trainer, f"LSTM({FEATURES}, {args.hidden}) over {args.seq} steps -> "
                           f"Linear({args.hidden}, {CLASSES}), batch {args.batch}, SGD",
                           wall_times(lambda: trainer.step(flat, y), args.steps, 3).median * 1e3,
                           wall_times(torch_step(args.hidden, x, y, where), args.steps, 3).median * 1e3, where)
    print_step_comparison(results, args.steps, args.json)


if __name__ == "__main__":
    main()
