"""vkbackprop.gradcheck: every registered layer and loss passes; deliberately broken layers, losses
and references fail with a message naming the quantity and the worst element; the CLI table lists
every exported layer/loss class."""

import importlib
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import vkbackprop as vb
from vkbackprop import cli
from vkbackprop import reference as ref
from vkbackprop.gradcheck import (REGISTRY, Example, LayerSpec, LossSpec, _compare, check_all, discover,
                                  register, run_layer, spec_for)
from vkbackprop.layers.activation import elementwise
from vkbackprop.layers.gemm import gemm_dispatch

G = importlib.import_module("vkbackprop.gradcheck.registry")   # REGISTRY's module: register, spec_for and check_all look it up there

EXAMPLES = [(cls, i, ex) for cls, spec in REGISTRY.items() for i, ex in enumerate(spec.examples)]


def example_id(item):
    cls, i, _ = item
    return f"{cls.__name__}-{i}"


def make(example):
    vb.manual_seed(0)
    return example.make()


# --- every registered layer and loss -----------------------------------------------------------


@pytest.mark.parametrize("item", EXAMPLES, ids=[example_id(e) for e in EXAMPLES])
@pytest.mark.parametrize("seed", [0, 1])
def test_every_registered_example_passes(device, item, seed):
    cls, _, example = item
    obj = make(example)
    spec = REGISTRY[cls]
    widths = example.widths if isinstance(spec, LayerSpec) else None
    result = vb.gradcheck(obj, widths=widths, seed=seed, device=device)   # raises on failure
    assert result.passed and not result.failures
    if isinstance(spec, LossSpec):
        assert set(result.gpu) == {"loss", "dpred"} and set(result.fd) == {"dpred"}
        return
    n = len(widths or spec.widths(obj))
    dx = ["dx"] if n == 1 else [f"dx[{i}]" for i in range(n)]
    params = [f"d{p}" for p in obj.parameters()]
    assert list(result.gpu) == ["y"] + dx + params     # every quantity compared ...
    assert list(result.fd) == dx + params              # ... and every gradient against finite differences
    assert all(c.tolerance > 0 for c in result.comparisons)


def test_every_exported_layer_and_loss_is_discovered():
    found = discover()
    for name in vb.__all__:
        obj = getattr(vb, name)
        if isinstance(obj, type) and issubclass(obj, (vb.Module, vb.losses.Loss)) and obj is not vb.Module:
            assert obj in found, name
    for cls in (vb.Linear, vb.ReLU, vb.LeakyReLU, vb.Sigmoid, vb.Tanh, vb.GELU, vb.Softmax, vb.LogSoftmax, vb.Add,
                vb.CrossEntropyLoss, vb.MSELoss, vb.NLLLoss, vb.BCEWithLogitsLoss, vb.KLDivLoss):
        assert cls in found and cls in REGISTRY, cls


def test_linear_on_larger_shapes_with_sampled_finite_differences(device, rng):
    layer = vb.Linear(64, 65)
    params = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in layer.parameters().items()}
    x = rng.standard_normal((9, 64)).astype(np.float32)
    result = vb.gradcheck(layer, x, params=params, fd_max_elements=20, device=device)
    assert list(result.fd) == ["dx", "dweight", "dbias"]


def test_user_inputs_and_params_are_used(device):
    x = np.array([[1.0, -2.0, 3.0]], np.float32)
    result = vb.gradcheck(vb.ReLU(), x, device=device)
    np.testing.assert_array_equal(result.inputs[0], x)
    assert result.upstream.shape == (1, 3)


# --- broken layers, losses and references fail, naming what and where ------------------------


class WrongBackwardReLU(vb.ReLU):
    """ReLU forward, but backward lets 0.5 * dy through where x < 0 (a leaky backward)."""

    def backward(self, io):
        return [elementwise(io.device, "leaky_relu/backward.comp", {"saved": io.x, "dy": io.dy, "dx": io.dx},
                            io.x.size, {"NEGATIVE_SLOPE": 0.5})]


