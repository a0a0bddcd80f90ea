"""Losses with PyTorch semantics: CrossEntropyLoss (labels or probabilities, label smoothing),
NLLLoss, BCEWithLogitsLoss, KLDivLoss and MSELoss, each with its reductions.

Three oracles: the float64 NumPy reference (itself checked against central finite differences),
PyTorch's float64 torch.nn.functional with autograd and a random upstream gradient, and, end to end,
one PyTorch SGD step. Shapes include 1 and primes; the upstream gradient dloss is random. Also:
logits of +-1e4, sum vs mean, bit-reproducibility, lavapipe's loop limit, and bad arguments or
targets rejected with a ValueError before any GPU work."""

import math
import types
import warnings
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vkbackprop as vb
from vkbackprop import reference as ref
from vkbackprop.gradcheck import run_loss
from oracles import assert_close, check_step_against_twin, no_gpu_work, torch_twin, with_value

U = 2.0 ** -24   # fp32 unit roundoff
BATCHES = st.sampled_from([1, 2, 3, 5, 7, 13, 31, 64, 257, 600])
CLASSES = st.sampled_from([1, 2, 3, 5, 7, 13, 37, 101])
SETTINGS = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# --- the losses under test, one (kind, keyword arguments) pair per configuration --------------

def _configs():
    out = []
    for reduction in ("mean", "sum"):
        for target in ("labels", "probabilities"):
            for eps in (0.0, 0.3, 1.0):
                out.append(("cross_entropy", dict(reduction=reduction, label_smoothing=eps, target=target)))
        out += [("nll", dict(reduction=reduction)), ("bce_with_logits", dict(reduction=reduction)),
                ("mse", dict(reduction=reduction))]
    for reduction in ("mean", "sum", "batchmean"):
        for log_target in (False, True):
            out.append(("kl_div", dict(reduction=reduction, log_target=log_target)))
    return out


CONFIGS = _configs()


def config_id(config):
    kind, kw = config
    return kind + "-" + "-".join(f"{k}={v}" for k, v in kw.items())


def make_loss(kind, kw):
    return {"cross_entropy": vb.CrossEntropyLoss, "nll": vb.NLLLoss, "bce_with_logits": vb.BCEWithLogitsLoss,
            "kl_div": vb.KLDivLoss, "mse": vb.MSELoss}[kind](**kw)


def ref_kw(kind, kw):
    """The reference functions take the same arguments, except the CE target kind (from the dtype)."""
    return {k: v for k, v in kw.items() if k != "target"}


def ref_forward(kind, kw, pred, target):
    return getattr(ref, f"{kind}_forward")(pred, target, **ref_kw(kind, kw))


def ref_backward(kind, kw, pred, target, dloss):
    return getattr(ref, f"{kind}_backward")(pred, target, dloss, **ref_kw(kind, kw))


def torch_loss_and_grad(kind, kw, pred, target, dloss):
    """PyTorch float64: loss value and d(dloss * loss)/d(pred) by autograd."""
    x = torch.tensor(pred, dtype=torch.float64, requires_grad=True)
    integer = np.asarray(target).dtype.kind in "iu"
    t = torch.tensor(np.asarray(target, dtype=np.int64 if integer else np.float64))
    with warnings.catch_warnings():   # kl_div's note that 'mean' will one day mean 'batchmean'
        warnings.filterwarnings("ignore", "reduction: 'mean' divides the total loss", UserWarning)
        loss = torch_functional(kind, kw, x, t)
    (loss * dloss).backward()
    return loss.item(), x.grad.numpy()


def torch_functional(kind, kw, x, t):
    return {"cross_entropy": lambda: F.cross_entropy(x, t, **ref_kw(kind, kw)),
            "nll": lambda: F.nll_loss(x, t, **kw),
            "bce_with_logits": lambda: F.binary_cross_entropy_with_logits(x, t, **kw),
            "kl_div": lambda: F.kl_div(x, t, **kw),
            "mse": lambda: F.mse_loss(x, t, **kw)}[kind]()


