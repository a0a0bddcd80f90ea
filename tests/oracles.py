"""Helpers shared by the tests: comparisons, the independent barrier oracle, PyTorch references for a
training step, and guards for "rejected before any GPU work". Plain functions; test files import
them with `from oracles import ...` (pytest puts tests/ on sys.path)."""

import contextlib
from unittest import mock

import numpy as np
import torch

import vkbackprop as vb
from vkbackprop import device as device_module

F = torch.nn.functional


# --- comparisons ------------------------------------------------------------------------------


def rel_err(got, want) -> float:
    """Normwise relative error: max |got - want| / max |want| (the denominator at least 1e-12)."""
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))


def assert_close(got, want, tol, what: str):
    """Elementwise |got - want| <= tol, where tol is a scalar or an array broadcasting against want;
    got must have want's shape and be finite. Compared in float64. On failure the message names
    `what` and the worst element (largest excess over tol): its index, expected and got values, its
    error and its tolerance."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    assert np.isfinite(got).all(), f"{what}: non-finite values at {np.argwhere(~np.isfinite(got))[:5].tolist()}"
    tol = np.broadcast_to(np.asarray(tol, np.float64), want.shape)
    excess = np.abs(got - want) - tol
    worst = np.unravel_index(np.argmax(excess), excess.shape)
    assert excess.max() <= 0, (f"{what}: worst at {worst}: expected {want[worst]!r}, got {got[worst]!r} "
                               f"(error {abs(got[worst] - want[worst]):.3e}, tol {tol[worst]:.2e})")


def assert_bitwise_equal(a: dict, b: dict):
    """Two dicts of arrays (state_dicts, gradients) with the same keys in the same order, and per key
    the same dtype, shape and bytes."""
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert a[k].tobytes() == b[k].tobytes(), f"{k} differs"


def with_value(array, index, value, dtype=None):
    """A copy of `array` (converted to `dtype`, if given) with array[index] = value."""
    array = array.astype(dtype or array.dtype, copy=True)
    array[index] = value
    return array


# --- the barrier oracle -----------------------------------------------------------------------


def conflicts(first, second) -> set:
    """Buffers on which two dispatches must be ordered (independent oracle over read/write sets)."""
    return (first.writes & (second.reads | second.writes)) | (first.reads & second.writes)


def needs_visibility(first, second) -> set:
    """Of `conflicts`, the buffers whose barrier must carry a memory dependency: `first` wrote them.
    The rest (second overwrites what first only read) need only an execution dependency, which any
    compute -> compute barrier between them gives."""
    return first.writes & (second.reads | second.writes)


def check_barriers_exact(log):
    """Sufficient: between two dispatches, a barrier on every buffer the first writes and the second
    reads or writes, and some barrier where the second writes a buffer the first only reads.
    Necessary: every buffer in a barrier orders a conflict with the next dispatch that no earlier
    barrier ordered."""
    dispatches = [(i, what) for i, (kind, what) in enumerate(log) if kind == "dispatch"]
    barriers = [(i, set(what)) for i, (kind, what) in enumerate(log) if kind == "barrier"]

    def barrier_between(i, j, buf=None):
        return any(i < k < j and (buf is None or buf in bufs) for k, bufs in barriers)
    for a, (i, first) in enumerate(dispatches):
        for j, second in dispatches[a + 1:]:
            for buf in needs_visibility(first, second):
                assert barrier_between(i, j, buf), f"no barrier on {buf.name} between {first.name} and {second.name}"
            for buf in conflicts(first, second) - needs_visibility(first, second):
                assert barrier_between(i, j), \
                    f"no barrier between {first.name} and {second.name}, which overwrites {buf.name}"

    def orders(i, first, k, buf, after) -> bool:
        """Whether a barrier at k on buf orders a conflict of `first` (at i) with `after` that no
        barrier between them did."""
        if buf in needs_visibility(first, after):
            return not barrier_between(i, k, buf)
        return buf in conflicts(first, after) and not barrier_between(i, k)
    for k, bufs in barriers:
        after = next(d for i, d in dispatches if i > k)
        for buf in bufs:
            assert any(orders(i, d, k, buf, after) for i, d in dispatches if i < k), \
                f"barrier on {buf.name} before {after.name} orders nothing"


# --- PyTorch references -----------------------------------------------------------------------


def torch_autograd(fn, x, dy):
    """PyTorch autograd in float64: (y, dL/dx) for y = fn(x) and upstream gradient dy, i.e.
    L = sum(dy * y)."""
    xt = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    yt = fn(xt)
    yt.backward(torch.tensor(np.asarray(dy, np.float64)))
    return yt.detach().numpy(), xt.grad.numpy()


def torch_params(model):
    """The model's parameters as float64 leaf tensors, by state_dict key."""
    return {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in model.state_dict().items()}


