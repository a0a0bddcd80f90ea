"""Models and their parameters, which live on the device once a Trainer binds them."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from . import checks
from .graph import Graph, Input
from .layers.base import Module


class ParameterStore:
    """Device copies of a model's parameters (staged: they can be read and loaded from the host)."""

    def __init__(self, device, values: "OrderedDict[str, np.ndarray]"):
        self.device = device
        self.buffers = OrderedDict()
        for name, value in values.items():
            self.buffers[name] = device.buffer(name, value.shape, staged=True)
            device.write(self.buffers[name], value)

    def read(self) -> "OrderedDict[str, np.ndarray]":
        return OrderedDict((name, self.device.read(buf)) for name, buf in self.buffers.items())

    def write(self, values: dict) -> None:
        for name, value in values.items():
            self.device.write(self.buffers[name], value)


class Model(Graph):
    """A trainable graph: `vb.Model(inputs=x, outputs=y)`. Parameters are named
    "<layer>.<param>", where <layer> is the layer's `name` or its index in creation order."""

    def __init__(self, inputs, outputs):
        super().__init__(inputs, outputs)
        self._values = OrderedDict((f"{self.layer_names[id(layer)]}.{n}", v)
                                   for layer in self.layers for n, v in layer.parameters().items())
        self._store: ParameterStore | None = None

    def param_names(self, layer) -> dict:
        """The layer's own parameter names -> this model's state_dict keys."""
        prefix = self.layer_names[id(layer)]
        return {n: f"{prefix}.{n}" for n in layer.parameters()}

    def bind(self, device) -> ParameterStore:
        """Put the parameters on `device` (current values, wherever they are now). Trainers of one
        model on one device share its parameters, as two PyTorch optimizers would."""
        if self._store is None or self._store.device is not device:
            self._store = ParameterStore(device, self.state_dict())
        return self._store

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Parameter values as float32 numpy arrays, PyTorch names and shapes."""
        if self._store is not None:
            return self._store.read()
        return OrderedDict((k, v.copy()) for k, v in self._values.items())

    def parameters(self) -> "OrderedDict[str, np.ndarray]":
        return self.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """Replace every parameter; all keys, shapes and values are checked before anything changes."""
        missing = [k for k in self._values if k not in state]
        unexpected = [k for k in state if k not in self._values]
        if missing or unexpected:
            raise ValueError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        checked = OrderedDict()
        for name, current in self._values.items():
            value = np.asarray(state[name])
            if value.shape != current.shape:
                raise ValueError(f"load_state_dict: '{name}' expected shape {current.shape}, got {value.shape}")
            if value.dtype.kind not in "fiu":
                raise ValueError(f"load_state_dict: '{name}' expected a numeric array, got dtype {value.dtype}")
            checks.require_finite(value, f"load_state_dict: '{name}'")
            checked[name] = checks.to_float32(value).copy()   # never alias the caller's array
            checks.require_finite(checked[name], f"load_state_dict: '{name}'", "float32")
        if self._store is not None:
            self._store.write(checked)
        else:
            self._values = checked


class Sequential(Model):
    """Layers applied in order; parameter names are "<index>.<name>" as in torch.nn.Sequential."""

    def __init__(self, *layers: Module):
        if not layers:
            raise ValueError("Sequential: needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise ValueError(f"Sequential: item {i} is {type(layer).__name__}, not a layer")
        width = next((layer.in_features for layer in layers if layer.in_features is not None), None)
        if width is None:
            raise ValueError("Sequential: the input width is unknown (start it with a layer such as Linear)")
        x = value = Input(int(width), name="input")
        for i, layer in enumerate(layers):
            try:
                value = layer(value)
            except ValueError:
                before = f"layer {i - 1} ({layers[i - 1]!r})" if i else "the input"
                error = _width_error(layer, value.width)
                raise ValueError(f"Sequential: layer {i} ({layer!r}) cannot follow {before}: {error}") from None
        self.sequence = list(layers)
        super().__init__(x, value)

    @property
    def in_features(self) -> int:
        return self.inputs[0].width

    @property
    def widths(self) -> list:
        """Feature width before each layer and after the last."""
        return [self.in_features] + [c.output.width for c in self.calls]

    def __repr__(self) -> str:
        inner = "\n".join(f"  ({i}): {layer!r}" for i, layer in enumerate(self.sequence))
        return f"Sequential(\n{inner}\n)"


def _width_error(layer, width) -> str:
    try:
        layer.out_features(width)
    except ValueError as e:
        return str(e)
    return "incompatible"
