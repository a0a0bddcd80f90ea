"""Running one layer's forward and backward shaders in isolation, for gradient checks."""

from __future__ import annotations

import numpy as np

from .layers.base import LayerIO
from .schedule import Recorder


def run_layer(device, layer, x: np.ndarray, params: dict, dy: np.ndarray, need_dx: bool = True):
    """Forward then backward of `layer` on the GPU with the given input, parameters and upstream
    gradient dL/dy. Returns (y, dx or None, {param name: gradient})."""
    batch, width = x.shape
    out = layer.out_features(width)
    param_bufs = {n: device.buffer(n, v.shape, staged=True) for n, v in params.items()}
    for n, v in params.items():
        device.write(param_bufs[n], v)
    io = LayerIO(device, batch,
                 xs=[device.buffer("x", x.shape, staged=True)],
                 y=device.buffer("y", (batch, out), staged=True),
                 params=param_bufs,
                 dy=device.buffer("dy", (batch, out), staged=True),
                 dxs=[device.buffer("dx", x.shape) if need_dx else None],
                 grads={n: device.buffer(f"{n}.grad", v.shape) for n, v in params.items()})
    io.x.host_view()[...] = x
    io.dy.host_view()[...] = dy
    rec = Recorder(device)
    rec.upload([io.x, io.dy])
    for d in layer.forward(io) + layer.backward(io):
        rec.dispatch(d)
    rec.download([io.y])
    rec.sequence.eval()
    dx = device.read(io.dx) if need_dx else None
    return io.y.host_view().copy(), dx, {n: device.read(g) for n, g in io.grads.items()}
