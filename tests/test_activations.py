"""LeakyReLU, Sigmoid, Tanh and GELU (both forms), with PyTorch semantics.

Three oracles: the float64 reference (itself checked against central finite differences and against
PyTorch), PyTorch autograd in float64, and a whole SGD step of a small model in PyTorch. Inputs span
ten orders of magnitude with random signs, exact zeros of both signs and extreme values; upstream
gradients are random (never all ones), so a backward that ignores dy, or scales it wrongly, fails.

Tolerance (fp32 vs float64), per element: |got - want| <= RTOL * |want| + ATOL * s, with s = 1 for
outputs and s = |dy| for input gradients:
- RTOL = 5e-7 (~8 float32 ulps): the special functions are within ~5 ulp (see
  test_special_functions_are_float32_accurate), plus one or two roundings in the layer;
- ATOL = 3e-7 absolute, i.e. ~2.5 ulps of 1: sigmoid/tanh backward use the *saved float32 output*
  (PyTorch's convention), so 1 - y near saturation carries y's absolute rounding error; and
  GELU(approximate='tanh') evaluates u = sqrt(2/pi) (x + 0.044715 x^3) in float32 like PyTorch, a
  relative error that grows with |u| but only where y itself is tiny.
"""

import math
import shutil
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vkbackprop as vb
from vkbackprop import reference as ref
from vkbackprop.gradcheck import run_layer
from vkbackprop.schedule import Recorder
from vkbackprop.shaders import compile_shader, shader_root
from oracles import assert_close, check_step_against_twin, torch_autograd, torch_twin

RTOL, ATOL = 5e-7, 3e-7
SIZES = st.sampled_from([1, 2, 3, 7, 13, 64, 257])
SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@dataclass
class Case:
    make: Callable            # -> vkbackprop layer
    torch_module: Callable    # -> the torch.nn equivalent
    forward: Callable         # reference forward(x)
    backward: Callable        # reference backward(x, dy)


def _case(make, torch_module, name, **kw):
    return Case(make, torch_module, lambda x: getattr(ref, f"{name}_forward")(x, **kw),
                lambda x, dy: getattr(ref, f"{name}_backward")(x, dy, **kw))


CASES = {
    "LeakyReLU()": _case(lambda: vb.LeakyReLU(), lambda: torch.nn.LeakyReLU(), "leaky_relu"),
    "LeakyReLU(0.2)": _case(lambda: vb.LeakyReLU(0.2), lambda: torch.nn.LeakyReLU(0.2), "leaky_relu",
                            negative_slope=0.2),
    # A negative slope: the output's sign no longer tells the input's, so backward must use x.
    "LeakyReLU(-1.5)": _case(lambda: vb.LeakyReLU(-1.5), lambda: torch.nn.LeakyReLU(-1.5), "leaky_relu",
                             negative_slope=-1.5),
    "Sigmoid()": _case(vb.Sigmoid, torch.nn.Sigmoid, "sigmoid"),
    "Tanh()": _case(vb.Tanh, torch.nn.Tanh, "tanh"),
    "GELU()": _case(vb.GELU, torch.nn.GELU, "gelu"),
    "GELU('tanh')": _case(lambda: vb.GELU("tanh"), lambda: torch.nn.GELU("tanh"), "gelu", approximate="tanh"),
}
ALL = pytest.mark.parametrize("name", list(CASES))


def assert_fp32_close(got, want, scale, what: str):
    """|got - want| <= RTOL |want| + ATOL scale, elementwise (oracles.assert_close: got finite)."""
    want = np.asarray(want, np.float64)
    assert_close(got, want, RTOL * np.abs(want) + ATOL * np.asarray(scale, np.float64), what)


def draw_inputs(rng, shape):
    """Magnitudes log-uniform over 1e-4 .. 30 with random signs (every branch of every shader), and
    the kink at exactly +0 and -0."""
    x = rng.choice([-1.0, 1.0], shape) * 10.0 ** rng.uniform(-4, 1.5, shape)
    x.flat[0] = 0.0
    if x.size > 1:
        x.flat[-1] = -0.0
    return x.astype(np.float32)


