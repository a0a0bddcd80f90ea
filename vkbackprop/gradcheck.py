"""Gradient checking: a layer's (or loss's, or model's) GPU forward/backward against the float64
reference, and the reference itself against central finite differences.

    import vkbackprop as vb
    vb.gradcheck(vb.Linear(7, 5))              # AssertionError naming the quantity and worst index on failure
    result = vb.gradcheck(vb.GELU("tanh"), raise_on_failure=False)
    print(result.passed, result.gpu["dx"].max_abs, result.fd["dx"].max_abs)

Two comparisons per quantity:
- GPU vs reference: the layer's shaders in float32 on the device against the float64 NumPy reference
  (vkbackprop.reference), given the same inputs, parameters and a random upstream gradient dL/dy.
  Quantities: `y`, `dx` (`dx[i]` for a layer with several inputs) and `d<param>` (`dweight`,
  `dbias`); for a loss `loss` and `dpred` with a random upstream scalar dL/dloss.
- reference vs finite differences: the reference backward against central differences (float64,
  step `eps`) of the scalar sum(dL/dy * y) (for a loss: dL/dloss * loss), for every input and
  parameter element (a random sample of `fd_max_elements` for larger ones).

Tolerances (fp32 vs float64, as the test suite's): a quantity of k-term sums (a Linear output sums
in_features products) passes when max |got - want| <= sqrt(k + 1) * (atol + rtol * max |want|); the
finite differences pass when max |reference - fd| <= fd_atol + fd_rtol * max |fd|. Max rel is
reported normwise: max |got - want| / max |want|.

A layer class is checked if it (or a base class) is in the registry, which maps it to a float64
reference forward/backward and example configurations; `register()` adds a class (your own layers
too). `vkbackprop gradcheck --all` prints a table of every registered example.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import reference as ref
from .layers.activation import elementwise
from .layers.base import LayerIO, Module
from .losses import Loss
from .schedule import Recorder

# --- running on the GPU -----------------------------------------------------------------------


def run_layer(device, layer, xs, params: dict, dy: np.ndarray, need_dx=True):
    """Forward then backward of `layer` on the GPU with the given inputs, parameters and upstream
    gradient dL/dy. `xs` is one (batch, width) array or a list of them (a multi-input layer such as
    Add); `need_dx` is a bool or one bool per input. Returns (y, dx, {param name: gradient}), where
    dx is an array (or None) for a single array `xs`, and a list of them for a list `xs`.

    A view (a layer with `is_view`, which records no dispatch) is run as the plan runs it: its
    output is its input's buffer and its input gradient is its output gradient's buffer."""
    single = not isinstance(xs, (list, tuple))
    xs = [np.asarray(x, np.float32) for x in ([xs] if single else xs)]
    needs = [bool(need_dx)] * len(xs) if isinstance(need_dx, (bool, np.bool_)) else [bool(n) for n in need_dx]
    if len(needs) != len(xs):
        raise ValueError(f"run_layer: need_dx has {len(needs)} entries for {len(xs)} inputs")
    batch = xs[0].shape[0]
    out = layer.out_features(*(x.shape[1] for x in xs))
    dy = np.asarray(dy, np.float32)
    if dy.shape != (batch, out):
        raise ValueError(f"run_layer: dy has shape {dy.shape}, expected {(batch, out)}")
    x_bufs = [device.buffer(f"x{i}" if len(xs) > 1 else "x", x.shape, staged=True) for i, x in enumerate(xs)]
    dy_buf = device.buffer("dy", (batch, out), staged=True)
    view = getattr(layer, "is_view", False)
    if view:
        if len(xs) != 1 or xs[0].shape[1] != out:
            raise ValueError(f"run_layer: the view {layer!r} must keep its input's width")
        y_buf, dx_bufs = x_bufs[0], [dy_buf if needs[0] else None]
    else:
        y_buf = device.buffer("y", (batch, out), staged=True)
        dx_bufs = [device.buffer(f"dx{i}" if len(xs) > 1 else "dx", x.shape) if n else None
                   for i, (x, n) in enumerate(zip(xs, needs))]
    param_bufs = {n: device.buffer(n, np.shape(v), staged=True) for n, v in params.items()}
    for n, v in params.items():
        device.write(param_bufs[n], v)
    step = device.buffer("step", (1,), np.uint32, staged=True)
    io = LayerIO(device, batch, xs=x_bufs, y=y_buf, params=param_bufs, dy=dy_buf, dxs=dx_bufs,
                 grads={n: device.buffer(f"{n}.grad", np.shape(v)) for n, v in params.items()}, step=step)
    for buf, x in zip(x_bufs, xs):
        buf.host_view()[...] = x
    dy_buf.host_view()[...] = dy
    rec = Recorder(device)
    rec.upload(x_bufs + [dy_buf, step])
    for d in layer.forward(io) + layer.backward(io):
        rec.dispatch(d)
    if not view:
        rec.download([y_buf])
    rec.sequence.eval()
    # A view's y is the uploaded x: read back after the sequence (a download right after the upload,
    # with no dispatch between them, would race with it: transfers are not ordered among themselves).
    y = device.read(y_buf) if view else y_buf.host_view().copy()
    dxs = [device.read(b) if b is not None else None for b in dx_bufs]
    grads = {n: device.read(g) for n, g in io.grads.items()}
    return y, (dxs[0] if single else dxs), grads


def run_loss(device, loss, pred: np.ndarray, target, dloss: float):
    """The fused loss dispatch alone: returns (loss value, dL/dpred) for upstream gradient dloss."""
    pred = np.asarray(pred, np.float32)
    batch, width = pred.shape
    bufs = {name: device.buffer(name, shape, dtype, staged=True) for name, shape, dtype in [
        ("pred", pred.shape, np.float32), ("target", loss.target_shape(batch, width), loss.target_dtype),
        ("dloss", (1,), np.float32), ("loss", (1,), np.float32), ("dpred", pred.shape, np.float32)]}
    bufs["pred"].host_view()[...] = pred
    bufs["target"].host_view()[...] = loss.check_target(target, batch, width)
    bufs["dloss"].host_view()[...] = dloss
    rec = Recorder(device)
    rec.upload([bufs["pred"], bufs["target"], bufs["dloss"]])
    rec.dispatch(loss.dispatch(device, bufs["pred"], bufs["target"], bufs["dloss"], bufs["loss"], bufs["dpred"]))
    rec.download([bufs["loss"], bufs["dpred"]])
    rec.sequence.eval()
    return float(bufs["loss"].host_view()[0]), bufs["dpred"].host_view().copy()


class _UpstreamGradient(Loss):
    """Not a loss: hands a given dL/d(output) (its 'target') to the graph, so that a Trainer's step
    computes a model's backward for an arbitrary upstream gradient (L = sum(target * output))."""

    def __init__(self):
        super().__init__("sum")

    def target_shape(self, batch: int, out_features: int) -> tuple:
        return (batch, out_features)

    def check_target(self, target, batch: int, out_features: int) -> np.ndarray:
        return np.asarray(target, np.float32).reshape(batch, out_features)

    def dispatch(self, device, pred, target, dloss, loss, dpred):
        return elementwise(device, "add/backward.comp", {"dy": target, "dx": dpred}, pred.size)