def random_distribution(rng, batch, classes):
    """Rows that are distributions, some entries exactly 0 (and one row one-hot when there is room)."""
    p = rng.exponential(size=(batch, classes))
    p[rng.random((batch, classes)) < 0.2] = 0.0
    p[np.arange(batch), rng.integers(0, classes, batch)] += 0.1   # every row has mass somewhere
    if batch > 1:
        p[0] = 0.0
        p[0, rng.integers(classes)] = 1.0
    p = (p / p.sum(axis=1, keepdims=True)).astype(np.float32)
    return p


def log_softmax32(logits):
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return (z - np.log(np.exp(z).sum(axis=1, keepdims=True))).astype(np.float32)


def draw(kind, kw, rng, batch, classes):
    """A prediction and a valid target for this loss."""
    logits = (3 * rng.standard_normal((batch, classes))).astype(np.float32)
    pred = log_softmax32(logits) if kind in ("nll", "kl_div") else logits
    if kind in ("nll",) or (kind == "cross_entropy" and kw["target"] == "labels"):
        target = rng.integers(0, classes, batch)
    elif kind == "cross_entropy":
        target = random_distribution(rng, batch, classes)
    elif kind == "bce_with_logits":
        target = rng.random((batch, classes)).astype(np.float32)
        target[rng.random((batch, classes)) < 0.3] = 0.0
        target[rng.random((batch, classes)) < 0.3] = 1.0
    elif kind == "kl_div":
        target = random_distribution(rng, batch, classes)
        if kw["log_target"]:
            target = log_softmax32(3 * rng.standard_normal((batch, classes)))
    else:
        target = rng.standard_normal((batch, classes)).astype(np.float32)
    return pred, target


# --- tolerances: fp32 error bounds from the size of what is summed ----------------------------


def divisor(kind, kw, batch, classes):
    reduction = kw["reduction"]
    if reduction == "sum":
        return 1
    if reduction == "batchmean" or kind in ("cross_entropy", "nll"):
        return batch
    return batch * classes


def _smoothed_target(kw, pred, target):
    p = np.asarray(target)
    if p.dtype.kind in "iu":
        p = np.eye(pred.shape[1])[p]
    eps = kw.get("label_smoothing", 0.0)
    return (1 - eps) * p.astype(np.float64) + eps / pred.shape[1]


def magnitudes(kind, kw, pred, target):
    """(terms, grads): per summed term, the size of the values that make it up (so its fp32 error is
    a few U times that), and per gradient entry the same."""
    x, t = pred.astype(np.float64), np.asarray(target)
    if kind == "cross_entropy":
        q = _smoothed_target(kw, x, t)
        d = x.max(axis=1, keepdims=True) - x
        lse = np.log(np.exp(-d).sum(axis=1, keepdims=True))
        terms = (q * (d + lse)).sum(axis=1) + q.sum(axis=1) * lse[:, 0] + 1.0
        return terms, np.exp(-d - lse) * q.sum(axis=1, keepdims=True) + q
    if kind == "nll":
        return np.abs(x[np.arange(len(x)), t]), np.ones_like(x)
    t = t.astype(np.float64)
    if kind == "bce_with_logits":
        return np.abs(x) * (1 + np.abs(t)) + 1.0, 1.0 + np.abs(t)
    if kind == "kl_div":
        w = np.exp(t) if kw["log_target"] else t
        logt = np.abs(t) if kw["log_target"] else np.abs(np.log(np.where(t > 0, t, 1.0)))
        return w * (logt + np.abs(x) + 1.0), w
    return (x - t) ** 2, 2 * np.abs(x - t)


