"""The benchmarked ops: a layer on a shape (`--layer linear --shape 128,784,256`), its FLOPs and
bytes per pass, and the same math on the host for NumPy and PyTorch.

An op's host math comes in one of two forms:
  XpMath         written once against the API NumPy and PyTorch share (`xp` is the numpy or torch
                 module; `@`, `.T`, exp, tanh, sum/amax with axis= and keepdims=), so both
                 baselines compute exactly what the shaders compute (elementwise ops, softmax, Linear);
  ReferenceMath  where one form does not fit both (convolution, pooling, norms, recurrences,
                 lookups): NumPy through the float64 references of vkbackprop.reference, PyTorch
                 through torch.nn.functional or the torch.nn twin of the layer with its parameters,
                 backward by autograd.
Either way the tests check the shaders against the NumPy side. Host arrays are shaped per sample
(x (batch, *in_shape), dy and y (batch, *out_shape)); the device buffers hold the same values flat.
"""

from __future__ import annotations

import functools
import importlib
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..layers.activation import GELU, LeakyReLU, ReLU, Sigmoid, Tanh
from ..layers.conv import Conv2d
from ..layers.embedding import Embedding
from ..layers.linear import Linear
from ..layers.norm import BatchNorm2d, LayerNorm
from ..layers.pool import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from ..layers.recurrent import GRU, LSTM, RNN, Recurrent
from ..layers.softmax import LogSoftmax, Softmax
from ..reference import conv as ref_conv, layers as ref_layers, norm as ref_norm, pool as ref_pool
from ..reference import recurrent as ref_recurrent

PASSES = ("forward", "backward")
LIBRARIES = ("numpy", "torch")


# --- host math ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class XpMath:
    """Host math written once for NumPy and PyTorch (see the module docstring)."""
    forward: Callable    # (xp, arrays) -> {"y": ...}
    backward: Callable   # (xp, arrays with "y") -> {"dx": ..., "d<param>": ...}

    def prepare(self, library: str, pass_: str, layer, arrays: dict) -> Callable[[], dict]:
        """The pass in `library` ("numpy" or "torch") as a call without arguments, returning the
        pass's outputs by name: what the runner times."""
        compute, xp = getattr(self, pass_), importlib.import_module(library)
        return lambda: compute(xp, arrays)


@dataclass(frozen=True)
class ReferenceMath:
    """NumPy through the float64 references (the result check, and a NumPy baseline written for
    clarity rather than speed); PyTorch through its own forward, backward by autograd."""
    numpy_forward: Callable    # (layer, arrays) -> {"y": ...}
    numpy_backward: Callable   # (layer, arrays) -> {"dx": ..., "d<param>": ...}, every gradient the layer writes
    torch_forward: Callable    # (layer, tensors) -> y

    def prepare(self, library: str, pass_: str, layer, arrays: dict) -> Callable[[], dict]:
        """As XpMath.prepare; PyTorch's backward builds its autograd graph here, untimed."""
        if library == "numpy":
            compute = self.numpy_forward if pass_ == "forward" else self.numpy_backward
            return lambda: compute(layer, arrays)
        if pass_ == "forward":
            return lambda: {"y": self.torch_forward(layer, arrays)}
        return self._autograd_backward(layer, arrays)

    def _autograd_backward(self, layer, tensors: dict) -> Callable[[], dict]:
        """Gradients of x and every parameter for dy, from one forward graph kept between calls
        (retain_graph). An input the forward does not differentiate (tokens) gets zeros, as the
        layer writes."""
        import torch
        names = ["x", *layer.parameters()]
        leaves = {n: tensors[n].detach().requires_grad_() for n in names}
        y = self.torch_forward(layer, {**tensors, **leaves})

        def backward():
            grads = torch.autograd.grad(y, list(leaves.values()), tensors["dy"], retain_graph=True,
                                        allow_unused=True, materialize_grads=True)
            return {f"d{n}": g for n, g in zip(names, grads)}
        return backward


def _standard_normal(rng, layer, shape):
    return rng.standard_normal(shape).astype(np.float32)


