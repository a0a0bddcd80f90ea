"""Dropout: the GPU mask against a NumPy re-implementation of its hash (exact), the statistics of
the mask, backward recomputing exactly the forward mask, eval mode, and training steps against
PyTorch float64 autograd applying the same mask."""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vkbackprop as vb
from vkbackprop.layers.base import LayerIO
from vkbackprop.reference.dropout import M32, bits, keep_mask, mix
from vkbackprop.schedule import Recorder
from oracles import check_barriers_exact, check_sgd_step, lin, torch_params

F = torch.nn.functional
SIZES = st.sampled_from([1, 2, 3, 5, 7, 13, 31, 64, 65, 97, 257])
SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# --- the oracle: shaders/dropout/random.glsl in NumPy (vkbackprop.reference.dropout) --------


def test_oracle_matches_a_scalar_python_lowbias32():
    """The vectorised NumPy mixer equals plain-integer lowbias32 and wraps like uint arithmetic."""
    def scalar(x):
        x ^= x >> 16; x = (x * 0x7FEB352D) & M32; x ^= x >> 15; x = (x * 0x846CA68B) & M32
        return x ^ (x >> 16)
    values = [0, 1, 2, 12345, 2**31, M32]
    assert [int(v) for v in mix(np.array(values))] == [scalar(v) for v in values]
    assert int(mix(0)) == 0 and (bits(5, 0, np.arange(1000)) <= M32).all()


# --- running the layer alone -----------------------------------------------------------------
def run_dropout(device, layer, x, dy, step, training=True):
    """Forward then backward of `layer` with the step buffer holding `step`; returns (y, dx)."""
    batch, width = x.shape
    bufs = {n: device.buffer(n, x.shape, staged=True) for n in ("x", "y", "dy", "dx")}
    step_buf = device.buffer("step", (1,), np.uint32, staged=True)
    bufs["x"].host_view()[...] = x
    bufs["dy"].host_view()[...] = dy
    step_buf.host_view()[...] = step
    io = LayerIO(device, batch, [bufs["x"]], bufs["y"], dy=bufs["dy"], dxs=[bufs["dx"]],
                 training=training, step=step_buf)
    rec = Recorder(device)
    rec.upload([bufs["x"], bufs["dy"], step_buf])
    for d in layer.forward(io) + (layer.backward(io) if training else []):
        rec.dispatch(d)
    rec.download([bufs["y"], bufs["dx"]])
    rec.sequence.eval()
    return bufs["y"].host_view().copy(), bufs["dx"].host_view().copy()


def nonzero_normal(rng, shape):
    a = rng.standard_normal(shape).astype(np.float32)
    a[a == 0] = 1.0
    return a


def torch_float32_dropout(x, mask, p):
    """PyTorch's CPU dropout arithmetic (noise = mask.div_(1 - p); x * noise) with a given mask."""
    noise = torch.tensor(mask, dtype=torch.float32).div_(1 - p)
    return (torch.tensor(x) * noise).numpy()


@SETTINGS
@given(batch=SIZES, width=SIZES, p=st.sampled_from([0.1, 0.25, 0.5, 1 / 3, 0.9, 0.97]),
       seed=st.integers(0, 2**64 - 1), step=st.integers(0, 2**32 - 1), data_seed=st.integers(0, 2**31))
