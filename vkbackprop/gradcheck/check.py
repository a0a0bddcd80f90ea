"""The check: gradcheck() of a layer, loss or model, GPU vs reference vs finite differences."""

from __future__ import annotations

import math

import numpy as np

from ..layers.base import Module
from ..losses import Loss
from .compare import GradcheckResult, _central_differences, _compare, _positions
from .registry import LayerSpec, LossSpec, _normal, spec_for
from .run import run_layer, run_loss, run_model


def gradcheck(layer, inputs=None, *, params: dict | None = None, widths=None, batch: int = 4, seed: int = 0,
              rtol: float = 2e-6, atol: float = 2e-6, fd_rtol: float = 1e-6, fd_atol: float = 1e-6,
              eps: float = 1e-6, fd_max_elements: int | None = 256, device=None,
              raise_on_failure: bool = True) -> GradcheckResult:
    """Check `layer`'s GPU forward/backward against the float64 reference with a random upstream
    gradient, and the reference's backward against central finite differences.

    layer: a layer (Module), a loss, or a Model/Sequential. Its class (or a base class) must be in
        the registry (`register`); for a model, every layer in it.
    inputs: a layer's input, one (batch, width) array or a list of them (a multi-input layer); a
        loss's (pred, target); a model's input(s). None: random, from the registry's generator
        (batch rows, the layer's input width or the registry's default widths).
    params: a layer's parameter values by name (default: layer.parameters()); for a model its
        state_dict is used.
    widths: a layer's input widths or per-sample shapes, e.g. (5, 5, 5) for an Add of three inputs,
        ((3, 9, 9),) for a Conv2d (default: the layer's in_features or the registry's default);
        with `inputs`, it gives their per-sample shapes.
    seed: seeds the random inputs, upstream gradient and finite-difference sample.
    rtol, atol: GPU vs reference tolerance, scaled by sqrt(reduction length + 1) (see vkbackprop.gradcheck).
    fd_rtol, fd_atol, eps: reference vs central differences (step eps).
    fd_max_elements: at most this many elements of each input/parameter are perturbed (None: all).
    raise_on_failure: raise AssertionError naming the layer, the quantity (y, dx, dx[i], dweight,
        loss, dpred, ...), which check failed, the worst index, expected and got.

    A model is run as one Trainer step (SGD with lr 0, so its parameters are unchanged) whose loss
    hands the random upstream gradient to the graph; checked are its output(s) (`y`, `y[i]`) and
    parameter gradients (`d<state_dict key>`). The plan computes no gradient for model inputs, so
    none is checked; layers run in training mode.
    """
    from ..device import Device
    from ..model import Model
    device = device or Device.default()
    rng = np.random.default_rng(seed)
    if isinstance(layer, Model):
        result = _check_model(device, layer, inputs, batch, rng, rtol, atol, fd_rtol, fd_atol, eps, fd_max_elements)
    elif isinstance(layer, Loss):
        result = _check_loss(device, layer, inputs, batch, rng, rtol, atol, fd_rtol, fd_atol, eps, fd_max_elements)
    elif isinstance(layer, Module):
        result = _check_layer(device, layer, inputs, params, widths, batch, rng, rtol, atol, fd_rtol, fd_atol, eps,
                              fd_max_elements)
    else:
        raise ValueError(f"gradcheck: expected a vkbackprop layer, loss or model, got {type(layer).__name__}")
    if raise_on_failure and not result.passed:
        raise AssertionError(result.message())
    return result


def _describe(obj) -> str:
    """repr, plus the class name where the repr hides it (a subclass inheriting __repr__)."""
    text = repr(obj)
    name = type(obj).__name__
    return text if text.startswith(name) else f"{text} (class {type(obj).__qualname__})"


def _spec(obj, kind):
    spec = spec_for(obj)
    if not isinstance(spec, kind):
        raise ValueError(f"gradcheck: no float64 reference is registered for {type(obj).__name__} ({obj!r}); "
                         "add one with vkbackprop.gradcheck.register()")
    return spec


def _as_inputs(inputs, what) -> list:
    xs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    out = []
    for i, x in enumerate(xs):
        x = np.asarray(x)
        if x.ndim != 2 or x.dtype.kind not in "fiu":
            raise ValueError(f"gradcheck: {what} {i} must be a 2-D numeric (batch, width) array, "
                             f"got {x.dtype} shape {x.shape}")
        out.append(x.astype(np.float32))
    return out


def _per_sample_shapes(layer, spec, widths, xs) -> list:
    """Each input's per-sample shape: from `widths` (ints or shape tuples), the registry's default
    for random inputs, or the given arrays' widths."""
    if widths is None and xs is None:
        widths = spec.widths(layer)
    if widths is None:
        return [(x.shape[1],) for x in xs]
    return [tuple(int(d) for d in w) if isinstance(w, (tuple, list)) else (int(w),) for w in widths]


