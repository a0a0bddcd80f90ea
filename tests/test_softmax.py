"""Softmax and LogSoftmax: the float64 reference against central finite differences and PyTorch
autograd; the shaders against both oracles on shapes that include 1, primes and wide rows, on
extreme logits, and inside a trained model; lavapipe's loop limit checked at its exact boundary."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vkbackprop as vb
from vkbackprop import reference as ref
from vkbackprop.gradcheck import run_layer
from vkbackprop.layers.softmax import forward_loop_iterations
from vkbackprop.schedule import Recorder
from oracles import assert_close, check_step_against_twin, torch_autograd, torch_twin

KINDS = {
    "softmax": (vb.Softmax, ref.softmax_forward, ref.softmax_backward, torch.softmax, torch.nn.Softmax),
    "log_softmax": (vb.LogSoftmax, ref.log_softmax_forward, ref.log_softmax_backward, torch.log_softmax,
                    torch.nn.LogSoftmax),
}
SIZES = st.sampled_from([1, 2, 3, 7, 13, 64, 257, 1000])
SETTINGS = settings(max_examples=16, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def tolerances(kind, x, dy):
    """Elementwise bounds (y, dx) for fp32 results against float64, from x and dy. A k-term row sum
    errs like sqrt(k) ulps (r); each probability p = softmax(x) carries that relative error plus
    |z| ulps from rounding z = x - max (the argument of exp); softmax errors scale with p, so tiny
    probabilities get tiny bounds. log_softmax outputs (down to -2e4) also get a few ulps of
    themselves."""
    x, dy = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    r = 2e-6 * np.sqrt(x.shape[1] + 1)
    z = x - x.max(axis=1, keepdims=True)
    p_tol = ref.softmax_forward(x) * (r + 2e-7 * np.abs(z)) + 1e-30
    dy_size = np.maximum(1.0, np.abs(dy).max(axis=1, keepdims=True))
    if kind == "softmax":                                   # dx = y (dy - sum(dy y))
        return p_tol, 2 * p_tol * dy_size + 1e-6 * np.abs(ref.softmax_backward(x, dy))
    size = np.maximum(dy_size, np.abs(dy.sum(axis=1, keepdims=True)))   # dx = dy - p sum(dy)
    return (r + 1e-6 * np.abs(ref.log_softmax_forward(x)),
            p_tol * size + 1e-6 * (np.abs(ref.log_softmax_backward(x, dy)) + np.abs(dy)))


def assert_matches_oracles(kind, dim, x, dy, y, dx):
    """GPU (y, dx) against the float64 reference and against PyTorch autograd."""
    _, forward, backward, _, _ = KINDS[kind]
    tol_y, tol_dx = tolerances(kind, x, dy)
    for oracle, (want_y, want_dx) in [("reference", (forward(x), backward(x, dy))),
                                      ("torch", torch_oracle(kind, x, dy, dim))]:
        assert_close(y, want_y, tol_y, f"{kind} {oracle} y")
        assert_close(dx, want_dx, tol_dx, f"{kind} {oracle} dx")


def torch_oracle(kind, x, dy, dim):
    """PyTorch autograd in float64: (y, dL/dx) for L = sum(dy * y)."""
    return torch_autograd(lambda xt: KINDS[kind][3](xt, dim=dim), x, dy)


# --- the reference --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (2, 1), (3, 7), (4, 13)])
def test_reference_backward_matches_finite_differences(kind, shape, rng):
    """With L = sum(dy * y) for a random dy (not all ones: rows of softmax sum to 1, so an all-ones
    dy has gradient 0 and would pass any backward that returns zeros)."""
    _, forward, backward, _, _ = KINDS[kind]
    x = 3 * rng.standard_normal(shape)
    dy = rng.standard_normal(shape)
    numeric = ref.numerical_gradient(lambda z: (forward(z) * dy).sum(), x)
    np.testing.assert_allclose(backward(x, dy), numeric, rtol=1e-6, atol=1e-7)
    if shape[1] > 1:  # negative control: the elementwise-only derivative is rejected
        naive = dy * (forward(x) if kind == "softmax" else np.ones(shape))
        assert not np.allclose(naive, numeric, rtol=1e-3, atol=1e-4)


@settings(max_examples=30, deadline=None)
@given(kind=st.sampled_from(list(KINDS)), shape=st.tuples(st.integers(1, 9), st.integers(1, 9)),
       dim=st.sampled_from([-1, 0, 1]), scale=st.sampled_from([0.1, 1.0, 30.0, 1e4]), seed=st.integers(0, 2**31))
def test_reference_matches_torch_autograd(kind, shape, dim, scale, seed):
    rng = np.random.default_rng(seed)
    _, forward, backward, _, _ = KINDS[kind]
    x = scale * rng.standard_normal(shape)
    dy = rng.standard_normal(shape)
    want_y, want_dx = torch_oracle(kind, x, dy, dim)
    y, dx = forward(x, dim), backward(x, dy, dim)
    assert np.isfinite(y).all() and np.isfinite(dx).all()
    np.testing.assert_allclose(y, want_y, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-9, atol=1e-12)


# --- the shaders ------------------------------------------------------------------------------------
@SETTINGS
@given(kind=st.sampled_from(list(KINDS)), batch=SIZES, width=SIZES, dim=st.sampled_from([-1, 1]),
       scale=st.sampled_from([0.1, 1.0, 10.0, 100.0]), seed=st.integers(0, 2**31))
def test_gpu_matches_reference_and_torch(device, kind, batch, width, dim, scale, seed):
    rng = np.random.default_rng(seed)
    cls = KINDS[kind][0]
    x = (scale * rng.standard_normal((batch, width))).astype(np.float32)
    dy = rng.standard_normal((batch, width)).astype(np.float32)

    y, dx, grads = run_layer(device, cls(dim=dim), x, {}, dy)

    assert grads == {}
    assert_matches_oracles(kind, dim, x, dy, y, dx)
    tol = 2e-6 * np.sqrt(width + 1)
    if kind == "softmax":
        assert ((y >= 0) & (y <= 1)).all()
        assert np.abs(y.astype(np.float64).sum(axis=1) - 1).max() <= tol
    else:
        assert (y <= 0).all()
        assert np.abs(np.logaddexp.reduce(y.astype(np.float64), axis=1)).max() <= tol


EXTREME = np.array([
    [1e4, -1e4, 0.0, 5.0, -3.0, 1.0, 2.0],
    [-1e4, -1e4, 1e4, 1e4, -1e4, 0.0, 1e4],            # ties at the maximum
    [1e4] * 7,                                          # all equal and huge: exp(x) would overflow
    [-1e4] * 7,                                         # all equal and hugely negative: exp(x) would underflow
    [0.0, 0.0, 0.0, 1e4, 0.0, 0.0, 0.0],                # one huge value
    [-1e4, -1e4, -1e4, -1e4, -1e4, -1e4, -1e4 + 1],     # near-ties far from 0
    [1e4, 1e4 - 1, 1e4 - 2, 1e4 - 3, 1e4 - 20, -1e4, 0.0],
], np.float32)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dim", [-1, 1])
def test_extreme_logits_are_finite_and_correct(device, rng, kind, dim):
    cls = KINDS[kind][0]
    wide = np.full((1, 257), -1e4, np.float32)
    wide[0, 100] = 1e4
    quads = np.concatenate([EXTREME, EXTREME[:, -1:]], axis=1)   # 8 columns: rows read as quads
    for x in (EXTREME, quads, wide, -wide, wide[:, :256], -wide[:, :256]):
        dy = rng.standard_normal(x.shape).astype(np.float32)
        y, dx, _ = run_layer(device, cls(dim=dim), x, {}, dy)
        assert np.isfinite(y).all() and np.isfinite(dx).all()
        assert_matches_oracles(kind, dim, x, dy, y, dx)
        probabilities = y if kind == "softmax" else np.exp(y.astype(np.float64))
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=0, atol=1e-6)
    # Spot values: a row with one huge value is one-hot; two tied maxima share evenly.
    y, _, _ = run_layer(device, cls(dim=dim), EXTREME, {}, np.zeros_like(EXTREME))
    p = y if kind == "softmax" else np.exp(y)
    np.testing.assert_array_equal(p[4], [0, 0, 0, 1, 0, 0, 0])
    np.testing.assert_allclose(p[2], np.full(7, 1 / 7), rtol=1e-6)


def test_backward_twice_gives_identical_bits(device, rng):
    x = (5 * rng.standard_normal((33, 257))).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    for cls in (vb.Softmax, vb.LogSoftmax):
        first, second = run_layer(device, cls(), x, {}, dy), run_layer(device, cls(), x, {}, dy)
        np.testing.assert_array_equal(first[0], second[0])
        np.testing.assert_array_equal(first[1], second[1])


def test_no_dx_when_nothing_upstream_needs_it(device, rng):
    x = rng.standard_normal((3, 5)).astype(np.float32)
    y, dx, _ = run_layer(device, vb.LogSoftmax(), x, {}, np.ones_like(x), need_dx=False)
    assert dx is None
    assert_close(y, ref.log_softmax_forward(x), tolerances("log_softmax", x, x)[0], "y")


@pytest.mark.parametrize("kind", KINDS)
def test_checker_can_fail(kind, rng):
    """Negative control: the bounds above reject a 0.1% error in y or in dx, even on wide rows of
    small probabilities (width 1000: p ~ 1e-3)."""
    x = (0.1 * rng.standard_normal((4, 1000))).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    _, forward, backward, _, _ = KINDS[kind]
    tol_y, tol_dx = tolerances(kind, x, dy)
    for want, tol in [(forward(x), tol_y), (backward(x, dy), tol_dx)]:
        assert_close(want.astype(np.float32), want, tol, "exact")
        with pytest.raises(AssertionError, match="worst at"):
            assert_close((want * 1.001).astype(np.float32), want, tol, "off by 0.1%")


# --- in a model -------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda nn: nn.Sequential(nn.Linear(6, 4), nn.LogSoftmax(dim=-1)),
    lambda nn: nn.Sequential(nn.Linear(6, 4), nn.Softmax(dim=1)),
    lambda nn: nn.Sequential(nn.Linear(5, 7), nn.Softmax(dim=-1), nn.Linear(7, 3), nn.LogSoftmax(dim=1)),
], ids=["linear-logsoftmax", "linear-softmax", "softmax-inside"])
def test_one_sgd_step_matches_pytorch(device, rng, make):
    batch, lr = 9, 0.5
    vb.manual_seed(3)
    model = make(vb)
    trainer = vb.Trainer(model, loss=vb.MSELoss(), optimizer=vb.SGD(lr=lr), batch_size=batch, device=device)
    width_in, width_out = model.widths[0], model.widths[-1]
    x = (2 * rng.standard_normal((batch, width_in))).astype(np.float32)
    target = rng.standard_normal((batch, width_out)).astype(np.float32)

    initial = model.state_dict()
    reference = torch_twin(make(torch.nn), model)
    want_loss = torch.nn.functional.mse_loss(reference(torch.from_numpy(x)), torch.from_numpy(target))
    check_step_against_twin(trainer, x, target, reference, want_loss)
    updated = model.state_dict()
    for name in reference.state_dict():
        assert not np.array_equal(updated[name], initial[name]), f"{name} did not move"


# --- the API ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_constructor_and_repr_follow_pytorch(kind):
    cls, torch_cls = KINDS[kind][0], KINDS[kind][4]
    for dim in (-1, 1, np.int64(1)):
        assert repr(cls(dim=dim)) == repr(torch_cls(dim=int(dim)))
    assert repr(cls()) == repr(torch_cls(dim=-1))
    assert cls.__name__ in vb.__all__ and getattr(vb, cls.__name__) is cls
    for bad in (0, 2, -2, None, 1.0, True, "1"):
        with pytest.raises(ValueError, match="dim must be -1 or 1"):
            cls(dim=bad)
    assert cls().out_features(13) == 13 and cls().parameters() == {}


@pytest.mark.parametrize("fits, over", [(21843, 21845), (87376, 87380)], ids=["values", "quads"])
def test_rows_longer_than_lavapipe_runs_are_refused_exactly_at_the_boundary(device, rng, fits, over):
    """lavapipe stops an invocation's loops after 65,535 iterations in all (every loop counts, and
    so does the pass that leaves a loop): forward's three loops over a row fit 21,843 values but
    not 21,845 (21,844 is a row of quads), and 21,844 quads but not 21,845."""
    if device.loop_limit is None:
        assert not device.name.startswith("llvmpipe")
        return
    assert forward_loop_iterations(fits) <= device.loop_limit < forward_loop_iterations(over)
    for cls, forward in [(vb.Softmax, ref.softmax_forward), (vb.LogSoftmax, ref.log_softmax_forward)]:
        x = rng.standard_normal((2, fits)).astype(np.float32)
        dy = rng.standard_normal(x.shape).astype(np.float32)
        y, dx, _ = run_layer(device, cls(), x, {}, dy)
        assert_matches_oracles("softmax" if cls is vb.Softmax else "log_softmax", -1, x, dy, y, dx)
        # A longer row would be silently wrong (shown by dispatching past the check) ...
        x = rng.standard_normal((1, over)).astype(np.float32)
        xb, yb = device.buffer("x", x.shape, staged=True), device.buffer("y", x.shape, staged=True)
        xb.host_view()[...] = x
        rec = Recorder(device)
        rec.upload([xb])
        rec.dispatch(device.dispatch(cls.forward_shader, {"x": xb, "y": yb, "x4": xb, "y4": yb}, (1, 1, 1),
                                     {"ROWS": 1, "COLS": over}))
        rec.download([yb])
        rec.sequence.eval()
        assert not np.allclose(yb.host_view(), forward(x), rtol=1e-4, atol=1e-6)
        # ... so it is refused before any GPU work, by the layer and by a Trainer.
        with pytest.raises(ValueError, match=f"{cls.__name__} over {over} features.*stops loops after 65535"):
            run_layer(device, cls(), x, {}, x)
        with pytest.raises(ValueError, match=f"{cls.__name__} over {over} features"):
            vb.Trainer(vb.Sequential(vb.Linear(2, over), cls()), vb.MSELoss(), vb.SGD(lr=0.1),
                       batch_size=1, device=device)
