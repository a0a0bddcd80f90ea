"""Benchmark one op on one shape: its forward and backward shaders alone on the device (GPU
timestamps), the same math in NumPy and PyTorch, and a check that the shaders computed it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .isolated import IsolatedLayer
from .ops import PASSES, Op, host_arrays, pass_bytes, pass_flops
from .timing import Timing, torch_sync, wall_times

MISMATCH = 1e-3   # normwise relative error above which a result is flagged as wrong


@dataclass
class OpResult:
    op: str
    shape: tuple
    pass_: str
    flops: int | None      # None: no weight GEMM (memory-bound op)
    bytes: int             # lower bound (ops.pass_bytes)
    gpu: Timing            # the pass's GPU time (timestamps)
    dispatches: dict       # shader -> Timing
    numpy: Timing
    torch: Timing
    max_rel_error: float   # shaders vs NumPy, normwise, over the pass's outputs


def relative_errors(got: dict, want: dict) -> dict:
    """Per output name: max |got - want| / max |want| (normwise; exact zeros compare absolutely)."""
    return {name: float(np.max(np.abs(got[name] - w)) / max(float(np.max(np.abs(w))), 1e-30))
            for name, w in want.items()}


def measure_op(device, op: Op, shape: tuple, repeats: int, warmup: int, rng, torch_device: str) -> list[OpResult]:
    """Both passes of `op` on `shape`, timed on the device, in NumPy and in PyTorch."""
    import torch

    layer, in_shapes = op.make(shape)
    batch = shape[0]
    arrays = host_arrays(layer, batch, in_shapes, rng)
    isolated = IsolatedLayer(device, layer, batch, in_shapes)
    isolated.load(arrays)
    host = dict(arrays, y=op.forward(np, arrays)["y"])        # backward's host math may use y
    on_torch = {k: torch.from_numpy(v).to(torch_device) for k, v in host.items()}
    sync = torch_sync(torch_device)
    results = []
    for pass_ in PASSES:                 # forward first: backward may read what it saved
        host_fn = getattr(op, pass_)
        recorder = isolated.record(pass_)
        gpu, per_dispatch = recorder.gpu_times(repeats, warmup)
        want = host_fn(np, host)
        errors = relative_errors(isolated.read(want), want)
        with torch.inference_mode():
            torch_time = wall_times(lambda: host_fn(torch, on_torch), repeats, warmup, sync)
        dispatches = [what for kind, what in recorder.log if kind == "dispatch"]
        results.append(OpResult(
            op.name, tuple(shape), pass_, pass_flops(layer, batch, isolated.io.out_shape, pass_),
            pass_bytes(dispatches), gpu, per_dispatch, wall_times(lambda: host_fn(np, host), repeats, warmup),
            torch_time, max(errors.values())))
    return results
