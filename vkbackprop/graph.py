"""Graph models: values (`Input` or the output of a layer call) connected by layer calls.

    x = vb.Input(64)
    h = vb.ReLU()(vb.Linear(64, 64)(x))
    y = vb.Linear(64, 10)(vb.Add()(x, h))     # x feeds two consumers: its gradient is the sum
    model = vb.Model(inputs=x, outputs=y)

A value may feed several layers and a layer may take several inputs; calling one layer object twice
shares its parameters. `Model` checks the graph when it is built and orders the calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


class Value:
    """An activation in a graph: `shape` per sample (rows are the batch), stored row-major as
    (batch, width) with width = prod(shape)."""

    def __init__(self, shape: tuple, call: "Call | None" = None, name: str | None = None):
        self.shape, self.call, self.name = tuple(shape), call, name
        self.width = math.prod(self.shape)

    def __repr__(self) -> str:
        return f"<{self.name or 'value'} shape={self.shape}>"


class Input(Value):
    """A model input: `shape` per sample (an int for `shape` features)."""
    _count = 0

    def __init__(self, shape, name: str | None = None):
        dims = (shape,) if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool) else shape
        if (not isinstance(dims, (tuple, list)) or not dims
                or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in dims)):
            raise ValueError(f"Input: shape must be a positive int or a tuple of them, got {shape!r}")
        Input._count += 1
        super().__init__(tuple(int(d) for d in dims), None, name or f"input{Input._count}")


@dataclass(eq=False)
class Call:
    """One application of a layer to input values, producing one output value."""
    layer: object
    inputs: tuple
    output: Value = field(init=False)
    serial: int = field(init=False)   # creation order: keeps layer numbering and state_dict keys stable
    _next = 0

    def __post_init__(self):
        Call._next += 1
        self.serial = Call._next


def connect(layer, inputs) -> Value:
    """`layer(*inputs)`: check the widths now, so a mismatch names the layers involved."""
    for i, v in enumerate(inputs):
        if not isinstance(v, Value):
            raise ValueError(f"{layer!r}: argument {i} is {type(v).__name__}, not a graph value "
                             "(use vb.Input or the result of another layer call); to run a model, use a Trainer")
    if not inputs:
        raise ValueError(f"{layer!r}: called with no inputs")
    try:
        shape = tuple(int(d) for d in layer.output_shape(*(v.shape for v in inputs)))
    except ValueError as e:
        sources = ", ".join(_describe_source(v) for v in inputs)
        raise ValueError(f"{layer!r} cannot take the output of {sources}: {e}") from None
    call = Call(layer, tuple(inputs))
    call.output = Value(shape, call)
    return call.output


def _describe_source(value: Value) -> str:
    return repr(value.call.layer) if value.call else f"input '{value.name}'"


class Graph:
    """The structure of a model: layer calls from `inputs` to `outputs` (a value or a list of values),
    checked and topologically ordered. `vkbackprop.Model` adds the parameters."""

    def __init__(self, inputs, outputs):
        self.inputs = _as_list(inputs, "inputs")
        self.outputs = _as_list(outputs, "outputs")
        for v in self.inputs:
            if not isinstance(v, Input):
                raise ValueError(f"Model: inputs must be vb.Input values, got {v!r}")
        if len(set(map(id, self.inputs))) != len(self.inputs):
            raise ValueError("Model: an input is listed twice")
        self.calls = self._topological_calls()
        self._check_inputs()
        self.layers = _unique_layers(self.calls)
        self.layer_names = _layer_names(self.layers)

    def _topological_calls(self) -> list:
        """Calls in an order where each comes after the calls producing its inputs (ties: creation order)."""
        order, state = [], {}
        def visit(value, path):
            call = value.call
            if call is None:
                return
            if state.get(call) == "active":
                cycle = " -> ".join(repr(c.layer) for c in path[path.index(call):] + [call])
                raise ValueError(f"Model: the graph has a cycle: {cycle}")
            if state.get(call) == "done":
                return
            state[call] = "active"
            for v in sorted(call.inputs, key=lambda v: v.call.serial if v.call else 0):
                visit(v, path + [call])
            state[call] = "done"
            order.append(call)
        for out in self.outputs:
            if not isinstance(out, Value):
                raise ValueError(f"Model: outputs must be graph values, got {type(out).__name__}")
            visit(out, [])
        return order

    def _check_inputs(self) -> None:
        reached = {id(v) for c in self.calls for v in c.inputs if v.call is None}
        reached |= {id(v) for v in self.outputs if v.call is None}
        listed = {id(v) for v in self.inputs}
        unused = [v.name for v in self.inputs if id(v) not in reached]
        if unused:
            raise ValueError(f"Model: inputs {unused} are not used to compute any output")
        missing = sorted({v.name for c in self.calls for v in c.inputs if v.call is None and id(v) not in listed})
        if missing:
            consumers = [repr(c.layer) for c in self.calls for v in c.inputs if v.name in missing and v.call is None]
            raise ValueError(f"Model: {consumers[0]} reads input(s) {missing} that are not among the model's inputs")

    @property
    def in_widths(self) -> list:
        return [v.width for v in self.inputs]

    @property
    def out_widths(self) -> list:
        return [v.width for v in self.outputs]

    def __repr__(self) -> str:
        lines = [f"  ({self.layer_names[id(c.layer)]}): {c.layer!r}" for c in self.calls]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


def _as_list(values, what: str) -> list:
    values = list(values) if isinstance(values, (list, tuple)) else [values]
    if not values:
        raise ValueError(f"Model: needs at least one of {what}")
    return values


def _unique_layers(calls) -> list:
    seen, layers = set(), []
    for call in sorted(calls, key=lambda c: c.serial):
        if id(call.layer) not in seen:
            seen.add(id(call.layer))
            layers.append(call.layer)
    return layers


def _layer_names(layers) -> dict:
    """id(layer) -> its state_dict prefix: the layer's own name, else its index in creation order."""
    names = {}
    for i, layer in enumerate(layers):
        name = layer.name or str(i)
        if name in names.values():
            raise ValueError(f"Model: two layers are named '{name}'")
        names[id(layer)] = name
    return names