def assert_loss_close(got, want, terms, div, classes, what="loss"):
    """A sum of n terms over 256 invocations: each invocation adds ceil(n/256) terms in turn, then a
    tree of depth 8; each term itself is a few roundings of values of size `terms` (plus C for a row
    of softmax)."""
    per_invocation = -(-terms.size // 256)
    tol = 2 * U * (per_invocation + 8 + classes + 8) * float(np.sum(terms)) / div
    assert np.isfinite(got), f"{what}: got {got}"
    assert abs(got - want) <= tol, f"{what}: expected {want!r}, got {got!r} (tol {tol:.3g})"


def assert_grad_close(got, want, mags, unit, classes, what="dpred"):
    """Each entry is a few roundings of values of size `mags` (a softmax entry: C more), times unit =
    |dloss| / divisor; entries far below the largest are held to 5e-8 of it (exp's error grows with
    its argument, and it only matters for tiny probabilities)."""
    assert_close(got, want, abs(unit) * (4 * U * (classes + 8) * mags + 5e-8 * float(mags.max())), what)


def check_against_oracles(device, kind, kw, pred, target, dloss):
    """GPU vs the float64 reference and vs PyTorch float64 autograd, same tolerances."""
    batch, classes = pred.shape
    got_loss, got_grad = run_loss(device, make_loss(kind, kw), pred, target, dloss)
    terms, mags = magnitudes(kind, kw, pred, target)
    div = divisor(kind, kw, batch, classes)
    want_loss, want_grad = ref_forward(kind, kw, pred, target), ref_backward(kind, kw, pred, target, dloss)
    torch_loss, torch_grad = torch_loss_and_grad(kind, kw, pred, target, dloss)
    for name, loss_value, grad in [("reference", want_loss, want_grad), ("torch", torch_loss, torch_grad)]:
        assert_loss_close(got_loss, loss_value, terms, div, classes, f"loss vs {name}")
        assert_grad_close(got_grad, grad, mags, dloss / div, classes, f"dpred vs {name}")
    return got_loss, got_grad


# --- the reference: finite differences and PyTorch --------------------------------------------


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
@settings(max_examples=8, deadline=None)
@given(batch=st.integers(1, 5), classes=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_reference_gradient_matches_finite_differences(config, batch, classes, seed):
    kind, kw = config
    rng = np.random.default_rng(seed)
    pred, target = draw(kind, kw, rng, batch, classes)
    dloss = float(rng.uniform(-2.0, 2.0))
    analytic = ref_backward(kind, kw, pred, target, dloss)
    numeric = ref.numerical_gradient(lambda p: dloss * ref_forward(kind, kw, p, target), pred)
    scale = max(1.0, abs(dloss * ref_forward(kind, kw, pred, target)))
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8 * scale)


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
@settings(max_examples=8, deadline=None)
@given(batch=BATCHES, classes=CLASSES, seed=st.integers(0, 2**32 - 1))
def test_reference_matches_pytorch(config, batch, classes, seed):
    kind, kw = config
    rng = np.random.default_rng(seed)
    pred, target = draw(kind, kw, rng, batch, classes)
    dloss = float(rng.uniform(-2.0, 2.0))
    want_loss, want_grad = torch_loss_and_grad(kind, kw, pred, target, dloss)
    got = ref_forward(kind, kw, pred, target)
    assert abs(got - want_loss) <= 1e-12 * max(1.0, abs(want_loss))
    np.testing.assert_allclose(ref_backward(kind, kw, pred, target, dloss), want_grad, rtol=1e-10, atol=1e-15)


def test_reference_rejects_an_unknown_reduction():
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum', got 'none'"):
        ref.nll_forward(x, [0, 1], reduction="none")
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum' or 'batchmean', got 'batch'"):
        ref.kl_div_backward(x, x, reduction="batch")


# --- the shaders against both oracles ---------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
@SETTINGS
@given(batch=BATCHES, classes=CLASSES, seed=st.integers(0, 2**32 - 1))
def test_gpu_matches_reference_and_pytorch(device, config, batch, classes, seed):
    kind, kw = config
    rng = np.random.default_rng(seed)
    pred, target = draw(kind, kw, rng, batch, classes)
    dloss = float(rng.uniform(0.25, 2.0)) * float(rng.choice([-1.0, 1.0]))
    check_against_oracles(device, kind, kw, pred, target, dloss)


def test_tolerances_can_fail():
    """Negative control: the comparisons above reject a 1e-4 relative error."""
    rng = np.random.default_rng(0)
    pred, target = draw("cross_entropy", dict(target="labels", label_smoothing=0.0), rng, 64, 10)
    kw = dict(reduction="mean", label_smoothing=0.0, target="labels")
    terms, mags = magnitudes("cross_entropy", kw, pred, target)
    want = ref_forward("cross_entropy", kw, pred, target)
    with pytest.raises(AssertionError, match="expected"):
        assert_loss_close(want * (1 + 1e-4), want, terms, 64, 10)
    grad = ref_backward("cross_entropy", kw, pred, target, 1.0)
    with pytest.raises(AssertionError, match="worst at"):
        assert_grad_close(grad * (1 + 1e-4), grad, mags, 1 / 64, 10)


EXTREME = 1e4


def extreme_case(kind, kw, rng):
    """Predictions of +-1e4 (and 0) with targets that make the loss large, small and exactly 0."""
    values = np.array([EXTREME, -EXTREME, 0.0, EXTREME, -EXTREME], np.float32)
    pred = np.stack([np.roll(values, i) for i in range(5)])             # (5, 5), every row has +-1e4
    if kind == "nll" or (kind == "cross_entropy" and kw["target"] == "labels"):
        return pred, np.array([0, 1, 2, 3, 4])                          # labels hit +1e4, -1e4 and 0
    if kind == "cross_entropy":
        return pred, random_distribution(rng, 5, 5)
    if kind == "bce_with_logits":
        return pred, np.tile(np.array([1.0, 0.0, 0.5, 0.0, 1.0], np.float32), (5, 1))
    if kind == "kl_div":
        pred = -np.abs(pred)                                            # log-probabilities 0 and -1e4
        if kw["log_target"]:
            return pred, np.roll(pred, 1, axis=1)                       # exp(-1e4) = 0 weights
        return pred, random_distribution(rng, 5, 5)
    return pred, -pred


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_extreme_predictions_give_finite_correct_values(device, rng, config):
    kind, kw = config
    pred, target = extreme_case(kind, kw, rng)
    loss, grad = check_against_oracles(device, kind, kw, pred, target, float(rng.uniform(0.5, 2.0)))
    assert np.isfinite(loss) and np.isfinite(grad).all()


@pytest.mark.parametrize("x, t", [(17.0, 1.0), (30.0, 1.0), (60.0, 1.0), (-30.0, 0.0), (-60.0, 0.0)])
def test_bce_tail_is_accurate(device, x, t):
    """log1p(exp(-|x|)) where 1 + exp(-|x|) rounds to 1 in fp32: the loss is ~exp(-|x|), not 0."""
    pred, target = np.array([[x]], np.float32), np.array([[t]], np.float32)
    loss, grad = run_loss(device, vb.BCEWithLogitsLoss(reduction="sum"), pred, target, 1.0)
    want = math.log1p(math.exp(-abs(x)))
    assert loss > 0 and abs(loss - want) <= 2e-5 * want, (loss, want)
    want_grad = ref.bce_with_logits_backward(pred, target, 1.0, "sum")
    assert abs(grad[0, 0] - want_grad[0, 0]) <= 2e-5 * abs(want_grad[0, 0]), (grad, want_grad)


# --- reductions -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, extra", [("cross_entropy", dict(target="labels", label_smoothing=0.1)),
                                         ("cross_entropy", dict(target="probabilities", label_smoothing=0.1)),
                                         ("nll", {}), ("bce_with_logits", {}), ("mse", {}),
                                         ("kl_div", dict(log_target=False)), ("kl_div", dict(log_target=True))])