def test_forward_and_backward_match_the_numpy_hash(device, batch, width, p, seed, step, data_seed):
    rng = np.random.default_rng(data_seed)
    x, dy = nonzero_normal(rng, (batch, width)), nonzero_normal(rng, (batch, width))
    y, dx = run_dropout(device, vb.Dropout(p, seed=seed), x, dy, step)
    mask = keep_mask(seed, step, x.shape, p)
    # The mask, exactly: x and dy have no zeros, so a zero output is a dropped element.
    np.testing.assert_array_equal((y != 0).astype(np.float64), mask)
    np.testing.assert_array_equal((dx != 0).astype(np.float64), mask)   # backward: the forward mask
    # Values within float32 rounding of the float64 definition (scale and product each rounded once).
    for got, a in ((y, x), (dx, dy)):
        want = a.astype(np.float64) * mask / (1 - p)
        assert np.all(np.abs(got - want) <= 2**-22 * np.abs(want))
    # And bit for bit PyTorch's own float32 arithmetic with this mask (dropped -x gives -0 there too).
    for got, a in ((y, x), (dx, dy)):
        want32 = torch_float32_dropout(a, mask, p)
        np.testing.assert_array_equal(got, want32)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want32))


def test_mask_is_a_pure_function_of_seed_and_step(device, rng):
    x = nonzero_normal(rng, (33, 40))
    masks = {}
    for seed in (1, 2):
        for step in (0, 1, 2**32 - 1):
            masks[seed, step] = run_dropout(device, vb.Dropout(0.5, seed=seed), x, x, step)[0] != 0
            np.testing.assert_array_equal(masks[seed, step], keep_mask(seed, step, x.shape, 0.5) == 1)
    again = run_dropout(device, vb.Dropout(0.5, seed=1), x, x, 1)[0] != 0   # another layer object
    np.testing.assert_array_equal(again, masks[1, 1])
    keys = list(masks)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            assert (masks[a] != masks[b]).mean() > 0.4, (a, b)   # independent masks differ in ~half


def test_seed_none_comes_from_manual_seed():
    vb.manual_seed(11)
    a, b = vb.Dropout(), vb.Dropout()
    vb.manual_seed(11)
    assert vb.Dropout().seed == a.seed and a.seed != b.seed
    assert 0 <= a.seed < 2**64 and repr(a) == "Dropout(p=0.5)"
    assert vb.Dropout.differs_in_eval


@pytest.mark.parametrize("p", [0.5, 0.1, 0.8])
def test_keep_fraction_and_no_correlation_between_neighbours(device, p):
    n_rows, width = 250, 400                       # 100,000 elements
    x = np.ones((n_rows, width), np.float32)
    steps = [run_dropout(device, vb.Dropout(p, seed=1234), x, x, s)[0] != 0 for s in (0, 1)]
    m = steps[0].astype(np.float64)
    n = m.size
    assert abs(m.mean() - (1 - p)) <= 4 * math.sqrt(p * (1 - p) / n)
    flat = m.ravel()
    pairs = {"next element": (flat[:-1], flat[1:]),
             "next row": (m[:-1].ravel(), m[1:].ravel()),
             "next step": (flat, steps[1].astype(np.float64).ravel()),
             "index + 256 (next workgroup)": (flat[:-256], flat[256:])}
    for what, (a, b) in pairs.items():
        r = np.corrcoef(a, b)[0, 1]
        assert abs(r) < 0.02, f"{what}: correlation {r:.4f}"
    # The same checks catch a visibly bad generator (negative control).
    striped = (np.arange(n) % 2).astype(np.float64)
    assert abs(np.corrcoef(striped[:-1], striped[1:])[0, 1]) > 0.02


def test_p_zero_and_eval_mode_are_the_identity(device, rng):
    x, dy = rng.standard_normal((7, 9)).astype(np.float32), rng.standard_normal((7, 9)).astype(np.float32)
    y, dx = run_dropout(device, vb.Dropout(0.0, seed=3), x, dy, 5)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(dx, dy)
    y, _ = run_dropout(device, vb.Dropout(0.5, seed=3), x, dy, 5, training=False)
    np.testing.assert_array_equal(y, x)


