"""The plan of a model at one batch size: every buffer allocated once, and two sequences recorded
once: the training step and the forward pass for prediction. Nothing is re-recorded later."""

from __future__ import annotations

import numpy as np

from .layers.base import LayerIO
from .schedule import Recorder


class StepPlan:
    def __init__(self, device, model, loss, optimizer, batch: int):
        self.device, self.batch = device, batch
        widths, layers = model.widths, model.layers
        store = model._store
        buf = device.buffer

        # Host-staged: only what crosses to the host (inputs, targets, hyper-parameters, loss, logits).
        self.input = buf("input", (batch, widths[0]), staged=True)
        self.target = buf("target", loss.target_shape(batch, widths[-1]), loss.target_dtype, staged=True)
        self.hyper = buf("hyper", optimizer.hyper_values().shape, staged=True)
        self.loss = buf("loss", (1,), staged=True)
        self.dloss = buf("dloss", (1,), staged=True)
        device.write(self.dloss, np.ones(1, np.float32))   # dL/dL = 1: the base case

        # Device-only: activations, their gradients and the parameter gradients.
        last = len(layers) - 1
        acts = [self.input] + [buf(f"{i}.output", (batch, widths[i + 1]), staged=(i == last))
                               for i in range(len(layers))]
        grad_acts = [None] + [buf(f"{i}.output.grad", (batch, widths[i + 1])) for i in range(len(layers))]
        self.output = acts[-1]
        self.param_grads = {name: buf(f"{name}.grad", p.shape) for name, p in store.buffers.items()}

        self.ios = []
        for i, layer in enumerate(layers):
            names = [n.split(".", 1)[1] for n in store.buffers if n.split(".", 1)[0] == str(i)]
            self.ios.append(LayerIO(device, batch, acts[i], acts[i + 1],
                                    params={n: store.buffers[f"{i}.{n}"] for n in names},
                                    dy=grad_acts[i + 1], dx=grad_acts[i],
                                    grads={n: self.param_grads[f"{i}.{n}"] for n in names}))

        # Both sequences record the same forward dispatches (one pipeline each, made once).
        forward = [_named(d, i) for i, (layer, io) in enumerate(zip(layers, self.ios)) for d in layer.forward(io)]

        self.train = Recorder(device)
        self.train.upload([self.input, self.target, self.hyper])
        for d in forward:
            self.train.dispatch(d)
        self.train.dispatch(loss.dispatch(device, self.output, self.target, self.dloss, self.loss, grad_acts[-1]))
        for i in reversed(range(len(layers))):
            for d in layers[i].backward(self.ios[i]):
                self.train.dispatch(_named(d, i))
        for name, param in store.buffers.items():
            self.train.dispatch(optimizer.update(device, self.hyper, param, self.param_grads[name]))
        self.train.download([self.loss])

        self.predict = Recorder(device)
        self.predict.upload([self.input])
        for d in forward:
            self.predict.dispatch(d)
        self.predict.download([self.output])


def _named(dispatch, layer_index: int):
    """Prefix a dispatch's name with its layer index ("2:linear/backward_input") for readable logs."""
    dispatch.name = f"{layer_index}:{dispatch.name.removesuffix('.comp')}"
    return dispatch