def test_sum_is_mean_times_its_divisor(device, rng, kind, extra):
    batch, classes = 13, 7
    pred, target = draw(kind, dict(extra, reduction="mean"), rng, batch, classes)
    dloss = 1.5
    results = {r: run_loss(device, make_loss(kind, dict(extra, reduction=r)), pred, target, dloss)
               for r in make_loss(kind, extra).reductions}
    sum_loss, sum_grad = results.pop("sum")
    for reduction, (loss, grad) in results.items():
        div = divisor(kind, dict(reduction=reduction), batch, classes)
        assert div > 1
        assert abs(loss * div - sum_loss) <= 1e-6 * abs(sum_loss), (reduction, loss, sum_loss)
        np.testing.assert_allclose(grad * div, sum_grad, rtol=1e-6, atol=1e-7 * np.abs(sum_grad).max())
    if kind == "kl_div":  # 'mean' (PyTorch's default) averages over elements, 'batchmean' over rows
        assert abs(results["mean"][0] * classes - results["batchmean"][0]) <= 1e-6 * abs(sum_loss)


@pytest.mark.parametrize("config", [c for c in CONFIGS if c[1]["reduction"] == "mean"], ids=config_id)
def test_same_input_gives_identical_bits(device, rng, config):
    kind, kw = config
    pred, target = draw(kind, kw, rng, 600, 37)
    first, second = (run_loss(device, make_loss(kind, kw), pred, target, 0.75) for _ in range(2))
    assert first[0] == second[0]
    np.testing.assert_array_equal(first[1], second[1])