@dataclass(frozen=True)
class Op:
    name: str
    dims: tuple                 # what the numbers of --shape mean; the first is always the batch
    make: Callable              # shape -> (layer, per-sample input shapes)
    math: XpMath | ReferenceMath
    default_shapes: tuple       # the shapes of `--suite default`
    draw_x: Callable = _standard_normal   # (rng, layer, (batch, *in_shape)) -> float32 input values
    optional: tuple = ()        # further numbers --shape may add after `dims` (`make` has their defaults)

    def parse_shape(self, text: str) -> tuple:
        """'128,784,256' -> (128, 784, 256); ValueError naming the expected dims otherwise."""
        want = ",".join(self.dims) + "".join(f"[,{d}]" for d in self.optional)
        try:
            shape = tuple(int(part) for part in text.split(","))
        except ValueError:
            raise ValueError(f"--shape {text!r} for {self.name}: expected integers {want}") from None
        if not len(self.dims) <= len(shape) <= len(self.dims) + len(self.optional):
            count = f"{len(self.dims)}" + (f" to {len(self.dims) + len(self.optional)}" if self.optional else "")
            raise ValueError(f"--shape {text!r} for {self.name}: expected {count} numbers {want}, got {len(shape)}")
        if min(shape) < 1:
            raise ValueError(f"--shape {text!r} for {self.name}: every size must be >= 1")
        try:                 # sizes the layer cannot take (a window larger than the image)
            layer, in_shapes = self.make(shape)
            layer.output_shape(*in_shapes)
        except ValueError as e:
            raise ValueError(f"--shape {text!r} for {self.name}: {e}") from None
        return shape


# --- layers on shapes ---------------------------------------------------------------------------
def _linear(shape):
    _, fan_in, fan_out = shape
    return Linear(fan_in, fan_out), [(fan_in,)]


def _rows(cls):
    """A layer on (batch, features) rows."""
    return lambda shape: (cls(), [(shape[1],)])


def _conv2d(shape):
    """Padding kernel // 2 (an odd kernel keeps height and width at stride 1); stride 1 unless a 7th
    number gives it."""
    _, channels, height, width, out_channels, kernel, *stride = shape
    return (Conv2d(channels, out_channels, kernel, stride=stride[0] if stride else 1, padding=kernel // 2),
            [(channels, height, width)])


def _pool(cls):
    """A pooling layer whose last --shape number is its kernel (stride = kernel, no padding) or
    output size, on (channels, height, width) samples."""
    return lambda shape: (cls(shape[4]), [shape[1:4]])


def _layernorm(shape):
    return LayerNorm(shape[1]), [(shape[1],)]


def _batchnorm2d(shape):
    return BatchNorm2d(shape[1]), [shape[1:]]


def _recurrent(cls):
    """One layer of `cls` over (steps, input_size) sequences."""
    return lambda shape: (cls(shape[2], shape[3]), [(shape[1], shape[2])])


def _embedding(shape):
    _, tokens, vocabulary, dim = shape
    return Embedding(vocabulary, dim), [(tokens,)]


def _tokens(rng, layer, shape):
    """Token ids as the layer takes them: float values holding integers in [0, num_embeddings)."""
    return rng.integers(0, layer.num_embeddings, shape).astype(np.float32)


# --- host math of each op -----------------------------------------------------------------------
NEGATIVE_SLOPE = 0.01   # leaky_relu's


def _softmax(xp, a):
    e = xp.exp(a["x"] - xp.amax(a["x"], axis=1, keepdims=True))
    return {"y": e / xp.sum(e, axis=1, keepdims=True)}


def _log_softmax(xp, a):
    shifted = a["x"] - xp.amax(a["x"], axis=1, keepdims=True)
    return {"y": shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))}


def _leaky_slope(xp, x):
    """1 where x > 0, else the negative slope (also at 0, as PyTorch)."""
    return xp.where(x > 0, 1.0, NEGATIVE_SLOPE)


def _params(layer, arrays) -> dict:
    return {n: arrays[n] for n in layer.parameters()}


def _gradients(layer, dx, grads: dict) -> dict:
    """Backward's outputs by IsolatedLayer's names: dx and d<param> for every parameter."""
    return {"dx": dx, **{f"d{n}": grads[n] for n in layer.parameters()}}


def _weight_bias_gradients(layer, gradients: tuple) -> dict:
    """A reference's (dx, dweight, dbias) as backward's outputs."""
    dx, dweight, dbias = gradients
    return _gradients(layer, dx, {"weight": dweight, "bias": dbias})


def _functional():
    import torch.nn.functional
    return torch.nn.functional