def run_model(device, model, xs: list, dys: list):
    """One Trainer step of `model` (the real plan and scheduler; SGD with lr 0, so the parameters
    are unchanged) whose "losses" hand the given dL/d(outputs) to the graph. Returns ([outputs in
    training mode], {state_dict key: gradient}). Model inputs get no gradient (the plan computes none).
    Binds the model's parameters to `device`, as a Trainer does."""
    from .optim import SGD
    from .train import Trainer
    trainer = Trainer(model, [_UpstreamGradient() for _ in model.outputs], SGD(lr=0.0), len(xs[0]), device=device)
    trainer.step(xs if len(xs) > 1 else xs[0], dys if len(dys) > 1 else dys[0])
    ys = [device.read(b) for b in trainer.plan.outputs]
    return ys, dict(trainer.gradients())


# --- comparisons and results ------------------------------------------------------------------


@dataclass
class Comparison:
    """One quantity compared: `expected` is the float64 reference (GPU check) or the finite
    difference (reference check); `got` is the GPU value or the reference value."""
    quantity: str                 # "y", "dx", "dx[1]", "dweight", "loss", "dpred", "d0.weight"
    check: str                    # "GPU vs reference" or "reference vs finite differences"
    max_abs: float
    max_rel: float                # max_abs / max |expected|
    tolerance: float              # on max_abs
    index: tuple                  # worst element
    expected: float
    got: float
    passed: bool

    def describe(self) -> str:
        return (f"{self.quantity} ({self.check}): worst at index {self.index}: expected {self.expected!r}, "
                f"got {self.got!r} (max abs error {self.max_abs:.3g} "
                f"{'<=' if self.passed else '>'} tolerance {self.tolerance:.3g}, max rel error {self.max_rel:.3g})")


