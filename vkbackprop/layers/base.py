"""The layer contract: the inductive step of backprop.

A layer is handed dL/d(output) (`io.dy`) and returns, as GPU dispatches, dL/d(params) (`io.grads`)
and dL/d(inputs) (`io.dxs`, an entry None when nothing upstream needs it). Backward *overwrites*
its gradient buffers; when a value or a parameter receives partials from several places, the
scheduler adds them (plan.py), so no layer implements accumulation itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class LayerIO:
    """The buffers one layer call works on in a planned step."""
    device: object
    batch: int
    xs: list                       # input activations, each (batch, width)
    y: object                      # output activations (batch, out_features)
    params: dict = field(default_factory=dict)   # name -> Buffer
    dy: object = None              # dL/dy, given to backward
    dxs: list = None               # dL/dx per input, written by backward; None entries: not needed
    grads: dict = field(default_factory=dict)    # name -> Buffer, written by backward
    training: bool = True          # False in the prediction (eval-mode) sequence
    step: object = None            # uint32[1] device buffer: the training step count (random streams)

    def __post_init__(self):
        if self.dxs is None:
            self.dxs = [None] * len(self.xs)

    @property
    def x(self):
        """The input of a single-input layer."""
        return self.xs[0]

    @property
    def dx(self):
        """dL/dx of a single-input layer (None: not needed)."""
        return self.dxs[0]


class Module:
    """Base class of layers. Subclasses define parameters, shapes and their dispatches.

    Calling a layer on graph values (`vb.Input` or the result of another call) connects it:
    `h = vb.ReLU()(vb.Linear(4, 8)(x))`.
    """

    in_features: int | None = None   # known input width, if the layer fixes one
    name: str | None = None          # optional prefix of its state_dict keys in a Model
    differs_in_eval = False          # True if forward depends on io.training (dropout, batch norm)

    def parameters(self) -> dict[str, np.ndarray]:
        """Initial host values of the parameters, PyTorch names and shapes."""
        return {}

    def out_features(self, *in_features: int) -> int:
        """Output width for the input widths; ValueError if the layer cannot take them."""
        if len(in_features) != 1:
            raise ValueError(f"{self!r} takes one input, got {len(in_features)}")
        return in_features[0]

    def forward(self, io: LayerIO) -> list:
        raise NotImplementedError

    def backward(self, io: LayerIO) -> list:
        raise NotImplementedError

    def __call__(self, *inputs):
        from ..graph import connect
        return connect(self, inputs)