class DropsLastRowLinear(vb.Linear):
    """An off-by-one: dweight sums the batch without its last row; y, dx and dbias are right."""

    def backward(self, io):
        work = super().backward(io)
        work[0] = gemm_dispatch(io.device, "linear/backward_weight.comp",
                                {"dy": io.dy, "x": io.x, "dweight": io.grads["weight"]},
                                self.out, self.in_features, io.batch - 1)
        return work


def test_wrong_backward_fails_naming_dx_and_the_worst_index(device):
    result = vb.gradcheck(WrongBackwardReLU(), device=device, raise_on_failure=False)
    assert not result.passed
    assert [c.quantity for c in result.failures] == ["dx"]   # y is right, and so is the reference
    x, dy = result.inputs[0], result.upstream
    err = np.where(x < 0, 0.5 * np.abs(dy), 0.0)
    worst = np.unravel_index(np.argmax(err), err.shape)
    c = result.gpu["dx"]
    assert c.index == tuple(int(i) for i in worst) and x[worst] < 0
    assert c.expected == 0.0 and c.got == pytest.approx(0.5 * float(dy[worst]))
    with pytest.raises(AssertionError) as info:
        vb.gradcheck(WrongBackwardReLU(), device=device)
    message = str(info.value)
    assert "ReLU() (class WrongBackwardReLU)" in message
    assert f"dx (GPU vs reference): worst at index {c.index}: expected 0.0, got {c.got!r}" in message


def test_off_by_one_dweight_fails_naming_dweight_and_the_worst_index(device, rng):
    layer = DropsLastRowLinear(6, 4)
    x = rng.standard_normal((5, 6)).astype(np.float32)
    result = vb.gradcheck(layer, x, device=device, raise_on_failure=False)
    assert [c.quantity for c in result.failures] == ["dweight"]
    missing = np.outer(result.upstream[-1], x[-1])    # the last row's contribution
    worst = tuple(int(i) for i in np.unravel_index(np.argmax(np.abs(missing)), missing.shape))
    c = result.gpu["dweight"]
    assert c.index == worst
    assert c.got == pytest.approx(c.expected - missing[worst], rel=1e-5, abs=1e-5)
    with pytest.raises(AssertionError, match=rf"dweight \(GPU vs reference\): worst at index \({worst[0]}, {worst[1]}\)"):
        vb.gradcheck(layer, x, device=device)


def test_wrong_loss_reduction_fails_naming_loss_and_dpred(device):
    class SumsInsteadOfMean(vb.MSELoss):
        @property
        def _code(self):
            return 1   # the shader's 'sum', while reduction says 'mean'
    result = vb.gradcheck(SumsInsteadOfMean(), device=device, raise_on_failure=False)
    assert {c.quantity for c in result.failures} == {"loss", "dpred"}
    assert result.gpu["loss"].index == ()
    pred, target = result.inputs
    assert result.gpu["loss"].got == pytest.approx(float(np.sum((pred.astype(np.float64) - target) ** 2)), rel=1e-5)
    with pytest.raises(AssertionError, match=r"failed for SumsInsteadOfMean\(\):\n  loss \(GPU vs reference\)"):
        vb.gradcheck(SumsInsteadOfMean(), device=device)


def test_broken_layer_inside_a_model_fails(device):
    vb.manual_seed(3)
    model = vb.Sequential(vb.Linear(4, 6), WrongBackwardReLU(), vb.Linear(6, 2))
    result = vb.gradcheck(model, device=device, raise_on_failure=False)
    assert result.gpu["y"].passed and result.gpu["d2.weight"].passed and result.gpu["d2.bias"].passed
    assert not result.gpu["d0.weight"].passed and not result.gpu["d0.bias"].passed
    assert all(c.passed for c in result.fd.values())