def _shaped(arrays, shapes) -> list:
    """(batch, width) arrays as (batch, *per-sample shape): what the float64 references take."""
    return [np.reshape(a, (len(a),) + tuple(s)) for a, s in zip(arrays, shapes)]


def _flat(array) -> np.ndarray:
    return np.reshape(array, (len(array), -1))


def _check_layer(device, layer, inputs, params, widths, batch, rng, rtol, atol, fd_rtol, fd_atol, eps, fd_max):
    spec = _spec(layer, LayerSpec)
    given = None if inputs is None else _as_inputs(inputs, "input")
    shapes = _per_sample_shapes(layer, spec, widths, given)
    xs = given if given is not None else [spec.draw(rng, (batch, math.prod(s))) for s in shapes]
    if len(shapes) != len(xs) or any(math.prod(s) != x.shape[1] for s, x in zip(shapes, xs)):
        raise ValueError(f"gradcheck: shapes {shapes} do not match the inputs' widths {[x.shape[1] for x in xs]}")
    widths = [x.shape[1] for x in xs]
    out = math.prod(layer.output_shape(*shapes))
    batch = xs[0].shape[0]
    params = {n: np.asarray(v, np.float32) for n, v in (layer.parameters() if params is None else params).items()}
    dy = _normal(rng, (batch, out))
    out_shape = tuple(layer.output_shape(*shapes))

    def forward(xs, params):
        return _flat(spec.forward(layer, _shaped(xs, shapes), params))

    y, dxs, grads = run_layer(device, layer, xs, params, dy, shapes=shapes)
    want_y = forward(xs, params)
    want_dxs, want_grads = spec.backward(layer, _shaped(xs, shapes), params, np.reshape(dy, (batch,) + out_shape))
    want_dxs = [_flat(d) for d in want_dxs]
    lengths = spec.lengths(layer, batch, widths, out)
    dx_names = ["dx"] if len(xs) == 1 else [f"dx[{i}]" for i in range(len(xs))]

    result = GradcheckResult(_describe(layer), inputs=xs, upstream=dy)
    check = "GPU vs reference"
    result.gpu["y"] = _compare("y", check, y, want_y, lengths["y"], rtol, atol)
    for name, got, want in zip(dx_names, dxs, want_dxs):
        result.gpu[name] = _compare(name, check, got, want, lengths["dx"], rtol, atol)
    for n in params:
        if n not in grads or n not in want_grads:
            raise ValueError(f"gradcheck: parameter '{n}' has no gradient from "
                             f"{'the GPU' if n not in grads else 'the reference'}")
        result.gpu[f"d{n}"] = _compare(f"d{n}", check, grads[n], want_grads[n], lengths["params"], rtol, atol)

    # The reference against central differences of sum(dy * y).
    check = "reference vs finite differences"
    dy64 = np.asarray(dy, np.float64)
    for i, name in enumerate(dx_names):
        def f(xi, i=i):
            return float(np.sum(dy64 * forward(xs[:i] + [xi] + xs[i + 1:], params)))
        pos = _positions(xs[i].size, rng, fd_max)
        fd = _central_differences(f, xs[i], pos, eps)
        result.fd[name] = _compare(name, check, want_dxs[i], fd, 0, fd_rtol, fd_atol, pos)
    for n in params:
        def f(pn, n=n):
            return float(np.sum(dy64 * forward(xs, dict(params, **{n: pn}))))
        pos = _positions(params[n].size, rng, fd_max)
        fd = _central_differences(f, params[n], pos, eps)
        result.fd[f"d{n}"] = _compare(f"d{n}", check, want_grads[n], fd, 0, fd_rtol, fd_atol, pos)
    return result


def _check_loss(device, loss, inputs, batch, rng, rtol, atol, fd_rtol, fd_atol, eps, fd_max):
    spec = _spec(loss, LossSpec)
    if inputs is None:
        pred, target = spec.draw(loss, rng, (batch, spec.width))
    else:
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError("gradcheck: a loss's inputs are (pred, target)")
        pred, target = _as_inputs(inputs[0], "pred")[0], np.asarray(inputs[1])
    dloss = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 2.0))

    got_loss, got_dpred = run_loss(device, loss, pred, target, dloss)
    want_loss = spec.forward(loss, pred, target)
    want_dpred = spec.backward(loss, pred, target, dloss)

    result = GradcheckResult(_describe(loss), inputs=[pred, target], upstream=dloss)
    check = "GPU vs reference"
    result.gpu["loss"] = _compare("loss", check, got_loss, want_loss, pred.size, rtol, atol)
    result.gpu["dpred"] = _compare("dpred", check, got_dpred, want_dpred, pred.shape[1], rtol, atol)
    pos = _positions(pred.size, rng, fd_max)
    fd = _central_differences(lambda p: dloss * spec.forward(loss, p, target), pred, pos, eps)
    result.fd["dpred"] = _compare("dpred", "reference vs finite differences", want_dpred, fd, 0, fd_rtol, fd_atol, pos)
    return result