CONV2D = ReferenceMath(
    numpy_forward=lambda layer, a: {"y": ref_conv.conv2d_forward(
        a["x"], a["weight"], a["bias"], layer.stride, layer.padding, layer.dilation, layer.groups)},
    numpy_backward=lambda layer, a: _weight_bias_gradients(layer, ref_conv.conv2d_backward(
        a["x"], a["weight"], a["dy"], layer.stride, layer.padding, layer.dilation, layer.groups)),
    torch_forward=lambda layer, t: _functional().conv2d(t["x"], t["weight"], t["bias"], layer.stride,
                                                        layer.padding, layer.dilation, layer.groups))


def _max_pool2d_numpy_backward(layer, a):
    # The reference's backward reads the argmax, so NumPy's backward includes a forward.
    _, argmax = ref_pool.max_pool2d_forward(a["x"], layer.kernel_size, layer.stride, layer.padding,
                                            layer.dilation, layer.ceil_mode)
    return {"dx": ref_pool.max_pool2d_backward(a["dy"], argmax, a["x"].shape)}


MAXPOOL2D = ReferenceMath(
    numpy_forward=lambda layer, a: {"y": ref_pool.max_pool2d_forward(
        a["x"], layer.kernel_size, layer.stride, layer.padding, layer.dilation, layer.ceil_mode)[0]},
    numpy_backward=_max_pool2d_numpy_backward,
    torch_forward=lambda layer, t: _functional().max_pool2d(t["x"], layer.kernel_size, layer.stride, layer.padding,
                                                            layer.dilation, layer.ceil_mode))


def _avg_pool2d_options(layer) -> tuple:
    return layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode, layer.count_include_pad, \
        layer.divisor_override


AVGPOOL2D = ReferenceMath(
    numpy_forward=lambda layer, a: {"y": ref_pool.avg_pool2d_forward(a["x"], *_avg_pool2d_options(layer))},
    numpy_backward=lambda layer, a: {"dx": ref_pool.avg_pool2d_backward(a["dy"], a["x"].shape,
                                                                        *_avg_pool2d_options(layer))},
    torch_forward=lambda layer, t: _functional().avg_pool2d(t["x"], *_avg_pool2d_options(layer)))

ADAPTIVE_AVGPOOL2D = ReferenceMath(
    numpy_forward=lambda layer, a: {"y": ref_pool.adaptive_avg_pool2d_forward(a["x"], layer.output_size)},
    numpy_backward=lambda layer, a: {"dx": ref_pool.adaptive_avg_pool2d_backward(a["dy"], a["x"].shape,
                                                                                 layer.output_size)},
    torch_forward=lambda layer, t: _functional().adaptive_avg_pool2d(t["x"], layer.output_size))


def _batch_norm_torch(layer, t):
    """Training mode, updating fresh running statistics as the layer's forward does."""
    channels = layer.num_features
    return _functional().batch_norm(t["x"], t["x"].new_zeros(channels), t["x"].new_ones(channels), t["weight"],
                                    t["bias"], training=True, momentum=layer.momentum, eps=layer.eps)


BATCHNORM2D = ReferenceMath(
    numpy_forward=lambda layer, a: {"y": ref_norm.batch_norm_forward(a["x"], a["weight"], a["bias"], layer.eps)},
    numpy_backward=lambda layer, a: _weight_bias_gradients(
        layer, ref_norm.batch_norm_backward(a["x"], a["dy"], a["weight"], layer.eps)),
    torch_forward=_batch_norm_torch)


LAYERNORM = ReferenceMath(
    numpy_forward=lambda layer, a: {"y": ref_norm.layer_norm_forward(
        a["x"], len(layer.normalized_shape), a["weight"], a["bias"], layer.eps)},
    numpy_backward=lambda layer, a: _weight_bias_gradients(
        layer, ref_norm.layer_norm_backward(a["x"], a["dy"], len(layer.normalized_shape), a["weight"], layer.eps)),
    torch_forward=lambda layer, t: _functional().layer_norm(t["x"], layer.normalized_shape, t["weight"], t["bias"],
                                                            layer.eps))


def _recurrent_numpy_backward(layer, a):
    dx, grads, _, _ = ref_recurrent.recurrent_backward(layer.mode, a["x"], _params(layer, a), a["dy"],
                                                       layer.num_layers, bias=layer.bias)
    return _gradients(layer, dx, grads)


@functools.lru_cache(maxsize=None)
def _torch_recurrent_twin(kind: str, input_size: int, hidden_size: int):
    """torch.nn.RNN / LSTM / GRU, batch first, built once per size: its parameters are replaced by
    the op's on each call."""
    import torch
    return getattr(torch.nn, kind)(input_size, hidden_size, batch_first=True)