# --- lavapipe's loop limit ----------------------------------------------------------------------


@pytest.mark.parametrize("target", ["labels", "probabilities"])
def test_cross_entropy_runs_right_up_to_the_loop_limit(device, rng, target):
    """One row of C classes is counted as 3C + 13 loop iterations (three loops over the classes, the
    row loop and the workgroup sum, each loop entered costing one more): the widest row the check
    allows gives correct results on lavapipe, one class more is refused. (The count is an upper
    bound: lavapipe's compiler drops a row loop it can see runs once, so it would run a few more.)"""
    widest = (65535 - 13) // 3 if device.loop_limit else 4096
    kw = dict(reduction="sum", label_smoothing=0.1, target=target)
    pred, labels_or_probs = draw("cross_entropy", kw, rng, 1, widest)
    pred[0, -1] = 12.0   # the last class matters: a loop stopped early would miss it
    check_against_oracles(device, "cross_entropy", kw, pred, labels_or_probs, 1.25)
    if device.loop_limit is None:
        return
    too_wide = types.SimpleNamespace(shape=(1, widest + 1), size=widest + 1)
    with no_gpu_work(), pytest.raises(ValueError, match=r"cross entropy over batch 1 x \d+ classes needs 65536 "
                                                        r"loop iterations .*stops loops after 65535"):
        make_loss("cross_entropy", kw).dispatch(device, too_wide, None, None, None, None)


@pytest.mark.parametrize("kind, widest", [("bce_with_logits", 256 * 65525), ("kl_div", 256 * 65525),
                                          ("mse", 256 * 65525), ("nll", 256 * 65523)])
def test_elementwise_losses_count_their_loops(device, kind, widest):
    """One row of n elements: ceil(n / 256) + 1 for the element loop (NLL: + 2 for its one-row label
    loop) + 9 for the workgroup sum. The widest row is dispatched, one element more is refused."""
    if device.loop_limit is None:
        return
    loss = make_loss(kind, dict(reduction="mean"))
    fits = types.SimpleNamespace(shape=(1, widest), size=widest)
    with mock.patch.object(vb.Device, "dispatch", lambda *args, **kwargs: "dispatched"):
        assert loss.dispatch(device, fits, None, None, None, None) == "dispatched"
    too_wide = types.SimpleNamespace(shape=(1, widest + 1), size=widest + 1)
    with no_gpu_work(), pytest.raises(ValueError, match="needs 65536 loop iterations .*stops loops after 65535"):
        loss.dispatch(device, too_wide, None, None, None, None)


# --- end to end: one Trainer step vs PyTorch ----------------------------------------------------


TRAINER_CONFIGS = [("cross_entropy", dict(reduction="mean", label_smoothing=0.0, target="labels")),
                   ("cross_entropy", dict(reduction="sum", label_smoothing=0.2, target="labels")),
                   ("cross_entropy", dict(reduction="mean", label_smoothing=0.1, target="probabilities")),
                   ("nll", dict(reduction="mean")), ("nll", dict(reduction="sum")),
                   ("bce_with_logits", dict(reduction="mean")), ("bce_with_logits", dict(reduction="sum")),
                   ("kl_div", dict(reduction="batchmean", log_target=False)),
                   ("kl_div", dict(reduction="mean", log_target=True)),
                   ("mse", dict(reduction="sum"))]