@dataclass
class GradcheckResult:
    """Per quantity, GPU vs reference (`gpu`) and reference vs finite differences (`fd`); `passed`
    when every comparison passed. `inputs` and `upstream` are what was used (to reproduce a failure):
    the input arrays (a loss: [pred, target]) and dL/dy (a loss: dL/dloss; a model: one per output)."""
    name: str                                      # repr of the layer, loss or model
    gpu: dict = field(default_factory=dict)        # quantity -> Comparison
    fd: dict = field(default_factory=dict)         # quantity -> Comparison
    inputs: list = field(default=None, repr=False)
    upstream: object = field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.comparisons)

    @property
    def comparisons(self) -> list:
        return list(self.gpu.values()) + list(self.fd.values())

    @property
    def failures(self) -> list:
        return [c for c in self.comparisons if not c.passed]

    @staticmethod
    def _max(values) -> float:
        return max(values, default=0.0)

    @property
    def gpu_max_abs(self) -> float:
        return self._max(c.max_abs for c in self.gpu.values())

    @property
    def gpu_max_rel(self) -> float:
        return self._max(c.max_rel for c in self.gpu.values())

    @property
    def fd_max_abs(self) -> float:
        return self._max(c.max_abs for c in self.fd.values())

    @property
    def fd_max_rel(self) -> float:
        return self._max(c.max_rel for c in self.fd.values())

    def message(self) -> str:
        if self.passed:
            return f"gradcheck passed for {self.name}"
        return f"gradcheck failed for {self.name}:\n" + "\n".join("  " + c.describe() for c in self.failures)


def _compare(quantity, check, got, want, k, rtol, atol, positions=None) -> Comparison:
    """max |got - want| against sqrt(k + 1) * (atol + rtol * max |want|); non-finite values fail.
    `positions`: flat indices to compare (others are ignored)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return Comparison(quantity, check, math.inf, math.inf, 0.0, (), f"shape {want.shape}",
                          f"shape {got.shape}", False)
    flat_got, flat_want = got.reshape(-1), want.reshape(-1)
    if positions is None:
        positions = np.arange(flat_got.size)
    g, w = flat_got[positions], flat_want[positions]
    if g.size == 0:
        return Comparison(quantity, check, 0.0, 0.0, 0.0, (), 0.0, 0.0, True)
    err = np.abs(g - w)
    err[~np.isfinite(err)] = math.inf
    worst = int(np.argmax(err))
    finite_want = np.abs(w[np.isfinite(w)])
    scale = float(finite_want.max()) if finite_want.size else 0.0
    tol = math.sqrt(k + 1) * (atol + rtol * scale)
    max_abs = float(err[worst])
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else math.inf)
    index = tuple(int(i) for i in np.unravel_index(int(positions[worst]), got.shape))
    return Comparison(quantity, check, max_abs, max_rel, tol, index, float(w[worst]), float(g[worst]),
                      bool(max_abs <= tol))


def _central_differences(f, x, positions, eps):
    """d f / d x at the given flat positions of x (0 elsewhere): reference.numerical_gradient (float64
    central differences over the step actually taken after rounding) applied to those elements
    alone, the others held at their values in x."""
    x = np.array(x, dtype=np.float64)
    flat = x.reshape(-1)

    def f_at(values):
        full = flat.copy()
        full[positions] = values
        return f(full.reshape(x.shape))
    out = np.zeros(flat.size)
    out[positions] = ref.numerical_gradient(f_at, flat[positions], eps)
    return out.reshape(x.shape)


def _positions(size, rng, limit):
    if limit is None or size <= limit:
        return np.arange(size)
    return np.sort(rng.choice(size, limit, replace=False))


# --- the registry -----------------------------------------------------------------------------


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


def _register_builtins():
    from .layers.activation import GELU, LeakyReLU, ReLU, Sigmoid, Tanh
    from .layers.linear import Linear
    from .layers.softmax import LogSoftmax, Softmax
    from .layers.structure import Add, Concat
    from .layers.dropout import Dropout
    from .layers.view import Flatten, Identity, Reshape
    from .losses import BCEWithLogitsLoss, CrossEntropyLoss, KLDivLoss, MSELoss, NLLLoss

    register(Linear, LayerSpec(
        forward=lambda layer, xs, p: ref.linear_forward(xs[0], p["weight"], p.get("bias")),
        backward=_linear_backward,
        examples=[Example(lambda: Linear(7, 5)), Example(lambda: Linear(3, 4, bias=False)),
                  Example(lambda: Linear(1, 1))]))
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


# --- the check --------------------------------------------------------------------------------


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
    widths: a layer's input widths for random inputs, e.g. (5, 5, 5) for an Add of three inputs
        (default: the layer's in_features or the registry's default widths).
    seed: seeds the random inputs, upstream gradient and finite-difference sample.
    rtol, atol: GPU vs reference tolerance, scaled by sqrt(reduction length + 1) (see the module).
    fd_rtol, fd_atol, eps: reference vs central differences (step eps).
    fd_max_elements: at most this many elements of each input/parameter are perturbed (None: all).
    raise_on_failure: raise AssertionError naming the layer, the quantity (y, dx, dx[i], dweight,
        loss, dpred, ...), which check failed, the worst index, expected and got.

    A model is run as one Trainer step (SGD with lr 0, so its parameters are unchanged) whose loss
    hands the random upstream gradient to the graph; checked are its output(s) (`y`, `y[i]`) and
    parameter gradients (`d<state_dict key>`). The plan computes no gradient for model inputs, so
    none is checked; layers run in training mode.
    """
    from .device import Device
    from .model import Model
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


