"""The layer contract: the inductive step of backprop.

A layer is handed dL/d(output) (`io.dy`) and returns, as GPU dispatches, dL/d(params) (`io.grads`)
and dL/d(input) (`io.dx`, None when nothing upstream needs it). Backward *overwrites* its gradient
buffers; the scheduler owns everything else (buffers, ordering, barriers).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class LayerIO:
    """The buffers one layer works on in a planned step."""
    device: object
    batch: int
    x: object                      # input activations (batch, in_features)
    y: object                      # output activations (batch, out_features)
    params: dict = field(default_factory=dict)   # name -> Buffer
    dy: object = None              # dL/dy, given to backward
    dx: object = None              # dL/dx, written by backward; None if not needed
    grads: dict = field(default_factory=dict)    # name -> Buffer, written by backward


class Module:
    """Base class of layers. Subclasses define parameters, shapes and their dispatches."""

    in_features: int | None = None   # known input width, if the layer fixes one

    def parameters(self) -> dict[str, np.ndarray]:
        """Initial host values of the parameters, PyTorch names and shapes."""
        return {}

    def out_features(self, in_features: int) -> int:
        """Output width for an input width; ValueError if the layer cannot take it."""
        return in_features

    def forward(self, io: LayerIO) -> list:
        raise NotImplementedError

    def backward(self, io: LayerIO) -> list:
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        raise TypeError(f"{type(self).__name__} runs inside a Trainer; use trainer.predict(x) to evaluate")