def _recurrent_torch(layer, t):
    from torch.func import functional_call
    twin = _torch_recurrent_twin(type(layer).__name__, layer.input_size, layer.hidden_size)
    output, _ = functional_call(twin, _params(layer, t), (t["x"],))
    return output


RECURRENT = ReferenceMath(
    numpy_forward=lambda layer, a: {"y": ref_recurrent.recurrent_forward(
        layer.mode, a["x"], _params(layer, a), layer.num_layers, bias=layer.bias)[0]},
    numpy_backward=_recurrent_numpy_backward,
    torch_forward=_recurrent_torch)

EMBEDDING = ReferenceMath(
    numpy_forward=lambda layer, a: {"y": ref_recurrent.embedding_forward(a["x"], a["weight"])},
    # Tokens are indices: no gradient flows into them (the layer writes zeros).
    numpy_backward=lambda layer, a: {"dx": np.zeros_like(a["x"]), "dweight": ref_recurrent.embedding_backward(
        a["x"], a["dy"], layer.num_embeddings, layer.padding_idx)},
    torch_forward=lambda layer, t: _functional().embedding(t["x"].long(), t["weight"], layer.padding_idx))

GELU_MATH = ReferenceMath(   # NumPy has no erf: the reference's is elementwise Python (slow)
    numpy_forward=lambda layer, a: {"y": ref_layers.gelu_forward(a["x"], layer.approximate)},
    numpy_backward=lambda layer, a: {"dx": ref_layers.gelu_backward(a["x"], a["dy"], layer.approximate)},
    torch_forward=lambda layer, t: _functional().gelu(t["x"], approximate=layer.approximate))


# --- the table ----------------------------------------------------------------------------------
_ROWS = ("batch", "features")
_IMAGES = ("batch", "channels", "height", "width")
_SEQUENCES = ("batch", "steps", "input_size", "hidden_size")
OPS = {op.name: op for op in [
    Op("linear", ("batch", "in_features", "out_features"), _linear, XpMath(
        forward=lambda xp, a: {"y": a["x"] @ a["weight"].T + a["bias"]},
        backward=lambda xp, a: {"dx": a["dy"] @ a["weight"], "dweight": a["dy"].T @ a["x"],
                                "dbias": a["dy"].sum(0)}),
       default_shapes=((128, 128, 128), (256, 256, 256), (512, 512, 512), (1024, 1024, 1024),
                       (128, 784, 256), (1024, 784, 1024))),
    Op("relu", _ROWS, _rows(ReLU), XpMath(
        forward=lambda xp, a: {"y": a["x"] * (a["x"] > 0)},
        backward=lambda xp, a: {"dx": a["dy"] * (a["x"] > 0)}),
       default_shapes=((1024, 4096),)),
    Op("leaky_relu", _ROWS, _rows(lambda: LeakyReLU(NEGATIVE_SLOPE)), XpMath(
        forward=lambda xp, a: {"y": a["x"] * _leaky_slope(xp, a["x"])},
        backward=lambda xp, a: {"dx": a["dy"] * _leaky_slope(xp, a["x"])}),
       default_shapes=()),
    Op("sigmoid", _ROWS, _rows(Sigmoid), XpMath(
        forward=lambda xp, a: {"y": 1 / (1 + xp.exp(-a["x"]))},
        backward=lambda xp, a: {"dx": a["dy"] * a["y"] * (1 - a["y"])}),
       default_shapes=()),
    Op("tanh", _ROWS, _rows(Tanh), XpMath(
        forward=lambda xp, a: {"y": xp.tanh(a["x"])},
        backward=lambda xp, a: {"dx": a["dy"] * (1 - a["y"] * a["y"])}),
       default_shapes=()),
    Op("gelu", _ROWS, _rows(GELU), GELU_MATH, default_shapes=()),
    Op("softmax", _ROWS, _rows(Softmax), XpMath(
        forward=_softmax,
        backward=lambda xp, a: {"dx": a["y"] * (a["dy"] - xp.sum(a["dy"] * a["y"], axis=1, keepdims=True))}),
       default_shapes=((1024, 1000),)),
    Op("log_softmax", _ROWS, _rows(LogSoftmax), XpMath(
        forward=_log_softmax,
        backward=lambda xp, a: {"dx": a["dy"] - xp.exp(a["y"]) * xp.sum(a["dy"], axis=1, keepdims=True)}),
       default_shapes=()),
    Op("conv2d", _IMAGES + ("out_channels", "kernel"), _conv2d, CONV2D,
       default_shapes=((32, 16, 16, 16, 32, 3),), optional=("stride",)),
    Op("maxpool2d", _IMAGES + ("kernel",), _pool(MaxPool2d), MAXPOOL2D, default_shapes=((32, 32, 32, 32, 2),)),
    Op("avgpool2d", _IMAGES + ("kernel",), _pool(AvgPool2d), AVGPOOL2D, default_shapes=((32, 32, 32, 32, 2),)),
    Op("adaptive_avgpool2d", _IMAGES + ("output_size",), _pool(AdaptiveAvgPool2d), ADAPTIVE_AVGPOOL2D,
       default_shapes=((64, 64, 8, 8, 1),)),
    Op("batchnorm2d", _IMAGES, _batchnorm2d, BATCHNORM2D, default_shapes=((32, 32, 32, 32),)),
    Op("layernorm", _ROWS, _layernorm, LAYERNORM, default_shapes=((1024, 1024),)),
    Op("rnn", _SEQUENCES, _recurrent(RNN), RECURRENT, default_shapes=()),
    Op("lstm", _SEQUENCES, _recurrent(LSTM), RECURRENT, default_shapes=((16, 64, 32, 64),)),
    Op("gru", _SEQUENCES, _recurrent(GRU), RECURRENT, default_shapes=((16, 64, 32, 64),)),
    Op("embedding", ("batch", "tokens", "vocabulary", "dim"), _embedding, EMBEDDING,
       default_shapes=((16, 32, 1000, 64),), draw_x=_tokens),
]}