def torch_oracle(case: Case, x, dy):
    """PyTorch autograd in float64: (y, dL/dx) for upstream gradient dy."""
    return torch_autograd(case.torch_module(), x, dy)


# --- the oracle itself ----------------------------------------------------------------------------
@ALL
def test_reference_backward_matches_finite_differences(name, rng):
    case = CASES[name]
    x = rng.choice([-1.0, 1.0], (3, 5)) * 10.0 ** rng.uniform(-2, 0.8, (3, 5))   # away from the kink at 0
    dy = rng.standard_normal((3, 5))
    numeric = ref.numerical_gradient(lambda v: np.sum(dy * case.forward(v)), x)
    np.testing.assert_allclose(case.backward(x, dy), numeric, rtol=1e-6, atol=1e-8)


@ALL
def test_reference_matches_torch_float64(name, rng):
    case = CASES[name]
    x = np.concatenate([draw_inputs(rng, (200,)).astype(np.float64),
                        [0.0, -0.0, 1e-30, -1e-30, 40.0, -40.0, 1e4, -1e4, 3e38, -3e38]])
    dy = rng.standard_normal(x.shape)
    y, dx = torch_oracle(case, x, dy)
    # atol: PyTorch's tanh-GELU forms 1 + tanh(u), which cancels (~1e-16 absolute) for negative x.
    np.testing.assert_allclose(case.forward(x), y, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(case.backward(x, dy), dx, rtol=1e-12, atol=1e-14)


# --- the shaders ----------------------------------------------------------------------------------
@ALL
@SETTINGS
@given(batch=SIZES, width=SIZES, seed=st.integers(0, 2**31))
def test_gpu_matches_reference(device, name, batch, width, seed):
    case = CASES[name]
    rng = np.random.default_rng(seed)
    x = draw_inputs(rng, (batch, width))
    dy = rng.standard_normal((batch, width)).astype(np.float32)
    y, dx, grads = run_layer(device, case.make(), x, {}, dy)
    assert grads == {}
    assert_fp32_close(y, case.forward(x), 1.0, "y")
    assert_fp32_close(dx, case.backward(x, dy), np.abs(dy), "dx")


@ALL
@pytest.mark.parametrize("numel", [1, 3, 4, 5, 7, 1023, 4097])
def test_quads_and_tail(device, name, numel):
    """The shaders work on quads (common/unary_quads.glsl) and the 0-3 elements after them one by
    one: against the reference on sizes around multiples of 4."""
    case, rng = CASES[name], np.random.default_rng(numel)
    x = draw_inputs(rng, (1, numel))
    dy = rng.standard_normal((1, numel)).astype(np.float32)
    y, dx, _ = run_layer(device, case.make(), x, {}, dy)
    assert_fp32_close(y, case.forward(x), 1.0, f"y, {numel} values")
    assert_fp32_close(dx, case.backward(x, dy), np.abs(dy), f"dx, {numel} values")


@ALL
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=SIZES, width=SIZES, seed=st.integers(0, 2**31))
def test_gpu_matches_torch_autograd(device, name, batch, width, seed):
    case = CASES[name]
    rng = np.random.default_rng(seed)
    x = draw_inputs(rng, (batch, width))
    dy = rng.standard_normal((batch, width)).astype(np.float32)
    y, dx, _ = run_layer(device, case.make(), x, {}, dy)
    want_y, want_dx = torch_oracle(case, x, dy)
    assert_fp32_close(y, want_y, 1.0, "y")
    assert_fp32_close(dx, want_dx, np.abs(dy), "dx")


EXTREMES = [0.0, -0.0, 1e-30, -1e-30, 1.0, -1.0, 10.0, -10.0, 100.0, -100.0, 1e4, -1e4, 1e30, -1e30]