@pytest.mark.parametrize("config", TRAINER_CONFIGS, ids=config_id)
def test_one_trainer_step_matches_pytorch(device, rng, config):
    kind, kw = config
    batch, widths, lr = 24, (12, 20, 7), 0.05
    vb.manual_seed(3)
    model = vb.Sequential(vb.Linear(widths[0], widths[1]), vb.ReLU(), vb.Linear(widths[1], widths[2]))
    trainer = vb.Trainer(model, loss=make_loss(kind, kw), optimizer=vb.SGD(lr=lr), batch_size=batch, device=device)
    x = rng.standard_normal((batch, widths[0])).astype(np.float32)
    _, y = draw(kind, kw, rng, batch, widths[2])

    twin = torch_twin(torch.nn.Sequential(torch.nn.Linear(widths[0], widths[1]), torch.nn.ReLU(),
                                          torch.nn.Linear(widths[1], widths[2])), model, torch.float64)
    out = twin(torch.tensor(x, dtype=torch.float64))
    integer = np.asarray(y).dtype.kind in "iu"
    target = torch.tensor(np.asarray(y, dtype=np.int64 if integer else np.float64))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "reduction: 'mean' divides the total loss", UserWarning)
        want_loss = torch_functional(kind, kw, out, target)
    check_step_against_twin(trainer, x, y, twin, want_loss)


# --- bad arguments and targets ----------------------------------------------------------------


REDUCTION = r"reduction must be 'mean' or 'sum', got "
SMOOTHING = r"^CrossEntropyLoss: label_smoothing must be a float in \[0, 1\], got "

BAD_ARGS = [
    (lambda: vb.CrossEntropyLoss(reduction="none"), r"^CrossEntropyLoss: " + REDUCTION + r"'none'$"),
    (lambda: vb.CrossEntropyLoss(reduction="batchmean"), r"^CrossEntropyLoss: " + REDUCTION + r"'batchmean'$"),
    (lambda: vb.CrossEntropyLoss(label_smoothing=-0.1), SMOOTHING + r"-0\.1$"),
    (lambda: vb.CrossEntropyLoss(label_smoothing=1.5), SMOOTHING + r"1\.5$"),
    (lambda: vb.CrossEntropyLoss(label_smoothing=float("nan")), SMOOTHING + r"nan$"),
    (lambda: vb.CrossEntropyLoss(label_smoothing=True), SMOOTHING + r"True$"),
    (lambda: vb.CrossEntropyLoss(label_smoothing="0.1"), SMOOTHING + r"'0\.1'$"),
    (lambda: vb.CrossEntropyLoss(target="onehot"),
     r"^CrossEntropyLoss: target must be 'labels' or 'probabilities', got 'onehot'$"),
    (lambda: vb.NLLLoss(reduction="batchmean"), r"^NLLLoss: " + REDUCTION + r"'batchmean'$"),
    (lambda: vb.BCEWithLogitsLoss(reduction=None), r"^BCEWithLogitsLoss: " + REDUCTION + r"None$"),
    (lambda: vb.MSELoss(reduction="Mean"), r"^MSELoss: " + REDUCTION + r"'Mean'$"),
    (lambda: vb.KLDivLoss(reduction="none"),
     r"^KLDivLoss: reduction must be 'mean', 'sum' or 'batchmean', got 'none'$"),
    (lambda: vb.KLDivLoss(log_target=1), r"^KLDivLoss: log_target must be True or False, got 1$"),
    (lambda: vb.KLDivLoss(log_target="yes"), r"^KLDivLoss: log_target must be True or False, got 'yes'$"),
]


@pytest.mark.parametrize("make, match", BAD_ARGS, ids=[m for _, m in BAD_ARGS])
def test_bad_constructor_arguments(make, match):
    with no_gpu_work(), pytest.raises(ValueError, match=match):
        make()


