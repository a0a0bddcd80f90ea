"""The registry: per layer or loss class, its float64 reference forward/backward, example
configurations and input generators (LayerSpec, LossSpec, Example, register, spec_for)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import reference as ref


@dataclass
class Example:
    """One configuration shown by `vkbackprop gradcheck`: how to make it and its input widths
    (for a loss: the prediction's width)."""
    make: Callable
    widths: tuple = None


def _normal(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def _away_from_zero(rng, shape):
    """Magnitudes in [0.1, 2] with random signs: central differences never straddle a kink at 0."""
    return (rng.choice([-1.0, 1.0], shape) * rng.uniform(0.1, 2.0, shape)).astype(np.float32)


def _default_lengths(layer, batch, widths, out):
    """Reduction lengths (terms per fp32 sum) of each quantity: a generic, generous guess."""
    return {"y": max(widths), "dx": out, "params": batch}


def _elementwise_lengths(layer, batch, widths, out):
    return {"y": len(widths), "dx": 1, "params": 1}


def _row_lengths(layer, batch, widths, out):
    return {"y": widths[0], "dx": widths[0], "params": 1}


@dataclass
class LayerSpec:
    """How to check a layer class: float64 reference `forward(layer, xs, params) -> y` and
    `backward(layer, xs, params, dy) -> ([dx per input], {param: gradient})`, example configs,
    default input widths for an instance, an input generator and reduction lengths."""
    forward: Callable
    backward: Callable
    examples: list
    widths: Callable = lambda layer: (layer.in_features or 6,)
    draw: Callable = _normal
    lengths: Callable = _default_lengths


@dataclass
class LossSpec:
    """How to check a loss class: float64 reference `forward(loss, pred, target) -> float` and
    `backward(loss, pred, target, dloss) -> dL/dpred`, example configs, and a generator
    `draw(loss, rng, shape) -> (pred, target)`."""
    forward: Callable
    backward: Callable
    examples: list
    draw: Callable
    width: int = 5


REGISTRY: dict = {}


def register(cls, spec) -> None:
    """Make `cls` (a Module or Loss subclass) checkable: `spec` is a LayerSpec or LossSpec. A subclass
    of a registered class is checked against its base's reference unless registered itself."""
    if not isinstance(spec, (LayerSpec, LossSpec)):
        raise ValueError(f"register: spec must be a LayerSpec or LossSpec, got {type(spec).__name__}")
    REGISTRY[cls] = spec


def spec_for(obj):
    """The registry entry of obj's class or its nearest registered base class, or None."""
    for cls in type(obj).__mro__:
        if cls in REGISTRY:
            return REGISTRY[cls]
    return None


def _activation(name, draw=_normal, **attrs):
    """A single-input elementwise layer whose reference is ref.<name>_forward(x, **kw) and
    ref.<name>_backward(x, dy, **kw), kw taken from the layer's attributes. Looked up at call time
    (so a monkeypatched reference is the one used)."""
    def kw(layer):
        return {arg: getattr(layer, attr) for arg, attr in attrs.items()}
    return dict(forward=lambda layer, xs, p: getattr(ref, f"{name}_forward")(xs[0], **kw(layer)),
                backward=lambda layer, xs, p, dy: ([getattr(ref, f"{name}_backward")(xs[0], dy, **kw(layer))], {}),
                draw=draw, lengths=_elementwise_lengths, widths=lambda layer: (6,))


def _linear_backward(layer, xs, p, dy):
    dx, dweight, dbias = ref.linear_backward(xs[0], p["weight"], dy, has_bias=layer.bias)
    return [dx], ({"weight": dweight, "bias": dbias} if layer.bias else {"weight": dweight})


def _scaled_normal(scale):
    return lambda rng, shape: (scale * rng.standard_normal(shape)).astype(np.float32)


def _identity_spec(examples):
    """A view: the same values, per sample flattened (activations are (batch, features))."""
    return LayerSpec(forward=lambda layer, xs, p: np.asarray(xs[0], np.float64),
                     backward=lambda layer, xs, p, dy: ([np.asarray(dy, np.float64)], {}),
                     examples=examples, widths=lambda layer: (6,), lengths=_elementwise_lengths)


def _log_softmax32(rng, shape, scale=2.0):
    return ref.log_softmax_forward(scale * rng.standard_normal(shape)).astype(np.float32)


def _labels(rng, shape):
    return rng.integers(0, shape[1], shape[0]).astype(np.int32)


def _probabilities(rng, shape):
    return ref.softmax_forward(rng.standard_normal(shape)).astype(np.float32)


def _ce_draw(loss, rng, shape):
    pred = (2 * rng.standard_normal(shape)).astype(np.float32)
    return pred, (_labels(rng, shape) if loss.target == "labels" else _probabilities(rng, shape))


def _kl_draw(loss, rng, shape):
    target = _log_softmax32(rng, shape, 1.0) if loss.log_target else _probabilities(rng, shape)
    return _log_softmax32(rng, shape), target


def _pool_lengths(layer, batch, widths, out):
    """A window's terms per output; each input gathers from a few overlapping windows."""
    return {"y": 16, "dx": 16, "params": 1}


def _max_pool(layer):
    return dict(kernel_size=layer.kernel_size, stride=layer.stride, padding=layer.padding,
                dilation=layer.dilation, ceil_mode=layer.ceil_mode)


def _avg_pool(layer):
    return dict(kernel_size=layer.kernel_size, stride=layer.stride, padding=layer.padding,
                ceil_mode=layer.ceil_mode, count_include_pad=layer.count_include_pad,
                divisor_override=layer.divisor_override)


def _adaptive_size(layer, x):
    return tuple(layer.output_shape(np.shape(x)[1:])[1:])


def _conv(layer):
    return dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups)


def _conv_backward(layer, xs, p, dy):
    dx, dweight, dbias = ref.conv2d_backward(xs[0], p["weight"], dy, has_bias=layer.bias, **_conv(layer))
    return [dx], ({"weight": dweight, "bias": dbias} if layer.bias else {"weight": dweight})


def _norm_backward(reference, layer, xs, p, dy, **kw):
    """[dx], {weight, bias gradients that exist} of a batch or layer norm reference backward."""
    dx, dweight, dbias = reference(xs[0], dy, weight=p.get("weight"), eps=layer.eps, **kw)
    grads = {"weight": dweight, "bias": dbias}
    return [dx], {n: grads[n] for n in p}


def _recurrent_inputs(layer, xs) -> dict:
    """The reference's keyword arguments from a call's inputs (x, [h0, [c0]], [lengths]): states
    per sample (L, H) become torch's (L, B, H)."""
    inputs = dict(zip(layer._inputs or ("input",), xs))
    kw = {n: np.swapaxes(inputs[n], 0, 1) for n in ("h0", "c0") if n in inputs}
    if "lengths" in inputs:
        kw["lengths"] = np.reshape(inputs["lengths"], -1)
    return dict(x=inputs["input"], num_layers=layer.num_layers, bias=layer.bias, **kw)


def _recurrent_forward(layer, xs, p):
    """The output the layer returns: (B, T, H), then with return_state h_n (and c_n) as rows."""
    out, h_n, c_n = ref.recurrent_forward(layer.mode, params=p, **_recurrent_inputs(layer, xs))
    if not layer.return_state:
        return out
    states = [h_n] + ([c_n] if c_n is not None else [])
    return np.concatenate([out] + [np.swapaxes(s, 0, 1) for s in states], axis=1)


def _recurrent_backward(layer, xs, p, dy):
    """[dx per input], {parameter: gradient}; lengths get a zero gradient."""
    steps, dy = np.shape(xs[0])[1], np.asarray(dy, np.float64)
    finals = {}
    if layer.return_state:     # rows T + k * L .. are dL/d(final state k), per sample (L, H)
        finals = {f"d{n}_n": np.swapaxes(dy[:, steps + k * layer.num_layers:steps + (k + 1) * layer.num_layers], 0, 1)
                  for k, n in enumerate(layer.state_names)}
    dx, grads, dh0, dc0 = ref.recurrent_backward(layer.mode, params=p, dout=dy[:, :steps], **finals,
                                                 **_recurrent_inputs(layer, xs))
    by_role = {"input": dx, "h0": np.swapaxes(dh0, 0, 1),
               "c0": None if dc0 is None else np.swapaxes(dc0, 0, 1), "lengths": np.zeros((len(dx), 1))}
    return [by_role[role] for role in (layer._inputs or ("input",))], grads


def _recurrent_lengths(layer, batch, widths, out):
    """Sums through the gates at each step, compounded over time (a generous bound)."""
    steps, rows = widths[0] // layer.input_size, layer.cell.gates * layer.hidden_size
    return {"y": steps * (layer.input_size + layer.hidden_size), "dx": steps * rows, "params": batch * steps * rows}


def _tokens(rng, shape):
    """Token ids 0..2 as floats (model inputs are float arrays)."""
    return rng.integers(0, 3, shape).astype(np.float32)


def _narrow_backward(layer, x, dy):
    dx = np.zeros(np.shape(x))
    index = [slice(None)] * dx.ndim
    index[layer.dim] = slice(layer.start, layer.start + layer.length)
    dx[tuple(index)] = dy
    return dx


def _register_builtins():
    from ..layers.activation import GELU, LeakyReLU, ReLU, Sigmoid, Tanh
    from ..layers.linear import Linear
    from ..layers.conv import Conv2d
    from ..layers.softmax import LogSoftmax, Softmax
    from ..layers.structure import Add, Concat
    from ..layers.dropout import Dropout
    from ..layers.view import Flatten, Identity, Reshape
    from ..layers.pool import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
    from ..layers.norm import BatchNorm1d, BatchNorm2d, LayerNorm
    from ..layers.recurrent import GRU, LSTM, RNN, Narrow
    from ..layers.embedding import Embedding
    from ..losses import BCEWithLogitsLoss, CrossEntropyLoss, KLDivLoss, MSELoss, NLLLoss

    register(Linear, LayerSpec(
        forward=lambda layer, xs, p: ref.linear_forward(xs[0], p["weight"], p.get("bias")),
        backward=_linear_backward,
        examples=[Example(lambda: Linear(7, 5)), Example(lambda: Linear(3, 4, bias=False)),
                  Example(lambda: Linear(1, 1))]))
    register(Conv2d, LayerSpec(
        forward=lambda layer, xs, p: ref.conv2d_forward(xs[0], p["weight"], p.get("bias"), **_conv(layer)),
        backward=_conv_backward,
        examples=[Example(lambda: Conv2d(2, 3, 3)),
                  Example(lambda: Conv2d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2, bias=False), ((4, 9, 8),)),
                  Example(lambda: Conv2d(3, 2, (2, 3), padding="same"), ((3, 5, 6),))],
        widths=lambda layer: ((layer.in_channels, 6, 7),)))
    register(ReLU, LayerSpec(examples=[Example(ReLU)], **_activation("relu", _away_from_zero)))
    register(LeakyReLU, LayerSpec(examples=[Example(LeakyReLU), Example(lambda: LeakyReLU(0.2)),
                                            Example(lambda: LeakyReLU(-1.5))],
                                  **_activation("leaky_relu", _away_from_zero, negative_slope="negative_slope")))
    register(Sigmoid, LayerSpec(examples=[Example(Sigmoid)], **_activation("sigmoid", _scaled_normal(3.0))))
    register(Tanh, LayerSpec(examples=[Example(Tanh)], **_activation("tanh", _scaled_normal(2.0))))
    register(GELU, LayerSpec(examples=[Example(GELU), Example(lambda: GELU("tanh"))],
                             **_activation("gelu", _scaled_normal(2.0), approximate="approximate")))
    for cls, name in ((Softmax, "softmax"), (LogSoftmax, "log_softmax")):
        register(cls, LayerSpec(
            forward=lambda layer, xs, p, name=name: getattr(ref, f"{name}_forward")(xs[0], dim=-1),
            backward=lambda layer, xs, p, dy, name=name: ([getattr(ref, f"{name}_backward")(xs[0], dy, dim=-1)], {}),
            examples=[Example(cls), Example(lambda cls=cls: cls(dim=1), (9,))],
            widths=lambda layer: (6,), draw=_scaled_normal(2.0), lengths=_row_lengths))
    register(Add, LayerSpec(
        forward=lambda layer, xs, p: np.sum([np.asarray(x, np.float64) for x in xs], axis=0),
        backward=lambda layer, xs, p, dy: ([np.asarray(dy, np.float64)] * len(xs), {}),
        examples=[Example(Add, (6, 6)), Example(Add, (5, 5, 5))],
        widths=lambda layer: (6, 6), lengths=_elementwise_lengths))
    register(Concat, LayerSpec(
        forward=lambda layer, xs, p: np.concatenate([np.asarray(x, np.float64) for x in xs], axis=1),
        backward=lambda layer, xs, p, dy: (
            np.split(np.asarray(dy, np.float64), np.cumsum([np.shape(x)[1] for x in xs])[:-1], axis=1), {}),
        examples=[Example(Concat, (3, 5)), Example(lambda: Concat(dim=1), (2, 4, 1))],
        widths=lambda layer: (3, 5), lengths=_elementwise_lengths))
    register(Dropout, LayerSpec(   # training mode at step 0 (run_layer's step buffer holds 0)
        forward=lambda layer, xs, p: ref.dropout_forward(xs[0], layer.seed, 0, layer.p),
        backward=lambda layer, xs, p, dy: ([ref.dropout_backward(dy, layer.seed, 0, layer.p)], {}),
        examples=[Example(lambda: Dropout(0.3, seed=7)), Example(lambda: Dropout(0.0, seed=1))],
        widths=lambda layer: (9,), lengths=_elementwise_lengths))
    register(MaxPool2d, LayerSpec(
        forward=lambda layer, xs, p: ref.max_pool2d_forward(xs[0], **_max_pool(layer))[0],
        backward=lambda layer, xs, p, dy: ([ref.max_pool2d_backward(
            dy, ref.max_pool2d_forward(xs[0], **_max_pool(layer))[1], np.shape(xs[0]))], {}),
        examples=[Example(lambda: MaxPool2d(2)), Example(lambda: MaxPool2d(3, 2, 1, ceil_mode=True), ((2, 7, 8),))],
        widths=lambda layer: ((2, 5, 7),), lengths=_pool_lengths))
    register(AvgPool2d, LayerSpec(
        forward=lambda layer, xs, p: ref.avg_pool2d_forward(xs[0], **_avg_pool(layer)),
        backward=lambda layer, xs, p, dy: ([ref.avg_pool2d_backward(dy, np.shape(xs[0]), **_avg_pool(layer))], {}),
        examples=[Example(lambda: AvgPool2d(2)),
                  Example(lambda: AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), ((2, 7, 8),))],
        widths=lambda layer: ((2, 5, 7),), lengths=_pool_lengths))
    register(AdaptiveAvgPool2d, LayerSpec(
        forward=lambda layer, xs, p: ref.adaptive_avg_pool2d_forward(xs[0], _adaptive_size(layer, xs[0])),
        backward=lambda layer, xs, p, dy: ([ref.adaptive_avg_pool2d_backward(
            dy, np.shape(xs[0]), _adaptive_size(layer, xs[0]))], {}),
        examples=[Example(lambda: AdaptiveAvgPool2d(1)), Example(lambda: AdaptiveAvgPool2d((2, 3)), ((3, 5, 7),))],
        widths=lambda layer: ((3, 5, 7),), lengths=_pool_lengths))
    # Batch norm in training mode (what a plan's step runs): the batch's statistics.
    for cls, shape in ((BatchNorm1d, (3,)), (BatchNorm2d, (3, 4, 5))):
        register(cls, LayerSpec(
            forward=lambda layer, xs, p: ref.batch_norm_forward(xs[0], p.get("weight"), p.get("bias"), layer.eps),
            backward=lambda layer, xs, p, dy: _norm_backward(ref.batch_norm_backward, layer, xs, p, dy),
            examples=[Example(lambda cls=cls: cls(3)), Example(lambda cls=cls: cls(3, affine=False))],
            widths=lambda layer, shape=shape: ((layer.num_features,) + shape[1:],), lengths=_default_lengths))
    register(LayerNorm, LayerSpec(
        forward=lambda layer, xs, p: ref.layer_norm_forward(xs[0], len(layer.normalized_shape), p.get("weight"),
                                                            p.get("bias"), layer.eps),
        backward=lambda layer, xs, p, dy: _norm_backward(ref.layer_norm_backward, layer, xs, p, dy,
                                                         ndim=len(layer.normalized_shape)),
        examples=[Example(lambda: LayerNorm(6)), Example(lambda: LayerNorm((4, 5)), ((3, 4, 5),)),
                  Example(lambda: LayerNorm(6, elementwise_affine=False))],
        widths=lambda layer: (layer.normalized_shape,)))
    for cls, examples in (
            (RNN, [Example(lambda: RNN(3, 5)), Example(lambda: RNN(2, 4, 2, nonlinearity="relu", return_state=True))]),
            (LSTM, [Example(lambda: LSTM(3, 5)), Example(lambda: LSTM(2, 4, 2, return_state=True)),
                    Example(lambda: LSTM(3, 1, bias=False))]),
            (GRU, [Example(lambda: GRU(3, 5)), Example(lambda: GRU(2, 4, 2, return_state=True))])):
        register(cls, LayerSpec(forward=_recurrent_forward, backward=_recurrent_backward, examples=examples,
                                widths=lambda layer: ((5, layer.input_size),), lengths=_recurrent_lengths))
    # Tokens are indices: rounded, so finite differences see no change. (padding_idx is left out: its
    # row's gradient is zero by definition, not the derivative; tests/test_embedding.py checks it.)
    register(Embedding, LayerSpec(
        forward=lambda layer, xs, p: ref.embedding_forward(np.rint(xs[0]), p["weight"]),
        backward=lambda layer, xs, p, dy: ([np.zeros(np.shape(xs[0]))], {"weight": ref.embedding_backward(
            np.rint(xs[0]), dy, layer.num_embeddings, layer.padding_idx)}),
        examples=[Example(lambda: Embedding(3, 4)), Example(lambda: Embedding(5, 2), ((2, 3),))],
        widths=lambda layer: ((6,),), draw=_tokens, lengths=_default_lengths))
    register(Narrow, LayerSpec(
        forward=lambda layer, xs, p: np.asarray(xs[0], np.float64).take(
            range(layer.start, layer.start + layer.length), axis=layer.dim),
        backward=lambda layer, xs, p, dy: ([_narrow_backward(layer, xs[0], dy)], {}),
        examples=[Example(lambda: Narrow(1, 2, 3), ((6, 2),)), Example(lambda: Narrow(2, 1, 1), ((3, 4),))],
        widths=lambda layer: ((6, 4),), lengths=_elementwise_lengths))
    register(Identity, _identity_spec([Example(Identity)]))
    register(Flatten, _identity_spec([Example(Flatten)]))
    register(Reshape, _identity_spec([Example(lambda: Reshape(2, -1))]))

    register(CrossEntropyLoss, LossSpec(
        forward=lambda loss, pred, t: ref.cross_entropy_forward(pred, t, loss.reduction, loss.label_smoothing),
        backward=lambda loss, pred, t, dloss: ref.cross_entropy_backward(pred, t, dloss, loss.reduction,
                                                                         loss.label_smoothing),
        examples=[Example(CrossEntropyLoss),
                  Example(lambda: CrossEntropyLoss(reduction="sum", label_smoothing=0.1)),
                  Example(lambda: CrossEntropyLoss(target="probabilities"))],
        draw=_ce_draw))
    register(NLLLoss, LossSpec(
        forward=lambda loss, pred, t: ref.nll_forward(pred, t, loss.reduction),
        backward=lambda loss, pred, t, dloss: ref.nll_backward(pred, t, dloss, loss.reduction),
        examples=[Example(NLLLoss), Example(lambda: NLLLoss(reduction="sum"))],
        draw=lambda loss, rng, shape: (_log_softmax32(rng, shape), _labels(rng, shape))))
    register(MSELoss, LossSpec(
        forward=lambda loss, pred, t: ref.mse_forward(pred, t, loss.reduction),
        backward=lambda loss, pred, t, dloss: ref.mse_backward(pred, t, dloss, loss.reduction),
        examples=[Example(MSELoss), Example(lambda: MSELoss(reduction="sum"))],
        draw=lambda loss, rng, shape: (_normal(rng, shape), _normal(rng, shape))))
    register(BCEWithLogitsLoss, LossSpec(
        forward=lambda loss, pred, t: ref.bce_with_logits_forward(pred, t, loss.reduction),
        backward=lambda loss, pred, t, dloss: ref.bce_with_logits_backward(pred, t, dloss, loss.reduction),
        examples=[Example(BCEWithLogitsLoss), Example(lambda: BCEWithLogitsLoss(reduction="sum"))],
        draw=lambda loss, rng, shape: ((3 * rng.standard_normal(shape)).astype(np.float32),
                                       rng.uniform(0, 1, shape).astype(np.float32))))
    register(KLDivLoss, LossSpec(
        forward=lambda loss, pred, t: ref.kl_div_forward(pred, t, loss.reduction, loss.log_target),
        backward=lambda loss, pred, t, dloss: ref.kl_div_backward(pred, t, dloss, loss.reduction, loss.log_target),
        examples=[Example(KLDivLoss), Example(lambda: KLDivLoss(reduction="batchmean")),
                  Example(lambda: KLDivLoss(reduction="sum", log_target=True))],
        draw=_kl_draw))


_register_builtins()
