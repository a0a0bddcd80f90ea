"""Benchmark one op on one shape: its forward and backward shaders alone on the device (GPU
timestamps), the same math in NumPy and PyTorch, and a check that the shaders computed it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .isolated import IsolatedLayer
from .ops import LIBRARIES, PASSES, Op, host_arrays, pass_bytes, pass_flops
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
    """Per output name: max |got - want| / max |want| (normwise; exact zeros compare absolutely).
    `got` may hold each sample flat (device buffers): it is compared in want's shape."""
    return {name: float(np.max(np.abs(np.reshape(got[name], np.shape(w)) - w)))
            / max(float(np.max(np.abs(w))), 1e-30) for name, w in want.items()}


def host_inputs(op: Op, layer, arrays: dict, torch_device: str) -> dict:
    """The op's inputs per library ("numpy", "torch"), with forward's y (backward's math may read
    it) as float32, like the shaders'."""
    import torch
    y = op.math.prepare("numpy", "forward", layer, arrays)()["y"]
    host = dict(arrays, y=np.asarray(y, np.float32))
    return {"numpy": host, "torch": {k: torch.from_numpy(v).to(torch_device) for k, v in host.items()}}


def measure_op(device, op: Op, shape: tuple, repeats: int, warmup: int, rng, torch_device: str) -> list[OpResult]:
    """Both passes of `op` on `shape`, timed on the device, in NumPy and in PyTorch."""
    layer, in_shapes = op.make(shape)
    batch = shape[0]
    arrays = host_arrays(layer, batch, in_shapes, rng, op.draw_x)
    isolated = IsolatedLayer(device, layer, batch, in_shapes)
    isolated.load(arrays)
    inputs = host_inputs(op, layer, arrays, torch_device)
    sync = torch_sync(torch_device)
    results = []
    for pass_ in PASSES:                 # forward first: backward may read what it saved
        numpy_pass, torch_pass = (op.math.prepare(lib, pass_, layer, inputs[lib]) for lib in LIBRARIES)
        recorder = isolated.record(pass_)
        gpu, per_dispatch = recorder.gpu_times(repeats, warmup)
        want = numpy_pass()
        errors = relative_errors(isolated.read(want), want)
        dispatches = [what for kind, what in recorder.log if kind == "dispatch"]
        results.append(OpResult(
            op.name, tuple(shape), pass_, pass_flops(layer, batch, isolated.io.out_shape, pass_),
            pass_bytes(dispatches, isolated.device.placeholder), gpu, per_dispatch, wall_times(numpy_pass, repeats, warmup),
            wall_times(torch_pass, repeats, warmup, sync), max(errors.values())))
    return results