def _model_reference(model, xs, params):
    """Float64 forward of a graph model through the registered references: {id(value): array}."""
    values = {id(v): np.reshape(np.asarray(x, np.float64), (len(x),) + v.shape) for v, x in zip(model.inputs, xs)}
    for call in model.calls:
        spec = _spec(call.layer, LayerSpec)
        p = {n: params[key] for n, key in model.param_names(call.layer).items()}
        y = np.asarray(spec.forward(call.layer, [values[id(v)] for v in call.inputs], p), np.float64)
        values[id(call.output)] = np.reshape(y, (len(y),) + call.output.shape)
    return values


def _model_backward(model, xs, params, dys):
    """Float64 reverse pass: parameter gradients by state_dict key (partials added)."""
    values = _model_reference(model, xs, params)
    grads = {}
    def add(key, g):
        grads[key] = grads[key] + g if key in grads else np.asarray(g, np.float64)
    for v, dy in zip(model.outputs, dys):
        add(id(v), np.reshape(dy, (len(dy),) + v.shape))
    pgrads = {}
    for call in reversed(model.calls):
        if id(call.output) not in grads:
            continue
        spec = _spec(call.layer, LayerSpec)
        names = model.param_names(call.layer)
        p = {n: params[key] for n, key in names.items()}
        dxs, dparams = spec.backward(call.layer, [values[id(v)] for v in call.inputs], p, grads[id(call.output)])
        for v, dx in zip(call.inputs, dxs):
            add(id(v), np.reshape(dx, (len(dx),) + v.shape))
        for n, key in names.items():
            pgrads[key] = pgrads[key] + dparams[n] if key in pgrads else np.asarray(dparams[n], np.float64)
    return values, pgrads


def _check_model(device, model, inputs, batch, rng, rtol, atol, fd_rtol, fd_atol, eps, fd_max):
    for call in model.calls:
        _spec(call.layer, LayerSpec)     # every layer must have a reference, before any GPU work
    if inputs is None:
        xs = [_normal(rng, (batch, v.width)) for v in model.inputs]
    else:
        xs = _as_inputs(inputs, "input")
        if len(xs) != len(model.inputs):
            raise ValueError(f"gradcheck: the model has {len(model.inputs)} inputs, got {len(xs)} arrays")
    batch = xs[0].shape[0]
    params = {k: np.asarray(v, np.float32) for k, v in model.parameters().items()}
    dys = [_normal(rng, (batch, v.width)) for v in model.outputs]

    ys, grads = run_model(device, model, xs, dys)
    values, want_grads = _model_backward(model, xs, params, dys)
    # A generous reduction length for a chain of layers: the sum of each call's largest dimension.
    k = sum(max([batch, call.output.width] + [v.width for v in call.inputs]) for call in model.calls)

    result = GradcheckResult(f"{type(model).__name__}({', '.join(repr(c.layer) for c in model.calls)})",
                             inputs=xs, upstream=dys)
    check = "GPU vs reference"
    y_names = ["y"] if len(ys) == 1 else [f"y[{i}]" for i in range(len(ys))]
    for name, got, v in zip(y_names, ys, model.outputs):
        result.gpu[name] = _compare(name, check, got, _flat(values[id(v)]), k, rtol, atol)
    for key in params:
        result.gpu[f"d{key}"] = _compare(f"d{key}", check, grads[key], want_grads.get(key, np.zeros_like(params[key])),
                                         k, rtol, atol)
    check = "reference vs finite differences"
    dys64 = [np.asarray(d, np.float64) for d in dys]
    for key in params:
        def f(pk, key=key):
            vals = _model_reference(model, xs, dict(params, **{key: pk}))
            return float(sum(np.sum(d * _flat(vals[id(v)])) for d, v in zip(dys64, model.outputs)))
        pos = _positions(params[key].size, rng, fd_max)
        fd = _central_differences(f, params[key], pos, eps)
        result.fd[f"d{key}"] = _compare(f"d{key}", check, want_grads.get(key, np.zeros_like(fd)), fd, 0,
                                        fd_rtol, fd_atol, pos)
    return result
