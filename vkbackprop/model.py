"""Models and their parameters, which live on the device once a Trainer binds them."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from . import checks
from .graph import Graph, Input
from .layers.base import Module


class ParameterStore:
    """Device copies of a model's parameters and of its layers' non-trainable state (staged: they
    can be read and loaded from the host). Integer state (BatchNorm's num_batches_tracked, int64 on
    the host like PyTorch's) is a uint32 on the device."""

    def __init__(self, device, params: "OrderedDict[str, np.ndarray]", states: "OrderedDict[str, np.ndarray]"):
        self.device = device
        self.params = OrderedDict((name, self._upload(name, v)) for name, v in params.items())
        self.states = OrderedDict((name, self._upload(name, v)) for name, v in states.items())
        self.host_dtypes = {name: np.asarray(v).dtype for name, v in {**params, **states}.items()}

    def _upload(self, name, value):
        value = np.asarray(value)
        buf = self.device.buffer(name, value.shape, np.uint32 if value.dtype.kind in "iu" else np.float32, staged=True)
        self.device.write(buf, value)
        return buf

    def read(self, names) -> "OrderedDict[str, np.ndarray]":
        every = {**self.params, **self.states}
        return OrderedDict((n, self.device.read(every[n]).astype(self.host_dtypes[n])) for n in names)

    def write(self, values: dict) -> None:
        every = {**self.params, **self.states}
        for name, value in values.items():
            self.device.write(every[name], value)


class Model(Graph):
    """A trainable graph: `vb.Model(inputs=x, outputs=y)`. Parameters are named
    "<layer>.<param>", where <layer> is the layer's `name` or its index in creation order; so are
    the layers' non-trainable buffers (BatchNorm's running statistics), as in PyTorch."""

    def __init__(self, inputs, outputs):
        super().__init__(inputs, outputs)
        self._values = OrderedDict((key, v) for layer in self.layers
                                   for key, v in self._prefixed(layer, layer.parameters()).items())
        self._states = OrderedDict((key, v) for layer in self.layers
                                   for key, v in self._prefixed(layer, layer.buffers()).items())
        # PyTorch's state_dict order: per layer its parameters, then its buffers.
        self._keys = [key for layer in self.layers for key in
                      list(self.param_names(layer).values()) + list(self.state_names(layer).values())]
        self._store: ParameterStore | None = None

    def _prefixed(self, layer, values: dict) -> dict:
        prefix = self.layer_names[id(layer)]
        return {f"{prefix}.{n}": v for n, v in values.items()}

    def param_names(self, layer) -> dict:
        """The layer's own parameter names -> this model's state_dict keys."""
        prefix = self.layer_names[id(layer)]
        return {n: f"{prefix}.{n}" for n in layer.parameters()}

    def state_names(self, layer) -> dict:
        """The layer's own buffer names (non-trainable state) -> this model's state_dict keys."""
        prefix = self.layer_names[id(layer)]
        return {n: f"{prefix}.{n}" for n in layer.buffers()}

    def bind(self, device) -> ParameterStore:
        """Put the parameters and buffers on `device` (current values, wherever they are now).
        Trainers of one model on one device share them, as two PyTorch optimizers would."""
        if self._store is None or self._store.device is not device:
            state = self.state_dict()
            self._store = ParameterStore(device, OrderedDict((k, state[k]) for k in self._values),
                                         OrderedDict((k, state[k]) for k in self._states))
        return self._store

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Parameters (float32) and buffers (running statistics float32, counters int64) as numpy
        arrays, PyTorch names, shapes and order."""
        if self._store is not None:
            return self._store.read(self._keys)
        every = {**self._values, **self._states}
        return OrderedDict((k, every[k].copy()) for k in self._keys)

    def parameters(self) -> "OrderedDict[str, np.ndarray]":
        """The trainable parameters only (no buffers), named like state_dict()."""
        state = self.state_dict()
        return OrderedDict((k, state[k]) for k in self._values)

    def load_state_dict(self, state: dict) -> None:
        """Replace every parameter and buffer; all keys, shapes and values are checked before
        anything changes."""
        current = {**self._values, **self._states}
        missing = [k for k in self._keys if k not in state]
        unexpected = [k for k in state if k not in current]
        if missing or unexpected:
            raise ValueError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        checked = OrderedDict()
        for name in self._keys:
            value, want = np.asarray(state[name]), current[name]
            if value.shape != want.shape:
                raise ValueError(f"load_state_dict: '{name}' expected shape {want.shape}, got {value.shape}")
            if value.dtype.kind not in "fiu":
                raise ValueError(f"load_state_dict: '{name}' expected a numeric array, got dtype {value.dtype}")
            checks.require_finite(value, f"load_state_dict: '{name}'")
            if want.dtype.kind in "iu":      # a counter: a non-negative integer that fits the device's uint32
                if np.any(value != np.round(value)) or np.any(value < 0) or np.any(value >= 2**32):
                    raise ValueError(f"load_state_dict: '{name}' must hold integers in [0, 2**32), got {value}")
                checked[name] = value.astype(want.dtype)
            else:
                checked[name] = checks.to_float32(value).copy()   # never alias the caller's array
                checks.require_finite(checked[name], f"load_state_dict: '{name}'", "float32")
        if self._store is not None:
            self._store.write(checked)
        else:
            self._values = OrderedDict((k, checked[k]) for k in self._values)
            self._states = OrderedDict((k, checked[k]) for k in self._states)


class Sequential(Model):
    """Layers applied in order; parameter names are "<index>.<name>" as in torch.nn.Sequential.
    `input_shape`: the per-sample shape of the input, e.g. (1, 28, 28) for a network that starts
    with Conv2d; optional when a layer such as Linear fixes the input width."""

    def __init__(self, *layers: Module, input_shape=None):
        if not layers:
            raise ValueError("Sequential: needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise ValueError(f"Sequential: item {i} is {type(layer).__name__}, not a layer")
        if input_shape is None:
            width = next((layer.in_features for layer in layers if layer.in_features is not None), None)
            if width is None:
                raise ValueError("Sequential: the input shape is unknown: pass input_shape=(C, H, W) "
                                 "(or start with a layer such as Linear that fixes the input width)")
            input_shape = int(width)
        x = value = Input(input_shape, name="input")
        for i, layer in enumerate(layers):
            try:
                value = layer(value)
            except ValueError:
                before = f"layer {i - 1} ({layers[i - 1]!r})" if i else "the input"
                error = _shape_error(layer, value.shape)
                raise ValueError(f"Sequential: layer {i} ({layer!r}) cannot follow {before}: {error}") from None
        self.sequence = list(layers)
        super().__init__(x, value)

    @property
    def in_features(self) -> int:
        return self.inputs[0].width

    @property
    def input_shape(self) -> tuple:
        return self.inputs[0].shape

    @property
    def widths(self) -> list:
        """Feature width before each layer and after the last."""
        return [self.in_features] + [c.output.width for c in self.calls]

    def __repr__(self) -> str:
        inner = "\n".join(f"  ({i}): {layer!r}" for i, layer in enumerate(self.sequence))
        return f"Sequential(\n{inner}\n)"


def _shape_error(layer, shape) -> str:
    try:
        layer.output_shape(shape)
    except ValueError as e:
        return str(e)
    return "incompatible"