def lin(p, name, x):
    """F.linear with the parameters `name`.weight and (if present) `name`.bias of torch_params `p`."""
    return F.linear(x, p[f"{name}.weight"], p.get(f"{name}.bias"))


def _sgd_lr(trainer) -> float:
    assert isinstance(trainer.optimizer, vb.SGD), f"a plain SGD step is checked, not {trainer.optimizer!r}"
    return trainer.optimizer.lr


def check_sgd_step(trainer, x, y, torch_loss):
    """One SGD step of `trainer` vs the same step written directly in PyTorch (float64 autograd).

    torch_loss(p, *xs) is the loss in PyTorch, from p = torch_params(model) (taken before the step)
    and the input(s) x as float64 tensors (x is one array or a list of them). The loss, every
    parameter gradient and every updated parameter (param - lr * grad) agree within relative error
    1e-4 (rel_err), and the recorded training step's barriers are exact. Returns the step's loss."""
    lr = _sgd_lr(trainer)
    p = torch_params(trainer.model)
    xs = [torch.tensor(a, dtype=torch.float64) for a in (x if isinstance(x, list) else [x])]
    want = torch_loss(p, *xs)
    want.backward()
    got = trainer.step(x, y)
    assert abs(got - want.item()) <= 1e-4 * abs(want.item())
    grads = trainer.gradients()
    for k, t in p.items():
        assert rel_err(grads[k], t.grad.numpy()) <= 1e-4, k
    updated = trainer.model.state_dict()
    for k, t in p.items():
        assert rel_err(updated[k], (t - lr * t.grad).detach().numpy()) <= 1e-4, k
    check_barriers_exact(trainer.plan.train.log)
    return got


def check_step(model, losses, x, y, torch_loss, device, lr=0.1, batch=None):
    """A Trainer for `model` with SGD(lr) and batch size `batch` (default: the rows of x), whose
    first step is checked by check_sgd_step; returns the trainer."""
    rows = len(x[0]) if isinstance(x, list) else len(x)
    trainer = vb.Trainer(model, losses, vb.SGD(lr=lr), batch or rows, device=device)
    check_sgd_step(trainer, x, y, torch_loss)
    return trainer


def torch_twin(module, model, dtype=torch.float32):
    """`module` (a torch.nn module with the same state_dict keys as the vkbackprop `model`) in
    `dtype`, loaded with the model's current weights."""
    module = module.to(dtype)
    module.load_state_dict({k: torch.tensor(v, dtype=dtype) for k, v in model.state_dict().items()})
    return module


def check_step_against_twin(trainer, x, y, twin, want_loss):
    """One SGD step of `trainer` on (x, y) vs torch.optim.SGD with the same learning rate on `twin`
    (see torch_twin), whose loss on the same batch is `want_loss` (computed, not yet
    backpropagated). The loss, every parameter gradient and every updated parameter agree within
    relative error 1e-4 (rel_err). Returns the trainer's loss."""
    lr = _sgd_lr(trainer)
    want_loss.backward()
    torch.optim.SGD(twin.parameters(), lr=lr).step()
    got_loss = trainer.step(x, y)
    assert abs(got_loss - want_loss.item()) <= 1e-4 * abs(want_loss.item()), (got_loss, want_loss.item())
    grads = trainer.gradients()
    for name, p in twin.named_parameters():
        assert rel_err(grads[name], p.grad.numpy()) <= 1e-4, name
    updated = trainer.model.state_dict()
    for name, value in twin.state_dict().items():
        assert rel_err(updated[name], value.numpy()) <= 1e-4, name
    return got_loss


# --- rejected before any GPU work -------------------------------------------------------------


def _forbidden(what):
    def fail(*args, **kwargs):
        raise AssertionError(f"GPU work ({what}) during a call that should have been rejected first")
    return fail


@contextlib.contextmanager
def no_gpu_work():
    """Fail if the wrapped call allocates, uploads, downloads, binds or submits anything."""
    with contextlib.ExitStack() as stack:
        for owner, name in [(vb.Device, "buffer"), (vb.Device, "write"), (vb.Device, "read"),
                            (vb.Device, "sequence"), (vb.Device, "dispatch"),
                            (device_module.Sequence, "eval"), (device_module.Sequence, "eval_async")]:
            stack.enter_context(mock.patch.object(owner, name, _forbidden(f"{owner.__name__}.{name}")))
        yield


# --- optimizer twins ----------------------------------------------------------------------------
# (vkbackprop optimizer, a function making the same torch.optim optimizer for given parameters)


def sgd(**kw):
    return vb.SGD(**kw), lambda params: torch.optim.SGD(params, foreach=False, **kw)


def adam(**kw):
    return vb.Adam(**kw), lambda params: torch.optim.Adam(params, foreach=False, **kw)


def adamw(**kw):
    return vb.AdamW(**kw), lambda params: torch.optim.AdamW(params, foreach=False, **kw)