def _check_layer(device, layer, inputs, params, widths, batch, rng, rtol, atol, fd_rtol, fd_atol, eps, fd_max):
    spec = _spec(layer, LayerSpec)
    if inputs is None:
        xs = [spec.draw(rng, (batch, int(w))) for w in (widths or spec.widths(layer))]
    else:
        xs = _as_inputs(inputs, "input")
    widths = [x.shape[1] for x in xs]
    out = layer.out_features(*widths)
    batch = xs[0].shape[0]
    params = {n: np.asarray(v, np.float32) for n, v in (layer.parameters() if params is None else params).items()}
    dy = _normal(rng, (batch, out))

    y, dxs, grads = run_layer(device, layer, xs, params, dy)
    want_y = spec.forward(layer, xs, params)
    want_dxs, want_grads = spec.backward(layer, xs, params, dy)
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
            return float(np.sum(dy64 * spec.forward(layer, xs[:i] + [xi] + xs[i + 1:], params)))
        pos = _positions(xs[i].size, rng, fd_max)
        fd = _central_differences(f, xs[i], pos, eps)
        result.fd[name] = _compare(name, check, want_dxs[i], fd, 0, fd_rtol, fd_atol, pos)
    for n in params:
        def f(pn, n=n):
            return float(np.sum(dy64 * spec.forward(layer, xs, dict(params, **{n: pn}))))
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
    values = {id(v): np.asarray(x, np.float64) for v, x in zip(model.inputs, xs)}
    for call in model.calls:
        spec = _spec(call.layer, LayerSpec)
        p = {n: params[key] for n, key in model.param_names(call.layer).items()}
        values[id(call.output)] = np.asarray(spec.forward(call.layer, [values[id(v)] for v in call.inputs], p),
                                             np.float64)
    return values


def _model_backward(model, xs, params, dys):
    """Float64 reverse pass: parameter gradients by state_dict key (partials added)."""
    values = _model_reference(model, xs, params)
    grads = {}
    def add(key, g):
        grads[key] = grads[key] + g if key in grads else np.asarray(g, np.float64)
    for v, dy in zip(model.outputs, dys):
        add(id(v), dy)
    pgrads = {}
    for call in reversed(model.calls):
        if id(call.output) not in grads:
            continue
        spec = _spec(call.layer, LayerSpec)
        names = model.param_names(call.layer)
        p = {n: params[key] for n, key in names.items()}
        dxs, dparams = spec.backward(call.layer, [values[id(v)] for v in call.inputs], p, grads[id(call.output)])
        for v, dx in zip(call.inputs, dxs):
            add(id(v), dx)
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
    params = {k: np.asarray(v, np.float32) for k, v in model.state_dict().items()}
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
        result.gpu[name] = _compare(name, check, got, values[id(v)], k, rtol, atol)
    for key in params:
        result.gpu[f"d{key}"] = _compare(f"d{key}", check, grads[key], want_grads.get(key, np.zeros_like(params[key])),
                                         k, rtol, atol)
    check = "reference vs finite differences"
    dys64 = [np.asarray(d, np.float64) for d in dys]
    for key in params:
        def f(pk, key=key):
            vals = _model_reference(model, xs, dict(params, **{key: pk}))
            return float(sum(np.sum(d * vals[id(v)]) for d, v in zip(dys64, model.outputs)))
        pos = _positions(params[key].size, rng, fd_max)
        fd = _central_differences(f, params[key], pos, eps)
        result.fd[f"d{key}"] = _compare(f"d{key}", check, want_grads.get(key, np.zeros_like(fd)), fd, 0,
                                        fd_rtol, fd_atol, pos)
    return result