@pytest.mark.parametrize("name, broken, target", [
    ("gelu_backward", lambda f: lambda x, dy, **kw: 1.01 * f(x, dy, **kw), vb.GELU()),
    ("tanh_backward", lambda f: lambda x, dy: f(x, dy) + 1e-4 * np.asarray(dy), vb.Tanh()),
    ("mse_backward", lambda f: lambda *a, **kw: f(*a, **kw) / 2, vb.MSELoss()),     # forgot the 2 of x^2
    ("linear_backward", lambda f: lambda *a, **kw: (lambda r: (r[0], r[1], 0.5 * r[2]))(f(*a, **kw)), vb.Linear(3, 2)),
])
def test_broken_reference_fails_the_finite_difference_check(device, monkeypatch, name, broken, target):
    monkeypatch.setattr(ref, name, broken(getattr(ref, name)))
    result = vb.gradcheck(target, device=device, raise_on_failure=False)
    fd_failures = [c for c in result.fd.values() if not c.passed]
    assert fd_failures, result.message()
    quantity = {"linear_backward": "dbias", "mse_backward": "dpred"}.get(name, "dx")
    assert [c.quantity for c in fd_failures] == [quantity]
    with pytest.raises(AssertionError, match=rf"{quantity} \(reference vs finite differences\): worst at index"):
        vb.gradcheck(target, device=device)


def test_the_comparison_rejects_a_small_error_and_scales_with_the_reduction_length():
    want = np.linspace(-3, 3, 50).reshape(5, 10)
    assert _compare("dx", "GPU vs reference", want.astype(np.float32), want, 10, 2e-6, 2e-6).passed
    bad = _compare("dx", "GPU vs reference", (want * 1.001).astype(np.float32), want, 10, 2e-6, 2e-6)
    assert not bad.passed and bad.index == (0, 0) and bad.expected == -3.0
    assert bad.tolerance == pytest.approx(np.sqrt(11) * (2e-6 + 2e-6 * 3))
    assert not _compare("y", "x", np.array([np.nan]), np.array([1.0]), 0, 1, 1).passed
    assert not _compare("y", "x", np.zeros((2, 3)), np.zeros((3, 2)), 0, 1, 1).passed


# --- multi-input run_layer, models, registering a layer ----------------------------------------


def test_run_layer_takes_one_array_or_a_list(device, rng):
    a, b, c = (rng.standard_normal((3, 4)).astype(np.float32) for _ in range(3))
    dy = rng.standard_normal((3, 4)).astype(np.float32)
    y, dxs, grads = run_layer(device, vb.Add(), [a, b, c], {}, dy, need_dx=[True, False, True])
    np.testing.assert_allclose(y, a + b + c, rtol=1e-6)
    assert isinstance(dxs, list) and dxs[1] is None
    np.testing.assert_array_equal(dxs[0], dy)
    np.testing.assert_array_equal(dxs[2], dy)
    assert grads == {}
    y, dx, _ = run_layer(device, vb.ReLU(), a, {}, dy)     # one array in, one array out
    np.testing.assert_array_equal(y, np.maximum(a, 0))
    assert isinstance(dx, np.ndarray) and dx.shape == a.shape


def test_models_pass(device):
    vb.manual_seed(4)
    seq = vb.Sequential(vb.Linear(5, 8), vb.GELU(), vb.Linear(8, 3), vb.LogSoftmax())
    before = seq.state_dict()
    result = vb.gradcheck(seq, device=device)
    assert set(result.gpu) == {"y", "d0.weight", "d0.bias", "d2.weight", "d2.bias"}
    for k, v in before.items():    # the check's step (SGD, lr 0) leaves the parameters as they were
        np.testing.assert_array_equal(seq.state_dict()[k], v)
    # A graph: fan-out, a shared layer (its gradients add), Concat, a view and two outputs.
    x = vb.Input(6)
    h = vb.Linear(6, 5)(x)
    shared = vb.Linear(5, 5)
    a, b = shared(vb.Tanh()(h)), shared(h)
    out = vb.Linear(10, 3)(vb.Concat()(vb.Add()(a, b, h), vb.Flatten()(h)))
    result = vb.gradcheck(vb.Model(x, [out, a]), device=device)
    assert {"y[0]", "y[1]", "d2.weight"} <= set(result.gpu)


