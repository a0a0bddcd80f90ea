"""One layer call on its own: device buffers for its inputs, parameters, output and gradients
(as a planned step would have them), and its forward or backward dispatches recorded into a
sequence, so that a pass can be timed or checked without a model around it."""

from __future__ import annotations

import math

import numpy as np

from ..layers.base import LayerIO
from .timing import TimedRecorder


class IsolatedLayer:
    """`layer` applied to a batch of inputs with per-sample shapes `in_shapes`. Inputs, parameters
    and the upstream gradient dy are staged (writable from the host by `load`); the output, input
    gradients and parameter gradients live on the device. Forward must have run before backward
    (a layer's backward may read what its forward saved)."""

    def __init__(self, device, layer, batch: int, in_shapes: list[tuple]):
        if getattr(layer, "is_view", False):
            raise ValueError(f"{layer!r} is a view: it records no dispatch, so there is nothing to run")
        self.device, self.layer = device, layer
        in_shapes = [tuple(int(d) for d in s) for s in in_shapes]
        out_shape = tuple(layer.output_shape(*in_shapes))

        def staged(name, shape, dtype=np.float32):
            return device.buffer(name, shape, dtype, staged=True)

        several = len(in_shapes) > 1
        xs = [staged(f"x{i}" if several else "x", (batch, math.prod(s))) for i, s in enumerate(in_shapes)]
        params = {n: staged(n, np.shape(v)) for n, v in layer.parameters().items()}
        state = {n: staged(n, np.shape(v), np.uint32 if np.asarray(v).dtype.kind in "iu" else np.float32)
                 for n, v in layer.buffers().items()}
        self.io = LayerIO(device, batch, xs=xs, y=device.buffer("y", (batch, math.prod(out_shape))),
                          params=params, dy=staged("dy", (batch, math.prod(out_shape))),
                          dxs=[device.buffer(f"d{x.name}", x.shape) for x in xs],
                          grads={n: device.buffer(f"d{n}", b.shape) for n, b in params.items()},
                          step=staged("step", (1,), np.uint32), in_shapes=in_shapes, out_shape=out_shape,
                          state=state)
        for name, value in layer.buffers().items():
            device.write(state[name], value)

    @property
    def inputs(self) -> dict:
        """Host-writable buffers by name: each x, each parameter and dy."""
        io = self.io
        return {**{x.name: x for x in io.xs}, **io.params, "dy": io.dy}

    @property
    def outputs(self) -> dict:
        """What each pass writes, by name: forward "y"; backward "dx" (or "dx0", ...) and "d<param>"."""
        io = self.io
        return {"y": io.y, **{b.name: b for b in io.dxs}, **{b.name: b for b in io.grads.values()}}

    def load(self, arrays: dict) -> None:
        """Write host arrays (by the names of `inputs`) to the device."""
        buffers = self.inputs
        unknown = set(arrays) - set(buffers)
        if unknown:
            raise ValueError(f"IsolatedLayer.load: unknown inputs {sorted(unknown)}; expected {sorted(buffers)}")
        for name, value in arrays.items():
            self.device.write(buffers[name], value)

    def dispatches(self, pass_: str) -> list:
        """The layer's dispatches for "forward" or "backward" on these buffers."""
        if pass_ not in ("forward", "backward"):
            raise ValueError(f"pass must be 'forward' or 'backward', got {pass_!r}")
        return getattr(self.layer, pass_)(self.io)

    def record(self, pass_: str) -> TimedRecorder:
        """One pass recorded into its own sequence (barriers where hazards are, a timestamp after
        each command), ready to eval any number of times."""
        dispatches = self.dispatches(pass_)
        recorder = TimedRecorder(self.device, len(dispatches))
        for dispatch in dispatches:
            recorder.dispatch(dispatch)
        return recorder

    def read(self, names) -> dict:
        """Host copies of output buffers by name (see `outputs`)."""
        buffers = self.outputs
        return {n: self.device.read(buffers[n]) for n in names}