# --- every layer: the table of `vkbackprop gradcheck` -----------------------------------------


def discover() -> list:
    """Layer and loss classes exported by vkbackprop (vkbackprop.__all__), in that order."""
    import vkbackprop
    found = []
    for name in vkbackprop.__all__:
        obj = getattr(vkbackprop, name, None)
        if isinstance(obj, type) and issubclass(obj, (Module, Loss)) and obj not in (Module, Loss):
            found.append(obj)
    return found


@dataclass
class Row:
    """One line of the table: a config's result, or why there is none."""
    cls: type
    label: str
    result: GradcheckResult | None = None
    status: str = "PASS"          # PASS, FAIL, not registered, ERROR: ...

    @property
    def failed(self) -> bool:
        return self.status == "FAIL" or self.status.startswith("ERROR")


def _make_seeded(make, seed):
    """make(), with parameter initialisation seeded (the table is reproducible) and the caller's
    generator left as it was."""
    from . import random
    saved = random._rng
    random.manual_seed(seed)
    try:
        return make()
    finally:
        random._rng = saved


def check_all(names=None, *, batch: int = 4, seed: int = 0, device=None) -> list:
    """Rows for every exported layer/loss class (or those named): one per registered example, a
    'not registered' row for a class without a reference. Unknown names are a ValueError."""
    classes = discover()
    classes += [c for c in REGISTRY if c not in classes]
    if names:
        by_name = {c.__name__.lower(): c for c in classes}
        unknown = [n for n in names if n.lower() not in by_name]
        if unknown:
            raise ValueError(f"unknown layer or loss {', '.join(unknown)}; known: "
                             f"{', '.join(c.__name__ for c in classes)}")
        wanted = {by_name[n.lower()] for n in names}
        classes = [c for c in classes if c in wanted]
    rows = []
    for cls in classes:
        spec = REGISTRY.get(cls)
        if spec is None:
            rows.append(Row(cls, cls.__name__, status="not registered"))
            continue
        for example in spec.examples:
            label = cls.__name__
            try:
                obj = _make_seeded(example.make, seed)
                label = _describe(obj)
                widths = None
                if isinstance(spec, LayerSpec):
                    widths = tuple(example.widths or spec.widths(obj))
                    if len(widths) > 1:
                        label += f" on {len(widths)} inputs of width {'/'.join(map(str, widths))}"
                result = gradcheck(obj, widths=widths, batch=batch, seed=seed, device=device, raise_on_failure=False)
                rows.append(Row(cls, label, result, "PASS" if result.passed else "FAIL"))
            except Exception as e:   # a broken layer is one failing row, not a crashed table
                rows.append(Row(cls, label, status=f"ERROR: {type(e).__name__}: {e}"))
    return rows


def format_table(rows) -> str:
    """Plain-text table: layer, GPU-vs-reference max abs / max rel, reference-vs-FD max abs / max rel, result."""
    header = ("layer", "GPU-vs-ref max abs", "max rel", "ref-vs-FD max abs", "max rel", "result")
    lines = []
    for r in rows:
        if r.result is None:
            lines.append((r.label, "-", "-", "-", "-", r.status))
        else:
            res = r.result
            lines.append((r.label, f"{res.gpu_max_abs:.2e}", f"{res.gpu_max_rel:.2e}",
                          f"{res.fd_max_abs:.2e}", f"{res.fd_max_rel:.2e}", r.status))
    widths = [max(len(str(line[i])) for line in [header] + lines) for i in range(len(header))]
    def fmt(line):
        cells = [str(c).ljust(w) if i in (0, 5) else str(c).rjust(w) for i, (c, w) in enumerate(zip(line, widths))]
        return "  ".join(cells).rstrip()
    out = [fmt(header), "  ".join("-" * w for w in widths)] + [fmt(line) for line in lines]
    details = [r.result.message() for r in rows if r.result is not None and not r.result.passed]
    return "\n".join(out + ([""] + details if details else []))
