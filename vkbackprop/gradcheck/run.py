"""Running on the GPU: a layer, a loss or a model forward/backward with given inputs and upstream
gradients (run_layer, run_loss, run_model)."""

from __future__ import annotations

import math

import numpy as np

from ..layers.activation import elementwise
from ..layers.base import LayerIO
from ..losses import Loss
from ..schedule import Recorder


def run_layer(device, layer, xs, params: dict, dy: np.ndarray, need_dx=True, shapes=None, state=None,
              training: bool = True, return_state: bool = False):
    """Forward then backward of `layer` on the GPU with the given inputs, parameters and upstream
    gradient dL/dy. `xs` is one (batch, width) array or a list of them (a multi-input layer such as
    Add); `need_dx` is a bool or one bool per input; `shapes` the per-sample shape of each input
    (e.g. [(C, H, W)] for a convolution; default: flat features). `state`: the layer's
    non-trainable state (default: its initial `buffers()`), `training`: the mode forward and
    backward run in. Returns (y, dx, {param name: gradient}) (and the state after the run with
    `return_state`), where dx is an array (or None) for a single array `xs`, and a list for a list `xs`.

    A view (a layer with `is_view`, which records no dispatch) is run as the plan runs it: its
    output is its input's buffer and its input gradient is its output gradient's buffer."""
    single = not isinstance(xs, (list, tuple))
    xs = [np.asarray(x, np.float32) for x in ([xs] if single else xs)]
    needs = [bool(need_dx)] * len(xs) if isinstance(need_dx, (bool, np.bool_)) else [bool(n) for n in need_dx]
    if len(needs) != len(xs):
        raise ValueError(f"run_layer: need_dx has {len(needs)} entries for {len(xs)} inputs")
    batch = xs[0].shape[0]
    in_shapes = [(x.shape[1],) for x in xs] if shapes is None else [tuple(int(d) for d in s) for s in shapes]
    if len(in_shapes) != len(xs) or any(math.prod(s) != x.shape[1] for s, x in zip(in_shapes, xs)):
        raise ValueError(f"run_layer: shapes {in_shapes} do not match the input widths {[x.shape[1] for x in xs]}")
    out_shape = tuple(layer.output_shape(*in_shapes))
    out = math.prod(out_shape)
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
    param_bufs = _staged(device, params)
    state = layer.buffers() if state is None else state
    state_bufs = _staged(device, state)
    step = device.buffer("step", (1,), np.uint32, staged=True)
    io = LayerIO(device, batch, xs=x_bufs, y=y_buf, params=param_bufs, dy=dy_buf, dxs=dx_bufs,
                 grads={n: device.buffer(f"{n}.grad", np.shape(v)) for n, v in params.items()}, step=step,
                 training=training, in_shapes=in_shapes, out_shape=out_shape, state=state_bufs)
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
    result = (y, (dxs[0] if single else dxs), grads)
    if return_state:
        # As given: an int64 counter comes back int64 (the device holds it as uint32).
        result += ({n: device.read(b).astype(np.asarray(state[n]).dtype) for n, b in state_bufs.items()},)
    return result


def _staged(device, values: dict) -> dict:
    """Host-writable device buffers holding `values` (name -> array), dtype kept (float32 or uint32)."""
    bufs = {}
    for n, v in values.items():
        v = np.asarray(v)
        dtype = np.uint32 if v.dtype.kind in "iu" else np.float32
        bufs[n] = device.buffer(n, v.shape, dtype, staged=True)
        device.write(bufs[n], v.astype(dtype))
    return bufs


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
        # Add's gradient copy (no ReLU mask) copies the given gradient into dL/d(output).
        return elementwise(device, "add/backward.comp", {"dy": target, "mask": device.placeholder, "dx": dpred},
                           pred.size)


def run_model(device, model, xs: list, dys: list):
    """One Trainer step of `model` (the real plan and scheduler; SGD with lr 0, so the parameters
    are unchanged) whose "losses" hand the given dL/d(outputs) to the graph. Returns ([outputs in
    training mode], {state_dict key: gradient}). Model inputs get no gradient (the plan computes none).
    Binds the model's parameters to `device`, as a Trainer does."""
    from ..optim import SGD
    from ..train import Trainer
    trainer = Trainer(model, [_UpstreamGradient() for _ in model.outputs], SGD(lr=0.0), len(xs[0]), device=device)
    # The stand-in losses write no loss value, but the step's guard checks it: start it at 0, not at
    # whatever the device memory held (lavapipe hands back freed memory as it was: NaN at times).
    for loss in trainer.plan.losses:
        device.write(loss, np.zeros(1, np.float32))
    trainer.step(xs if len(xs) > 1 else xs[0], dys if len(dys) > 1 else dys[0])
    ys = [device.read(b) for b in trainer.plan.outputs]
    return ys, dict(trainer.gradients())