def get_op(name: str) -> Op:
    if name not in OPS:
        raise ValueError(f"unknown layer {name!r}; known: {', '.join(OPS)}")
    return OPS[name]


# --- counts -------------------------------------------------------------------------------------
def weight_macs(layer, out_shape) -> int:
    """Multiply-adds per sample of a layer's forward spent multiplying by weight matrices:
    Linear and Conv2d take one weight row per output element (prod(weight.shape[1:]) each: in, or
    in/groups x kh x kw); a recurrent layer multiplies its input and its state by each layer's
    W_ih and W_hh once per step. 0 for other layers, whose weights (if any) are looked up or scale
    elementwise: their cost is memory."""
    params = layer.parameters()
    if isinstance(layer, (Linear, Conv2d)):
        return math.prod(out_shape) * math.prod(np.shape(params["weight"])[1:])
    if isinstance(layer, Recurrent):
        steps = out_shape[0] - (layer.num_layers * len(layer.state_names) if layer.return_state else 0)
        return steps * sum(np.size(v) for n, v in params.items() if n.startswith("weight_"))
    return 0


def pass_flops(layer, batch: int, out_shape, pass_: str) -> int | None:
    """FLOPs of a pass, counting the weight GEMMs only (weight_macs): forward 2 x MACs; backward
    4 x MACs (dx and dW are one GEMM each; a recurrent layer's dh through W_hh is dx's twin). None
    where there is no weight GEMM (elementwise, softmax, pooling, norms, embedding)."""
    macs = weight_macs(layer, out_shape)
    if not macs:
        return None
    return (2 if pass_ == "forward" else 4) * batch * macs


def pass_bytes(dispatches, placeholder=None) -> int:
    """Bytes a pass moves at least: every buffer its dispatches read, read once, and every buffer
    they write, written once (a lower bound: caches miss, tiles reload, scratch goes both ways).
    The device's `placeholder`, bound for inputs that are switched off, is never read."""
    reads = set().union(*(d.reads for d in dispatches)) - {placeholder}
    writes = set().union(*(d.writes for d in dispatches))
    return sum(b.size * b.dtype.itemsize for b in reads) + sum(b.size * b.dtype.itemsize for b in writes)


def host_arrays(layer, batch: int, in_shapes, rng, draw_x: Callable = _standard_normal) -> dict:
    """Inputs of one op on the host (float32), shaped per sample: x (batch, *in_shape) from draw_x
    (standard normal by default), dy (batch, *out_shape) standard normal, the layer's initial
    parameters. Names as IsolatedLayer.inputs (whose buffers hold each sample flat)."""
    out_shape = tuple(layer.output_shape(*in_shapes))
    arrays = {"x": draw_x(rng, layer, (batch, *in_shapes[0]))}
    arrays.update({n: np.asarray(v, np.float32) for n, v in layer.parameters().items()})
    arrays["dy"] = rng.standard_normal((batch, *out_shape)).astype(np.float32)
    return arrays
