"""Benchmark: data-parallel training throughput of the MLP 784-256-256-10 (global batch 256, SGD)
with 1 and 2 MPI ranks on this machine, and the share of a step spent waiting for the all-reduce.

    .venv/bin/python bench/distributed_step.py [--steps 30] [--batch 256]
(runs `mpirun -n 1` and `mpirun -n 2` of itself; `--worker` is the per-rank part)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


def worker(steps: int, batch: int) -> None:
    import vkbackprop as vb
    from vkbackprop.bench.models import vkbackprop_mlp
    trainer = vb.Trainer(vkbackprop_mlp((784, 256, 256, 10)), vb.CrossEntropyLoss(), vb.SGD(lr=0.01), batch,
                         distributed=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 784)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    for _ in range(3):
        trainer.step(x, y)
    trainer.comm.barrier("warm-up")
    waits, start = [], time.perf_counter()
    for _ in range(steps):
        trainer.step(x, y)
        waits.append(trainer.plan.last_wait_seconds)
    seconds = time.perf_counter() - start
    if trainer.comm.rank == 0:
        print(json.dumps({"ranks": trainer.comm.size, "samples_per_s": steps * batch / seconds,
                          "step_ms": seconds / steps * 1e3, "wait_share": sum(waits) / seconds,
                          "buckets": len(trainer.plan.segments), "device": trainer.device.name}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.steps, args.batch)
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    print(f"MLP 784-256-256-10, global batch {args.batch}, SGD, {args.steps} steps after 3 warm-up steps")
    print("ranks  samples/s  step ms  waiting for the all-reduce  buckets")
    for ranks in (1, 2):
        proc = subprocess.run(["mpirun", "-n", str(ranks), sys.executable, __file__, "--worker",
                               "--steps", str(args.steps), "--batch", str(args.batch)],
                              capture_output=True, text=True, env=env, check=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{r['ranks']:5d}  {r['samples_per_s']:9.0f}  {r['step_ms']:7.1f}  {r['wait_share']:25.1%}  "
              f"{r['buckets']:7d}")


if __name__ == "__main__":
    main()
