"""Benchmark: device memory a training step's plan holds, by kind (`Trainer.device_memory`), for the
step suite's models (`vkbackprop bench --suite steps`), and the activation gradients' memory had
each gradient its own buffer (as plans allocated them before the gradient pool), and all the memory
allocated while the Trainer was made (comparable across versions). With --step, also the process's
peak resident memory growth over making the plan and running one step: on lavapipe device memory is
host memory, but only the pages written become resident (a GPU commits whole allocations).

    .venv/bin/python bench/step_memory.py [--only small] [--step]
"""

from __future__ import annotations

import argparse
import resource

import numpy as np

import vkbackprop as vb
from vkbackprop.bench.steps import suite_configs

MIB = 2 ** 20


def peak_rss_bytes() -> int:
    """The process's peak resident set so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def one_buffer_per_gradient(model, batch: int) -> int:
    """Bytes of activation gradients with a buffer for every layer output but views' (what plans
    allocated before the gradient pool)."""
    return sum(4 * batch * call.output.width for call in model.calls if not getattr(call.layer, "is_view", False))


class CountingAllocations:
    """Within the block, the bytes of every buffer made with vb.Device.buffer (all device memory a
    plan takes comes from there; this works on any version of vkbackprop)."""

    def __enter__(self):
        self.bytes, self._buffer = 0, vb.Device.buffer

        def counted(device, *args, **kwargs):
            buffer = self._buffer(device, *args, **kwargs)
            self.bytes += buffer.size * buffer.dtype.itemsize
            return buffer
        vb.Device.buffer = counted
        return self

    def __exit__(self, *exc):
        vb.Device.buffer = self._buffer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="the configurations whose name contains this text")
    parser.add_argument("--step", action="store_true", help="also run one step and report resident memory growth")
    args = parser.parse_args()
    configs = [c for c in suite_configs() if not c.missing and (not args.only or args.only in c.name)]
    if args.step and len(configs) != 1:
        # ru_maxrss is the process's peak: a second model's growth would hide under the first's.
        parser.error(f"--step measures one model per process; --only matches {len(configs)}")
    rng = np.random.default_rng(0)
    for config in configs:
        before = peak_rss_bytes()
        with CountingAllocations() as allocated:
            trainer = vb.Trainer(config.vkbackprop_model(), vb.CrossEntropyLoss(), vb.SGD(lr=0.01), config.batch)
        print(f"{config.name}, batch {config.batch}: {allocated.bytes / MIB:.1f} MiB allocated by making the trainer")
        if hasattr(trainer, "device_memory"):
            memory = trainer.device_memory()
            for kind, size in memory.items():
                print(f"  {kind:22s} {size / MIB:9.1f} MiB")
            print(f"  {'total':22s} {sum(memory.values()) / MIB:9.1f} MiB")
            before_pool = one_buffer_per_gradient(trainer.model, config.batch)
            print(f"  activation gradients, one buffer each: {before_pool / MIB:.1f} MiB")
        if args.step:
            x = rng.standard_normal((config.batch, int(np.prod(config.input_shape)))).astype(np.float32)
            trainer.step(x, rng.integers(0, config.classes, config.batch))
            print(f"  peak resident memory growth over plan + one step: {(peak_rss_bytes() - before) / MIB:.1f} MiB")
        del trainer


if __name__ == "__main__":
    main()