def test_good_constructor_arguments_and_repr():
    assert repr(vb.CrossEntropyLoss()) == "CrossEntropyLoss()"
    assert repr(vb.CrossEntropyLoss("sum", 1, "probabilities")) == \
        "CrossEntropyLoss(reduction='sum', label_smoothing=1.0, target='probabilities')"
    assert repr(vb.KLDivLoss("batchmean", log_target=True)) == "KLDivLoss(reduction='batchmean', log_target=True)"
    assert repr(vb.NLLLoss()) == "NLLLoss()"
    assert repr(vb.BCEWithLogitsLoss("sum")) == "BCEWithLogitsLoss(reduction='sum')"
    assert vb.CrossEntropyLoss(target="probabilities").target_shape(4, 3) == (4, 3)
    assert vb.CrossEntropyLoss().target_shape(4, 3) == (4,)


B, C = 5, 4
GOOD_P = np.full((B, C), 0.25, np.float32)
GOOD_LABELS = np.array([0, 1, 2, 3, 0])


BAD_TARGETS = [
    (vb.CrossEntropyLoss(), GOOD_P,
     r"^labels: expected integer class labels, got dtype float32 \(for class-probability targets use "
     r"CrossEntropyLoss\(target='probabilities'\)\)$"),
    (vb.CrossEntropyLoss(), with_value(GOOD_LABELS, 2, 4), r"^labels: label 4 at index 2 is outside \[0, 4\)$"),
    (vb.CrossEntropyLoss(target="probabilities"), GOOD_LABELS,
     r"^probabilities: expected floating-point probabilities, got dtype int64 \(for integer class labels use "
     r"CrossEntropyLoss\(target='labels'\)\)$"),
    (vb.CrossEntropyLoss(target="probabilities"), GOOD_P > 0,
     r"^probabilities: expected floating-point probabilities, got dtype bool$"),
    (vb.CrossEntropyLoss(target="probabilities"), GOOD_P[:, :3],
     r"^probabilities: expected shape \(5, 4\), got \(5, 3\)$"),
    (vb.CrossEntropyLoss(target="probabilities"), GOOD_P[0], r"^probabilities: expected shape \(5, 4\), got \(4,\)$"),
    (vb.CrossEntropyLoss(target="probabilities"), with_value(GOOD_P, (1, 2), np.nan),
     r"^probabilities: contains NaN or Inf \(first at index \(1, 2\)\)$"),
    (vb.CrossEntropyLoss(target="probabilities"), with_value(with_value(GOOD_P, (3, 1), -0.25), (3, 2), 0.75),
     r"^probabilities: value -0\.25 at index \(3, 1\) is negative, expected probabilities >= 0$"),
    (vb.CrossEntropyLoss(target="probabilities"), with_value(GOOD_P, (2, 0), 0.35),
     r"^probabilities: row 2 sums to 1\.1, expected 1 \(within 1e-3\)$"),
    (vb.CrossEntropyLoss(target="probabilities"), with_value(GOOD_P, (4, 0), 0.248),
     r"^probabilities: row 4 sums to 0\.998, expected 1 \(within 1e-3\)$"),
    (vb.NLLLoss(), with_value(GOOD_LABELS, 3, -1), r"^labels: label -1 at index 3 is outside \[0, 4\)$"),
    (vb.NLLLoss(), GOOD_P, r"^labels: expected integer class labels, got dtype float32$"),
    (vb.NLLLoss(), GOOD_LABELS[:4], r"^labels: expected shape \(5,\), got \(4,\)$"),
    (vb.BCEWithLogitsLoss(), GOOD_LABELS, r"^targets: expected a floating-point array, got dtype int64$"),
    (vb.BCEWithLogitsLoss(), GOOD_P.T, r"^targets: expected shape \(5, 4\), got \(4, 5\)$"),
    (vb.BCEWithLogitsLoss(), with_value(GOOD_P, (0, 3), np.inf),
     r"^targets: contains NaN or Inf \(first at index \(0, 3\)\)$"),
    (vb.KLDivLoss(), with_value(GOOD_P, (4, 1), -0.5),
     r"^targets: value -0\.5 at index \(4, 1\) is negative, expected probabilities >= 0 \(for log-probability "
     r"targets use KLDivLoss\(log_target=True\)\)$"),
    (vb.KLDivLoss(), GOOD_P.astype(np.int32), r"^targets: expected floating-point probabilities, got dtype int32$"),
    (vb.KLDivLoss(), with_value(GOOD_P, (0, 0), np.nan), r"^targets: contains NaN or Inf \(first at index \(0, 0\)\)$"),
    (vb.KLDivLoss(log_target=True), with_value(GOOD_P, (2, 2), -np.inf),
     r"^targets: contains NaN or Inf \(first at index \(2, 2\)\)$"),
    (vb.KLDivLoss(log_target=True), GOOD_P[:, None], r"^targets: expected shape \(5, 4\), got \(5, 1, 4\)$"),
    (vb.MSELoss(reduction="sum"), GOOD_P[1:], r"^targets: expected shape \(5, 4\), got \(4, 4\)$"),
]