@ALL
def test_extreme_inputs_are_finite_and_correct(device, name, rng):
    case = CASES[name]
    layer = case.make()
    unbounded = isinstance(layer, vb.LeakyReLU) and abs(layer.negative_slope) > 1   # |y| > |x|: FLT_MAX overflows
    x = np.array([EXTREMES + ([] if unbounded else [3.4e38, -3.4e38])], np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    y, dx, _ = run_layer(device, layer, x, {}, dy)
    assert_fp32_close(y, case.forward(x), 1.0, "y")
    assert_fp32_close(dx, case.backward(x, dy), np.abs(dy), "dx")
    want_y, want_dx = torch_oracle(case, x, dy)
    assert_fp32_close(y, want_y, 1.0, "y vs torch")
    assert_fp32_close(dx, want_dx, np.abs(dy), "dx vs torch")

    at = {v: i for i, v in reversed(list(enumerate(EXTREMES)))}   # +0.0 and -0.0 are one key: index 0
    neg0 = 1
    assert x[0, neg0] == 0 and np.signbit(x[0, neg0])
    if isinstance(layer, vb.LeakyReLU):
        slope = np.float32(layer.negative_slope)
        assert y[0, at[-1e4]] == np.float32(-1e4) * slope
        assert dx[0, at[0.0]] == dy[0, at[0.0]] * slope and dx[0, neg0] == dy[0, neg0] * slope   # torch: slope at 0
        assert dx[0, at[1e4]] == dy[0, at[1e4]]
    elif isinstance(layer, vb.Sigmoid):
        assert (y[0, at[-1e4]], y[0, at[1e4]], y[0, at[0.0]]) == (0.0, 1.0, 0.5)
        assert dx[0, at[1e4]] == 0 and dx[0, at[-1e4]] == 0
        assert dx[0, at[0.0]] == dy[0, at[0.0]] * np.float32(0.25)
    elif isinstance(layer, vb.Tanh):
        assert (y[0, at[1e4]], y[0, at[-1e4]], y[0, at[100.0]], y[0, at[-100.0]]) == (1.0, -1.0, 1.0, -1.0)
        assert y[0, neg0] == 0 and np.signbit(y[0, neg0])          # tanh(-0) = -0
        assert y[0, at[1e-30]] == np.float32(1e-30)               # no cancellation near 0
        assert dx[0, at[1e4]] == 0 and dx[0, at[0.0]] == dy[0, at[0.0]]
    else:  # GELU, both forms
        assert y[0, at[1e4]] == np.float32(1e4) and dx[0, at[1e4]] == dy[0, at[1e4]]
        assert y[0, at[-1e4]] == 0 and np.signbit(y[0, at[-1e4]])  # -0, like PyTorch
        assert dx[0, at[-1e4]] == 0
        assert dx[0, at[0.0]] == dy[0, at[0.0]] * np.float32(0.5)  # gelu'(0) = 1/2 exactly
        assert y[0, -1] == 0 and y[0, -2] == np.float32(3.4e38)   # FLT_MAX: no overflow inside


@pytest.mark.parametrize("name", ["LeakyReLU(0.2)", "Sigmoid()", "Tanh()", "GELU()"])
def test_first_layer_without_input_gradient(device, name, rng):
    """As the first layer of a model nothing needs dL/dx: backward records nothing, forward is intact."""
    case = CASES[name]
    x = draw_inputs(rng, (7, 13))
    y, dx, _ = run_layer(device, case.make(), x, {}, rng.standard_normal((7, 13)).astype(np.float32), need_dx=False)
    assert dx is None
    assert_fp32_close(y, case.forward(x), 1.0, "y")


# --- the special functions of shaders/common/erf.glsl on dense grids ------------------------------
PROBE = """#version 450
#extension GL_GOOGLE_include_directive : require
#include "common/erf.glsl"
layout(constant_id = 0) const uint NUMEL = 1;
layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };
layout(local_size_x = 256) in;
#include "common/index.glsl"
void main() {
    const uint i = flat_index();
    if (i < NUMEL) y[i] = FUNC(x[i]);
}
"""


def _grid(lo, hi, n=400_001):
    """A dense uniform grid plus log-spaced magnitudes down to 1e-30, both signs where in range."""
    tiny = np.geomspace(1e-30, 1.0, 20_001)
    extra = np.concatenate([tiny, -tiny])
    return np.concatenate([np.linspace(lo, hi, n), extra[(extra >= lo) & (extra <= hi)]]).astype(np.float32)


_erf, _erfc = np.frompyfunc(math.erf, 1, 1), np.frompyfunc(math.erfc, 1, 1)
SPECIAL = {  # function: (grid, float64 truth, max error in float32 ulps of the true value)
    "vkb_exp": (_grid(-87.3, 0.0), np.exp, 2.0),
    "vkb_erf": (_grid(-10.0, 10.0), lambda x: _erf(x).astype(np.float64), 1.5),
    "vkb_erfc": (_grid(-10.0, 10.0), lambda x: _erfc(x).astype(np.float64), 6.0),
    "vkb_normal_cdf": (_grid(-14.0, 14.0), lambda x: 0.5 * _erfc(-x / math.sqrt(2)).astype(np.float64), 6.0),
    "vkb_normal_pdf": (_grid(-14.0, 14.0), lambda x: np.exp(-x * x / 2) / math.sqrt(2 * math.pi), 4.0),
    "vkb_sigmoid": (_grid(-90.0, 90.0), lambda x: np.where(x >= 0, 1.0, np.exp(-np.abs(x))) / (1 + np.exp(-np.abs(x))), 3.0),
    "vkb_tanh": (_grid(-20.0, 20.0), np.tanh, 2.0),
}


@pytest.mark.parametrize("func", list(SPECIAL))
def test_special_functions_are_float32_accurate(device, tmp_path, func):
    """Relative accuracy in ulps over the whole range, tails included (erfc and the normal CDF keep
    it down to FLT_MIN; below that results flush to 0, which is allowed)."""
    (tmp_path / "common").mkdir()
    for include in ("erf.glsl", "index.glsl"):
        shutil.copy(shader_root() / "common" / include, tmp_path / "common" / include)
    (tmp_path / "probe.comp").write_text(PROBE)
    program = compile_shader("probe.comp", {"FUNC": func}, root=tmp_path)
    x, truth, max_ulps = SPECIAL[func]
    xb, yb = device.buffer("x", x.shape, staged=True), device.buffer("y", x.shape, staged=True)
    xb.host_view()[...] = x
    rec = Recorder(device)
    rec.upload([xb])
    rec.dispatch(device.dispatch(program, {"x": xb, "y": yb}, device.grid_1d(x.size, 256), {"NUMEL": x.size}))
    rec.download([yb])
    rec.sequence.eval()
    got = yb.host_view().astype(np.float64)
    want = truth(x.astype(np.float64))
    tiny = np.finfo(np.float32).tiny
    assert np.isfinite(got).all()
    assert (np.abs(got[np.abs(want) < tiny]) < 2 * tiny).all()   # flushed (or denormal)
    normal = np.abs(want) >= tiny
    ulps = np.abs(got[normal] - want[normal]) / np.spacing(np.abs(want[normal]).astype(np.float32))
    worst = np.argmax(ulps)
    assert ulps[worst] <= max_ulps, f"{func}({x[normal][worst]!r}) = {got[normal][worst]!r}, want {want[normal][worst]!r}: {ulps[worst]:.2f} ulps"


# --- layers as parts of a model -------------------------------------------------------------------
@ALL
@pytest.mark.parametrize("loss_name", ["mse", "cross_entropy"])
def test_one_sgd_step_matches_pytorch(device, rng, name, loss_name):
    case = CASES[name]
    batch, lr = 13, 0.1
    vb.manual_seed(7)
    model = vb.Sequential(vb.Linear(5, 7), case.make(), vb.Linear(7, 3))
    loss = vb.MSELoss() if loss_name == "mse" else vb.CrossEntropyLoss()
    trainer = vb.Trainer(model, loss=loss, optimizer=vb.SGD(lr=lr), batch_size=batch, device=device)
    x = (3 * rng.standard_normal((batch, 5))).astype(np.float32)   # pre-activations well into the curved part
    y = rng.standard_normal((batch, 3)).astype(np.float32) if loss_name == "mse" else rng.integers(0, 3, batch)

    reference = torch_twin(torch.nn.Sequential(torch.nn.Linear(5, 7), case.torch_module(), torch.nn.Linear(7, 3)),
                           model)
    out = reference(torch.from_numpy(x))
    target = torch.from_numpy(y)
    want_loss = (torch.nn.functional.mse_loss(out, target) if loss_name == "mse"
                 else torch.nn.functional.cross_entropy(out, target))
    check_step_against_twin(trainer, x, y, reference, want_loss)
    assert repr(model) == repr(reference)


# --- construction ---------------------------------------------------------------------------------
@pytest.mark.parametrize("make, torch_make", [
    (lambda: vb.LeakyReLU(), lambda: torch.nn.LeakyReLU()),
    (lambda: vb.LeakyReLU(0.2), lambda: torch.nn.LeakyReLU(0.2)),
    (lambda: vb.LeakyReLU(1), lambda: torch.nn.LeakyReLU(1)),
    (lambda: vb.LeakyReLU(negative_slope=-0.5), lambda: torch.nn.LeakyReLU(negative_slope=-0.5)),
    (lambda: vb.Sigmoid(), lambda: torch.nn.Sigmoid()),
    (lambda: vb.Tanh(), lambda: torch.nn.Tanh()),
    (lambda: vb.GELU(), lambda: torch.nn.GELU()),
    (lambda: vb.GELU(approximate="tanh"), lambda: torch.nn.GELU(approximate="tanh")),
])
def test_repr_and_defaults_like_torch(make, torch_make):
    assert repr(make()) == repr(torch_make())


def test_numpy_scalar_slope_is_accepted():
    layer = vb.LeakyReLU(np.float32(0.25))
    assert layer.negative_slope == 0.25 and repr(layer) == "LeakyReLU(negative_slope=0.25)"


@pytest.mark.parametrize("bad", ["0.1", None, True, float("nan"), float("inf"), -float("inf"), 1e39, [0.1], 1j])
def test_leaky_relu_rejects_bad_slopes(bad):
    with pytest.raises(ValueError, match="negative_slope"):
        vb.LeakyReLU(bad)


@pytest.mark.parametrize("bad", ["exact", "Tanh", "", None, True, 0])
def test_gelu_rejects_bad_approximation(bad):
    with pytest.raises(ValueError, match="approximate"):
        vb.GELU(bad)
    with pytest.raises(ValueError, match="approximate"):
        ref.gelu_forward(np.zeros(2), bad)


def test_activations_are_exported():
    for cls in ("LeakyReLU", "Sigmoid", "Tanh", "GELU"):
        assert cls in vb.__all__ and isinstance(getattr(vb, cls)(), vb.Module)
    for fn in ("leaky_relu", "sigmoid", "tanh", "gelu"):
        assert f"{fn}_forward" in ref.__all__ and f"{fn}_backward" in ref.__all__


def test_checker_can_fail():
    """Negative control: the elementwise comparison rejects a 1e-6 relative error (on values above ~1)
    and accepts 1e-7."""
    want = np.linspace(-3, 3, 50)
    with pytest.raises(AssertionError, match="worst at"):
        assert_fp32_close(want * (1 + 1e-6), want, 1.0, "y")
    assert_fp32_close(want * (1 + 1e-7), want, 1.0, "y")