def test_unregistered_layer_is_refused_and_register_adds_it(device, monkeypatch):
    class HalfLeaky(vb.Module):
        def __repr__(self):
            return "HalfLeaky()"

        def forward(self, io):
            return [elementwise(io.device, "leaky_relu/forward.comp", {"x": io.x, "y": io.y}, io.x.size,
                                {"NEGATIVE_SLOPE": 0.5})]

        def backward(self, io):
            return [elementwise(io.device, "leaky_relu/backward.comp", {"saved": io.x, "dy": io.dy, "dx": io.dx},
                                io.x.size, {"NEGATIVE_SLOPE": 0.5})]
    with pytest.raises(ValueError, match="no float64 reference is registered for HalfLeaky"):
        vb.gradcheck(HalfLeaky(), device=device)
    monkeypatch.setattr(G, "REGISTRY", dict(REGISTRY))
    register(HalfLeaky, LayerSpec(
        forward=lambda layer, xs, p: ref.leaky_relu_forward(xs[0], 0.5),
        backward=lambda layer, xs, p, dy: ([ref.leaky_relu_backward(xs[0], dy, 0.5)], {}),
        examples=[Example(HalfLeaky)], widths=lambda layer: (7,)))
    assert spec_for(HalfLeaky()) is G.REGISTRY[HalfLeaky]
    assert vb.gradcheck(HalfLeaky(), device=device).passed
    assert [r.status for r in check_all(["HalfLeaky"], device=device)] == ["PASS"]


# --- the command line ----------------------------------------------------------------------------


def test_cli_all_prints_every_class_and_passes():
    proc = subprocess.run([sys.executable, "-m", "vkbackprop", "gradcheck", "--all"], capture_output=True,
                          text=True, timeout=600, env=dict(os.environ))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["layer", "GPU-vs-ref", "max", "abs", "max", "rel", "ref-vs-FD", "max", "abs",
                                "max", "rel", "result"]
    for cls in discover():
        mine = [r for r in lines[2:] if re.match(rf"{cls.__name__}(\(| )", r)]
        assert mine, f"{cls.__name__} missing from\n{proc.stdout}"
        if cls in REGISTRY:
            assert len(mine) == len(REGISTRY[cls].examples)
            assert all(r.endswith("PASS") for r in mine), mine
        else:
            assert len(mine) == 1 and mine[0].endswith("not registered"), mine
    assert "0 failed" in proc.stdout


def test_cli_fails_with_exit_code_1_and_details(device, monkeypatch, capsys):
    monkeypatch.setattr(G, "REGISTRY", dict(REGISTRY))
    spec = REGISTRY[vb.ReLU]
    register(WrongBackwardReLU, LayerSpec(spec.forward, spec.backward, [Example(WrongBackwardReLU)],
                                          spec.widths, spec.draw, spec.lengths))
    assert cli.main(["gradcheck", "WrongBackwardReLU", "linear"]) == 1
    out = capsys.readouterr().out
    rows = out.splitlines()
    assert any(r.startswith("ReLU() (class WrongBackwardReLU)") and r.endswith("FAIL") for r in rows), out
    assert sum(r.startswith("Linear(") and r.endswith("PASS") for r in rows) == len(REGISTRY[vb.Linear].examples)
    assert "dx (GPU vs reference): worst at index" in out
    assert "1 failed" in out


def test_cli_rejects_unknown_names_and_no_arguments(capsys):
    assert cli.main(["gradcheck", "NoSuchLayer"]) == 2
    assert "unknown layer or loss NoSuchLayer" in capsys.readouterr().err
    assert cli.main(["gradcheck"]) == 2


def test_model_check_does_not_read_unwritten_buffers(device, monkeypatch):
    """Device memory starts with whatever was there (lavapipe reuses freed memory as it was): every
    staged buffer starts as NaN here, and a model's check still passes (its stand-in losses write
    no loss value; the step's guard reads one)."""
    allocate = type(device).buffer

    def poisoned(self, name, shape, dtype=np.float32, staged=False):
        buffer = allocate(self, name, shape, dtype, staged=staged)
        if staged and np.dtype(dtype) == np.float32:
            self.write(buffer, np.full(shape, np.nan, np.float32))
        return buffer

    monkeypatch.setattr(type(device), "buffer", poisoned)
    vb.manual_seed(5)
    x = vb.Input(6)
    h = vb.Linear(6, 5)(x)
    result = vb.gradcheck(vb.Model(x, [vb.Linear(5, 3)(vb.Tanh()(h)), h]), device=device)
    assert {"y[0]", "y[1]", "d0.weight"} <= set(result.gpu)