@pytest.mark.parametrize("loss, target, match", BAD_TARGETS, ids=[f"{i}-{t[0]!r}" for i, t in enumerate(BAD_TARGETS)])
def test_bad_targets(loss, target, match):
    with no_gpu_work(), pytest.raises(ValueError, match=match):
        loss.check_target(target, B, C)


def test_targets_that_pass_the_checks():
    probs = vb.CrossEntropyLoss(target="probabilities")
    near = with_value(GOOD_P, (1, 1), 0.2509)                                # row sums to 1.0009
    np.testing.assert_array_equal(probs.check_target(near.astype(np.float64), B, C), near)
    assert probs.check_target(near, B, C).dtype == np.float32
    kl = vb.KLDivLoss()
    not_normalised = np.zeros((B, C), np.float32)                            # KL has no row-sum rule
    assert kl.check_target(not_normalised, B, C).dtype == np.float32
    assert vb.KLDivLoss(log_target=True).check_target(-3 * GOOD_P, B, C).min() < 0
    assert vb.BCEWithLogitsLoss().check_target(2 * GOOD_P - 1, B, C).min() < 0   # PyTorch accepts any value
    assert vb.NLLLoss().check_target(GOOD_LABELS.astype(np.uint8), B, C).dtype == np.int32


@pytest.mark.parametrize("loss, target, match", [
    (vb.CrossEntropyLoss(target="probabilities", label_smoothing=0.1), with_value(GOOD_P, (2, 0), 0.35),
     r"^probabilities: row 2"),
    (vb.CrossEntropyLoss(target="probabilities"), GOOD_LABELS, r"^probabilities: expected floating-point"),
    (vb.NLLLoss(), with_value(GOOD_LABELS, 0, 4), r"^labels: label 4 at index 0"),
    (vb.BCEWithLogitsLoss(), with_value(GOOD_P, (1, 1), np.nan), r"^targets: contains NaN"),
    (vb.KLDivLoss("batchmean"), with_value(GOOD_P, (1, 1), -1.0),
     r"^targets: value -1\.0 at index \(1, 1\) is negative"),
], ids=["ce-probabilities", "ce-labels-given", "nll", "bce", "kl"])
def test_trainer_step_rejects_bad_targets_before_gpu_work(device, rng, loss, target, match):
    vb.manual_seed(5)
    model = vb.Sequential(vb.Linear(3, 8), vb.ReLU(), vb.Linear(8, C))
    trainer = vb.Trainer(model, loss=loss, optimizer=vb.SGD(lr=0.1), batch_size=B, device=device)
    before = model.state_dict()
    x = rng.standard_normal((B, 3)).astype(np.float32)
    with no_gpu_work(), pytest.raises(ValueError, match=match):
        trainer.step(x, target)
    after = model.state_dict()
    assert all(before[k].tobytes() == after[k].tobytes() for k in before)
    good = GOOD_LABELS if np.dtype(loss.target_dtype).kind == "i" else GOOD_P
    assert np.isfinite(trainer.step(x, good))