def test_predict_is_the_model_without_dropout(device, rng):
    vb.manual_seed(5)
    model = vb.Sequential(vb.Linear(5, 12), vb.ReLU(), vb.Dropout(0.5), vb.Linear(12, 3))
    plain = vb.Sequential(vb.Linear(5, 12), vb.ReLU(), vb.Linear(12, 3))
    plain.load_state_dict({k.replace("3.", "2."): v for k, v in model.state_dict().items()})
    trainer = vb.Trainer(model, vb.MSELoss(), vb.SGD(lr=0.1), 4, device=device)
    twin = vb.Trainer(plain, vb.MSELoss(), vb.SGD(lr=0.1), 4, device=device)
    x = rng.standard_normal((10, 5))
    first = trainer.predict(x)
    np.testing.assert_array_equal(first, twin.predict(x))
    np.testing.assert_array_equal(trainer.predict(x), first)     # no randomness at all in eval mode
    names = [w.name for k, w in trainer.plan.predict.log if k == "dispatch"]
    assert "2:dropout/identity" in names and not any("dropout/mask" in n for n in names)
    check_barriers_exact(trainer.plan.predict.log)


# --- training steps vs PyTorch ---------------------------------------------------------------
def test_training_steps_match_torch_with_our_mask(device, rng):
    vb.manual_seed(6)
    p_drop, seed, lr, batch = 0.4, 2**40 + 17, 0.1, 9
    model = vb.Sequential(vb.Linear(6, 16), vb.ReLU(), vb.Dropout(p_drop, seed=seed), vb.Linear(16, 4))
    trainer = vb.Trainer(model, vb.CrossEntropyLoss(), vb.SGD(lr=lr), batch, device=device)
    x, y = rng.standard_normal((batch, 6)), rng.integers(0, 4, batch)

    def reference(step):
        mask = torch.tensor(keep_mask(seed, step, (batch, 16), p_drop))
        return lambda p, xt: F.cross_entropy(lin(p, "3", F.relu(lin(p, "0", xt)) * mask / (1 - p_drop)),
                                             torch.tensor(y))
    check_sgd_step(trainer, x, y, reference(0))
    with torch.no_grad():   # step 1 with step 0's mask: what a generator that ignored the step would give
        stale = reference(0)(torch_params(model), torch.tensor(x)).item()
    got = check_sgd_step(trainer, x, y, reference(1))
    assert (keep_mask(seed, 0, (batch, 16), p_drop) != keep_mask(seed, 1, (batch, 16), p_drop)).any()
    assert abs(got - stale) > 1e-3 * abs(stale)
    names = [w.name for k, w in trainer.plan.train.log if k == "dispatch"]
    assert names.count("2:dropout/mask") == 2   # forward's on x, backward's on dy


def test_two_trainers_draw_the_same_masks_step_by_step(device, rng):
    """The output of a Dropout model output is the masked activation: its zeros show the mask."""
    masks = []
    for _ in range(2):
        vb.manual_seed(8)
        model = vb.Sequential(vb.Linear(3, 50), vb.Dropout(0.5, seed=99))
        trainer = vb.Trainer(model, vb.MSELoss(), vb.SGD(lr=0.01), 20, device=device)
        x, y = rng.standard_normal((20, 3)), rng.standard_normal((20, 50))
        seen = []
        for _ in range(3):
            trainer.step(x, y)
            seen.append(device.read(trainer.plan.outputs[0]) != 0)
        masks.append(seen)
    for step in range(3):
        np.testing.assert_array_equal(masks[0][step], masks[1][step])
        np.testing.assert_array_equal(masks[0][step], keep_mask(99, step, (20, 50), 0.5) == 1)
    assert (masks[0][0] != masks[0][1]).any() and (masks[0][1] != masks[0][2]).any()


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan"), float("inf"), True, "0.5", None])
def test_bad_p_is_rejected(p):
    with pytest.raises(ValueError, match=r"Dropout: p must be a probability in \[0, 1\)"):
        vb.Dropout(p)


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, True, "7"])
def test_bad_seed_is_rejected(seed):
    with pytest.raises(ValueError, match="Dropout: seed"):
        vb.Dropout(0.5, seed=seed)
