"""The layer contract: the inductive step of backprop.

A layer is handed dL/d(output) (`io.dy`) and returns, as GPU dispatches, dL/d(params) (`io.grads`)
and dL/d(inputs) (`io.dxs`, an entry None when nothing upstream needs it). Backward *overwrites*
its gradient buffers; when a value or a parameter receives partials from several places, the
scheduler adds them (plan.py), so no layer implements accumulation itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import math

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
    in_shapes: list = None         # per-sample shape of each input, e.g. (C, H, W); default (width,)
    out_shape: tuple = None        # per-sample shape of the output; default (width,)
    state: dict = field(default_factory=dict)    # name -> Buffer: non-trainable state (running statistics)
    saved: dict = field(default_factory=dict)    # scratch a layer's forward makes for its backward (argmax)
    epilogue: str | None = None    # forward only: an activation to apply before storing y (plan.py fused
                                   # the next layer in; y is then that layer's output)
    dx_epilogue: str | None = None  # backward only: the backward of the activation whose output x is, to
                                    # apply before storing dx (plan.py fused the previous layer in; dx is
                                    # then that layer's input gradient)
    dx_partials: object = None      # backward only, for a layer that `accumulates_dx`: a buffer holding
                                    # other consumers' partials of its input's gradient; store their sum
                                    # with its own in dx (which may be that buffer)
    dy_prologue: str | None = None  # backward only: the backward of the activation forward applied as its
                                    # epilogue, to apply to dy first (plan.py fused the next layer in: dy
                                    # is then that layer's output gradient, y its output, the mask)
    squares: dict | None = None     # backward only: a dict when plan.py wants each parameter gradient's sum
                                    # of squares (the gradient norm) from its writer: a layer that can puts
                                    # grads[name]'s partial sums there (name -> Buffer whose sum it is);
                                    # plan.py sums the gradients of the others itself

    def __post_init__(self):
        if self.dxs is None:
            self.dxs = [None] * len(self.xs)
        if self.in_shapes is None:
            self.in_shapes = [(x.shape[-1],) for x in self.xs]
        if self.out_shape is None:
            self.out_shape = (self.y.shape[-1],)

    @property
    def x(self):
        """The input of a single-input layer."""
        return self.xs[0]

    @property
    def dx(self):
        """dL/dx of a single-input layer (None: not needed)."""
        return self.dxs[0]


def backward_reads(layer) -> tuple:
    """`layer.backward_reads`, or both ("x", "y") where a subclass brings its own backward, below the
    class that declared them: what that backward reads is unknown (plan.py keeps both)."""
    mro = type(layer).__mro__
    declared = next(c for c in mro if "backward_reads" in vars(c))
    written = next(c for c in mro if "backward" in vars(c))
    return ("x", "y") if written is not declared and issubclass(written, declared) else tuple(layer.backward_reads)


class Module:
    """Base class of layers. Subclasses define parameters, shapes and their dispatches.

    Calling a layer on graph values (`vb.Input` or the result of another call) connects it:
    `h = vb.ReLU()(vb.Linear(4, 8)(x))`.
    """

    in_features: int | None = None   # known input width, if the layer fixes one
    name: str | None = None          # optional prefix of its state_dict keys in a Model
    differs_in_eval = False          # True if forward depends on io.training (dropout, batch norm)
    keeps_shape = False              # True if the output has its (first) input's per-sample shape
    epilogues: tuple = ()            # activations (their `fusible_as`) forward can apply to its output
    dx_epilogues: tuple = ()         # activations (their `fusible_as`) whose backward this layer's
                                     # backward can apply to dx, the activation having produced its input
    accumulates_dx: bool = False     # whether backward can add its dx to earlier partials as it stores it
                                     # (io.dx_partials) rather than plan.py storing it apart and adding
    passes_dy: bool = False          # whether each input's gradient is dy (after io.dy_prologue): plan.py
                                     # then hands the inputs dy's buffer, and calls backward only for the
                                     # prologue, with dxs[0] the buffer to write (maybe dy's own)
    dy_prologues: tuple = ()         # of its `epilogues`, those whose backward its backward can apply to
                                     # dy first, where its forward applied them
    fusible_as: str | None = None    # an activation a neighbouring layer may apply for this one (plan.py)
    backward_reads: tuple = ("x", "y")   # what backward reads of its inputs ("x": all of them) and its
                                         # output ("y"), like PyTorch's saved tensors: the plan may reuse
                                         # the memory of values no backward reads once forward is past
                                         # them (checked: a backward dispatch reading one is refused)

    def parameters(self) -> dict[str, np.ndarray]:
        """Initial host values of the parameters, PyTorch names and shapes."""
        return {}

    def buffers(self) -> dict[str, np.ndarray]:
        """Initial host values of non-trainable state (BatchNorm's running statistics), PyTorch names
        and shapes: in the state_dict and checkpoints, updated by forward, never by the optimizer."""
        return {}

    def output_shape(self, *shapes: tuple) -> tuple:
        """Per-sample output shape for the inputs' per-sample shapes (ValueError if it cannot take
        them). The default treats the inputs as flat features: (out_features(*widths),), or the
        first input's shape for a layer that `keeps_shape` (elementwise layers)."""
        width = self.out_features(*(math.prod(s) for s in shapes))
        return tuple(shapes[0]) if self.keeps_shape else (width,)

    def check_input_values(self, index: int, values: np.ndarray, in_shapes: list) -> None:
        """Checks of the data a model input brings to this layer's input `index` (token ids,
        sequence lengths): the Trainer runs them on the host, before any GPU work, for every model
        input that reaches the layer directly or through views. `values` is (rows, width); raise
        ValueError naming the problem. Default: any finite float is fine."""

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
