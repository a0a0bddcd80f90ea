"""The benchmarked ops: a layer on a shape (`--layer linear --shape 128,784,256`), its FLOPs and
bytes per pass, and the same math on the host for NumPy and PyTorch.

Each op's host math is written once against the API NumPy and PyTorch share (`xp` is the numpy
or torch module; `@`, `.T`, exp, tanh, sum/amax with axis= and keepdims=), so both baselines
compute exactly what the shaders compute; the tests check the shaders against the NumPy version.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..layers.activation import ReLU, Sigmoid, Tanh
from ..layers.linear import Linear
from ..layers.softmax import Softmax

PASSES = ("forward", "backward")


@dataclass(frozen=True)
class Op:
    name: str
    dims: tuple            # what the numbers of --shape mean; the first is always the batch
    make: Callable         # shape -> (layer, per-sample input shapes)
    forward: Callable      # (xp, arrays) -> {"y": ...}
    backward: Callable     # (xp, arrays with "y") -> {"dx": ..., "d<param>": ...}
    default_shapes: tuple  # the shapes of `--suite default`

    def parse_shape(self, text: str) -> tuple:
        """'128,784,256' -> (128, 784, 256); ValueError naming the expected dims otherwise."""
        want = ",".join(self.dims)
        try:
            shape = tuple(int(part) for part in text.split(","))
        except ValueError:
            raise ValueError(f"--shape {text!r} for {self.name}: expected integers {want}") from None
        if len(shape) != len(self.dims):
            raise ValueError(f"--shape {text!r} for {self.name}: expected {len(self.dims)} numbers {want}, "
                             f"got {len(shape)}")
        if min(shape) < 1:
            raise ValueError(f"--shape {text!r} for {self.name}: every size must be >= 1")
        return shape


def _linear(shape):
    _, fan_in, fan_out = shape
    return Linear(fan_in, fan_out), [(fan_in,)]


def _rows(cls):
    """A layer on (batch, features) rows."""
    return lambda shape: (cls(), [(shape[1],)])


def _softmax(xp, a):
    e = xp.exp(a["x"] - xp.amax(a["x"], axis=1, keepdims=True))
    return {"y": e / xp.sum(e, axis=1, keepdims=True)}


_ROWS = ("batch", "features")
OPS = {op.name: op for op in [
    Op("linear", ("batch", "in_features", "out_features"), _linear,
       forward=lambda xp, a: {"y": a["x"] @ a["weight"].T + a["bias"]},
       backward=lambda xp, a: {"dx": a["dy"] @ a["weight"], "dweight": a["dy"].T @ a["x"],
                               "dbias": a["dy"].sum(0)},
       default_shapes=((128, 128, 128), (256, 256, 256), (512, 512, 512), (1024, 1024, 1024),
                       (128, 784, 256), (1024, 784, 1024))),
    Op("relu", _ROWS, _rows(ReLU),
       forward=lambda xp, a: {"y": a["x"] * (a["x"] > 0)},
       backward=lambda xp, a: {"dx": a["dy"] * (a["x"] > 0)},
       default_shapes=((1024, 4096),)),
    Op("sigmoid", _ROWS, _rows(Sigmoid),
       forward=lambda xp, a: {"y": 1 / (1 + xp.exp(-a["x"]))},
       backward=lambda xp, a: {"dx": a["dy"] * a["y"] * (1 - a["y"])},
       default_shapes=()),
    Op("tanh", _ROWS, _rows(Tanh),
       forward=lambda xp, a: {"y": xp.tanh(a["x"])},
       backward=lambda xp, a: {"dx": a["dy"] * (1 - a["y"] * a["y"])},
       default_shapes=()),
    Op("softmax", _ROWS, _rows(Softmax),
       forward=_softmax,
       backward=lambda xp, a: {"dx": a["y"] * (a["dy"] - xp.sum(a["dy"] * a["y"], axis=1, keepdims=True))},
       default_shapes=((1024, 1000),)),
]}


def get_op(name: str) -> Op:
    if name not in OPS:
        raise ValueError(f"unknown layer {name!r}; known: {', '.join(OPS)}")
    return OPS[name]


def weight_macs(layer, out_shape) -> int:
    """Multiply-adds per sample of a layer's forward when it multiplies by a weight of two or more
    dimensions (Linear: out x in; a convolution: out x (in x kh x kw) per output pixel): each output
    element takes prod(weight.shape[1:]) of them. 0 for other layers (their cost is memory)."""
    weight = layer.parameters().get("weight")
    if weight is None or np.ndim(weight) < 2:
        return 0
    return math.prod(out_shape) * math.prod(np.shape(weight)[1:])


def pass_flops(layer, batch: int, out_shape, pass_: str) -> int | None:
    """FLOPs of a pass, counting the weight GEMMs only: forward 2 x MACs; backward 4 x MACs
    (dx and dW are one GEMM each). None where there is no weight GEMM (elementwise, softmax)."""
    macs = weight_macs(layer, out_shape)
    if not macs:
        return None
    return (2 if pass_ == "forward" else 4) * batch * macs


def pass_bytes(dispatches) -> int:
    """Bytes a pass moves at least: every buffer its dispatches read, read once, and every buffer
    they write, written once (a lower bound: caches miss, tiles reload, scratch goes both ways)."""
    reads = set().union(*(d.reads for d in dispatches))
    writes = set().union(*(d.writes for d in dispatches))
    return sum(b.size * b.dtype.itemsize for b in reads) + sum(b.size * b.dtype.itemsize for b in writes)


def host_arrays(layer, batch: int, in_shapes, rng) -> dict:
    """Inputs of one op on the host (float32): x and dy standard normal, the layer's initial
    parameters. Names as IsolatedLayer.inputs."""
    out = math.prod(layer.output_shape(*in_shapes))
    arrays = {"x": rng.standard_normal((batch, math.prod(in_shapes[0]))).astype(np.float32)}
    arrays.update({n: np.asarray(v, np.float32) for n, v in layer.parameters().items()})
    arrays["dy"] = rng.standard_normal((batch, out)).astype(np.float32)
    return arrays
