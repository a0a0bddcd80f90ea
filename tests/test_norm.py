"""BatchNorm1d, BatchNorm2d and LayerNorm: the float64 reference vs central finite differences; the
GPU vs the reference on drawn shapes, in training and eval mode, running statistics included; both
vs PyTorch (float64 modules, momentum=None too); bit-identical repeats; bad arguments and shapes
rejected before any GPU work; lavapipe's loop limit; SGD steps of normalised networks through the
Trainer vs PyTorch, eval-mode predict and the state_dict round trip."""

import math
import types

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import vkbackprop as vb
from vkbackprop.device import Device
from vkbackprop.gradcheck import run_layer
from vkbackprop.layers.base import LayerIO
from vkbackprop.layers.norm import BatchNorm1d, BatchNorm2d, LayerNorm
from vkbackprop.reference import norm as ref
from vkbackprop.reference.layers import numerical_gradient
from oracles import assert_bitwise_equal, assert_close, check_barriers_exact, no_gpu_work, rel_err, torch_twin

F = torch.nn.functional
SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
BN_STATE = ("running_mean", "running_var", "num_batches_tracked")


# --- the float64 reference vs central differences -------------------------------------------


def check_against_differences(forward, backward, x, params, dy):
    """backward(x, dy) = (dx, dweight, dbias) vs central differences of sum(dy * forward(x, w, b))."""
    w, b = params
    dx, dw, db = backward(x, dy)
    loss = lambda x_, w_, b_: np.sum(dy * forward(x_, w_, b_))
    assert_close(dx, numerical_gradient(lambda v: loss(v, w, b), x), 1e-6, "dx")
    assert_close(dw, numerical_gradient(lambda v: loss(x, v, b), w), 1e-6, "dweight")
    assert_close(db, numerical_gradient(lambda v: loss(x, w, v), b), 1e-6, "dbias")


@pytest.mark.parametrize("training", [True, False], ids=["batch statistics", "running statistics"])
@pytest.mark.parametrize("shape", [(5, 3), (3, 2, 4), (2, 3, 2, 3)], ids=str)
def test_batch_norm_reference_matches_finite_differences(rng, shape, training):
    x, dy = rng.normal(1.0, 2.0, shape), rng.standard_normal(shape)
    w, b = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    running = {} if training else {"running_mean": rng.standard_normal(shape[1]),
                                   "running_var": rng.uniform(0.5, 2.0, shape[1])}
    check_against_differences(lambda x_, w_, b_: ref.batch_norm_forward(x_, w_, b_, 1e-3, **running),
                              lambda x_, dy_: ref.batch_norm_backward(x_, dy_, w, 1e-3, **running), x, (w, b), dy)


@pytest.mark.parametrize("shape, ndim", [((4, 6), 1), ((2, 3, 5), 1), ((2, 3, 4), 2)], ids=str)
def test_layer_norm_reference_matches_finite_differences(rng, shape, ndim):
    x, dy = rng.normal(-1.0, 2.0, shape), rng.standard_normal(shape)
    w, b = rng.standard_normal(shape[-ndim:]), rng.standard_normal(shape[-ndim:])
    check_against_differences(lambda x_, w_, b_: ref.layer_norm_forward(x_, ndim, w_, b_, 1e-3),
                              lambda x_, dy_: ref.layer_norm_backward(x_, dy_, ndim, w, 1e-3), x, (w, b), dy)


def test_running_update_reference():
    """The unbiased variance, momentum as PyTorch's (new = (1 - m) * old + m * batch), and
    momentum=None: the cumulative average over the batches tracked so far."""
    x = np.array([[1.0, 10.0], [3.0, 10.0], [5.0, 16.0]])   # means 3, 12; unbiased variances 4, 12
    mean, var, count = ref.batch_norm_running_update(x, [1.0, 2.0], [1.0, 2.0], 0, momentum=0.25)
    np.testing.assert_allclose(mean, [1.5, 4.5]) and np.testing.assert_allclose(var, [1.75, 4.5])
    assert count.dtype == np.int64 and count.shape == () and count == 1
    mean, var, count = ref.batch_norm_running_update(x, [1.0, 2.0], [1.0, 2.0], 3, momentum=None)
    np.testing.assert_allclose(mean, [1.5, 4.5]) and np.testing.assert_allclose(var, [1.75, 4.5])
    assert count == 4


# --- the GPU vs the reference ---------------------------------------------------------------


def random_params(rng, layer) -> dict:
    return {k: rng.normal(0.0, 1.5, v.shape).astype(np.float32) for k, v in layer.parameters().items()}


def random_state(rng, layer) -> dict:
    state = layer.buffers()
    if state:
        state = {"running_mean": rng.standard_normal(state["running_mean"].shape).astype(np.float32),
                 "running_var": rng.uniform(0.3, 3.0, state["running_var"].shape).astype(np.float32),
                 "num_batches_tracked": np.array(rng.integers(0, 5), np.int64)}
    return state


def expected(layer, x, shape, params, state, dy, training):
    """The float64 reference for the layer as run_layer runs it, on flat (batch, width) arrays: y, dx,
    grads {param: gradient}, state (after forward), and for tolerances xhat (the normalised input)
    and invstd (the largest 1 / sqrt(var + eps) used)."""
    xs, dys = x.reshape(len(x), *shape), dy.reshape(len(x), *shape)
    w, b = params.get("weight"), params.get("bias")
    if isinstance(layer, LayerNorm):
        ndim = len(layer.normalized_shape)
        y, xhat = (ref.layer_norm_forward(xs, ndim, *p, layer.eps) for p in ((w, b), (None, None)))
        dx, dw, db = ref.layer_norm_backward(xs, dys, ndim, w, layer.eps)
        var = xs.astype(np.float64).var(axis=tuple(range(xs.ndim - ndim, xs.ndim)))
    else:
        frozen = not training and bool(state)    # eval mode with running statistics
        running = {"running_mean": state["running_mean"], "running_var": state["running_var"]} if frozen else {}
        y, xhat = (ref.batch_norm_forward(xs, *p, layer.eps, **running) for p in ((w, b), (None, None)))
        dx, dw, db = ref.batch_norm_backward(xs, dys, w, layer.eps, **running)
        var = state["running_var"] if frozen else xs.astype(np.float64).var(axis=(0, *range(2, xs.ndim)))
        if training and state:
            state = dict(zip(BN_STATE, ref.batch_norm_running_update(xs, *(state[k] for k in BN_STATE),
                                                                     layer.momentum)))
    return types.SimpleNamespace(y=y.reshape(x.shape), dx=dx.reshape(x.shape), state=state,
                                 grads={k: v for k, v in (("weight", dw), ("bias", db)) if k in params},
                                 xhat=xhat.reshape(x.shape), invstd=float(np.max(1 / np.sqrt(var + layer.eps))))


def check_layer(device, rng, layer, shape, batch, training, need_dx=True, offset=0.0, scale=1.0):
    """The layer run on the GPU (random input, parameters, state and upstream gradient, never all
    ones) vs the reference. Tolerances are relative to each quantity's size before cancellation:
    (|x| + |mean|) * invstd * |weight| for y, |dy * weight| * invstd for dx, the sum of its terms'
    magnitudes for a parameter gradient."""
    x = rng.normal(offset, scale, (batch, math.prod(shape))).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    params, state = random_params(rng, layer), random_state(rng, layer)
    y, dx, grads, new_state = run_layer(device, layer, x, params, dy, need_dx=need_dx, shapes=[shape], state=state,
                                        training=training, return_state=True)
    want = expected(layer, x, shape, params, state, dy, training)
    # y = (x - mean) * invstd * weight + bias: x - mean keeps fp32's error of |x| and |mean|, which
    # invstd magnifies where a channel's values lie close together (e.g. two values near -2.6).
    frozen = not training and "running_mean" in state
    mean = np.abs(state["running_mean"]).max() if frozen else np.abs(x).max()
    weight = np.abs(params.get("weight", 1.0)).max()
    before = (np.abs(x).max() + mean) * want.invstd * weight
    assert_close(y, want.y, 2e-5 * max(np.abs(want.y).max(), 1.0) + 1e-6 * before, "y")
    if need_dx:
        assert_close(dx, want.dx, 2e-5 * np.abs(dy).max() * weight * want.invstd, "dx")
    else:
        assert dx is None
    assert list(grads) == list(want.grads)
    for name, grad in want.grads.items():   # each entry sums |terms| / grad.size of them, on average
        terms = np.abs(dy * want.xhat) if name == "weight" else np.abs(dy)
        assert_close(grads[name], grad, 1e-5 * terms.sum() / grad.size + 1e-6, f"d{name}")
    assert list(new_state) == list(want.state)
    for name, value in want.state.items():   # (run_layer returns the counter as the device's uint32)
        assert_close(new_state[name], value, 1e-6 * (1 + np.abs(value)), name)


@st.composite
def batch_norm_cases(draw):
    kind = draw(st.sampled_from(["(C,)", "(C, L)", "(C, H, W)"]))
    channels = draw(st.integers(1, 5))
    rest = {"(C,)": (), "(C, L)": (draw(st.integers(1, 70)),),
            "(C, H, W)": (draw(st.integers(1, 19)), draw(st.integers(1, 19)))}[kind]
    batch, training, track = draw(st.integers(1, 5)), draw(st.booleans()), draw(st.booleans())
    assume(batch * math.prod(rest) > 1 or not (training or not track))   # else a ValueError (tested below)
    layer = (BatchNorm2d if kind == "(C, H, W)" else BatchNorm1d)(
        channels, eps=draw(st.sampled_from([1e-5, 1e-3])), momentum=draw(st.sampled_from([0.1, 0.7, None])),
        affine=draw(st.booleans()), track_running_stats=track, bias=draw(st.booleans()))
    return layer, (channels, *rest), batch, training, draw(st.booleans() | st.just(True))


@SETTINGS
@given(case=batch_norm_cases(), offset=st.floats(-3, 3), scale=st.floats(0.5, 3))
def test_batch_norm_gpu_matches_reference(device, rng, case, offset, scale):
    layer, shape, batch, training, need_dx = case
    check_layer(device, rng, layer, shape, batch, training, need_dx, offset, scale)


@pytest.mark.parametrize("training", [True, False], ids=["batch statistics", "running statistics"])
@pytest.mark.parametrize("layer, shape, batch", [
    (BatchNorm2d(4), (4, 4, 6), 2),                            # 24 values a plane: runs of 2 quads of one channel
    (BatchNorm2d(2), (2, 16, 16), 3),                          # 64 quads a plane: runs of an invocation's quads
    (BatchNorm2d(3), (3, 4, 8), 4),                            # 8 quads a plane: the reductions' runs of 4, two a plane
    (BatchNorm2d(2), (2, 32, 32), 5),                          # 1280 quads a channel: several runs an invocation
    (BatchNorm2d(3, affine=False), (3, 2, 2), 3),              # one quad a plane, no parameters bound
    (BatchNorm2d(3, bias=False), (3, 5, 5), 3),                # 25 a plane: quads across channels, a 3-value tail
    (BatchNorm1d(6), (6,), 5),                                  # one value a channel: every quad across channels
    (BatchNorm1d(2, affine=False), (2, 6), 1),                 # 6 a row: quads across the two channels
], ids=repr)
@pytest.mark.parametrize("texel_reads", ["0", "1"])   # the reductions' quads as texels (lavapipe's default) or not
def test_batch_norm_quads(device, rng, monkeypatch, layer, shape, batch, training, texel_reads):
    """The batch norm shaders work on quads of 4 values: of one channel where a plane holds whole
    quads (in runs within a plane: the elementwise ones load its parameters once a run, the
    reductions read 4 quads a loop iteration), else each value with its own channel's, and the
    last 0-3 values alone."""
    monkeypatch.setenv("VKBACKPROP_TEXEL_READS", texel_reads)
    check_layer(device, rng, layer, shape, batch, training, need_dx=True, offset=0.5, scale=2.0)


@SETTINGS
@given(lead=st.lists(st.integers(1, 4), max_size=2), normalized=st.lists(st.integers(1, 150), min_size=1, max_size=2),
       batch=st.integers(1, 4), affine=st.booleans(), bias=st.booleans(), training=st.booleans(),
       need_dx=st.booleans() | st.just(True), offset=st.floats(-3, 3), scale=st.floats(0.5, 3))
def test_layer_norm_gpu_matches_reference(device, rng, lead, normalized, batch, affine, bias, training, need_dx,
                                          offset, scale):
    assume(math.prod(normalized) <= 400)
    layer = LayerNorm(tuple(normalized), eps=1e-4, elementwise_affine=affine, bias=bias)
    check_layer(device, rng, layer, (*lead, *normalized), batch, training, need_dx, offset, scale)


@pytest.mark.parametrize("per_row", [True, False], ids=["invocation per row", "workgroup per row"])
@pytest.mark.parametrize("layer, shape, batch", [
    (LayerNorm(8), (8,), 5),
    (LayerNorm((3, 4)), (2, 3, 4), 3),
    (LayerNorm(12, elementwise_affine=False), (12,), 4),
    (LayerNorm(16, bias=False), (16,), 2),
    (LayerNorm(4), (4,), 1),
    (LayerNorm(10), (10,), 3),          # rows of no whole quads: a workgroup per row either way
], ids=repr)
def test_layer_norm_row_forms(device, rng, monkeypatch, dispatches, per_row, layer, shape, batch):
    """Both forms of the row passes on any device (a CPU device takes the invocation per row, a GPU
    the workgroups), and the parameter gradients on quads of columns where rows hold whole quads."""
    monkeypatch.setattr(Device, "prefers_invocation_per_row", property(lambda self: per_row))
    check_layer(device, rng, layer, shape, batch, training=True, need_dx=True, offset=0.5, scale=2.0)
    quads = math.prod(layer.normalized_shape) % 4 == 0
    rows = "_rows" if per_row and quads else ""
    want = {f"layernorm/forward{rows}.comp", f"layernorm/backward_input{rows}.comp"}
    if layer.elementwise_affine:
        want.add(f"layernorm/backward_param{'_quads' if quads else ''}.comp")
    assert {d.program.path for d in dispatches if d.program.path.startswith("layernorm/")} == want


def test_batch_norm_eval_mode_takes_a_single_value_per_channel(device, rng):
    """Eval mode normalises with the running statistics: one sample of (C,) is fine."""
    check_layer(device, rng, BatchNorm1d(3), (3,), 1, training=False)


# --- vs PyTorch -----------------------------------------------------------------------------


def torch_module(layer):
    """The torch.nn module `layer` stands for (same arguments), float64."""
    if isinstance(layer, LayerNorm):
        return torch.nn.LayerNorm(layer.normalized_shape, layer.eps, layer.elementwise_affine, layer.bias).double()
    kind = torch.nn.BatchNorm2d if isinstance(layer, BatchNorm2d) else torch.nn.BatchNorm1d
    return kind(layer.num_features, layer.eps, layer.momentum, layer.affine, layer.track_running_stats,
                bias=layer.bias).double()


@pytest.mark.parametrize("layer, shape, batch", [
    (BatchNorm1d(5), (5,), 7),
    (BatchNorm1d(3, momentum=None, eps=1e-3), (3, 9), 4),
    (BatchNorm1d(4, affine=False), (4, 6), 3),
    (BatchNorm2d(3, momentum=0.3), (3, 7, 5), 4),
    (BatchNorm2d(2, momentum=None, bias=False), (2, 4, 6), 3),
    (BatchNorm2d(3, track_running_stats=False), (3, 5, 5), 2),
    (LayerNorm(10), (10,), 5),
    (LayerNorm((4, 6), eps=1e-3), (3, 4, 6), 2),
    (LayerNorm(7, elementwise_affine=False), (2, 7), 3),
    (LayerNorm(9, bias=False), (9,), 4),
], ids=repr)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_matches_torch_module(device, rng, layer, shape, batch, training):
    """GPU and reference vs the float64 torch module with the same parameters and buffers, in
    train() and eval(): output, input and parameter gradients, and the buffers after forward."""
    module = torch_module(layer).train(training)
    params, state = random_params(rng, layer), random_state(rng, layer)
    module.load_state_dict({k: torch.tensor(v) for k, v in {**params, **state}.items()})
    x = rng.normal(0.5, 2.0, (batch, math.prod(shape))).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    xt = torch.tensor(x, dtype=torch.float64).reshape(batch, *shape).requires_grad_()
    yt = module(xt)
    yt.backward(torch.tensor(dy, dtype=torch.float64).reshape(xt.shape))
    want_y = yt.detach().numpy().reshape(x.shape)
    want_grads = {k: p.grad.numpy() for k, p in module.named_parameters()}
    want_state = {k: v.numpy() for k, v in module.state_dict().items() if k in BN_STATE}

    reference = expected(layer, x, shape, params, state, dy, training)
    assert_close(reference.y, want_y, 1e-10, "reference y")
    assert_close(reference.dx, xt.grad.numpy().reshape(x.shape), 1e-9, "reference dx")
    for k in want_grads:
        assert_close(reference.grads[k], want_grads[k], 1e-9, f"reference d{k}")
    for k in want_state:
        assert_close(reference.state[k], want_state[k], 1e-12, f"reference {k}")

    y, dx, grads, new_state = run_layer(device, layer, x, params, dy, shapes=[shape], state=state, training=training,
                                        return_state=True)
    tol = lambda want: 1e-4 * max(np.abs(want).max(), 1.0)
    assert_close(y, want_y, tol(want_y), "y")
    assert_close(dx, xt.grad.numpy().reshape(x.shape), tol(xt.grad.numpy()), "dx")
    assert list(grads) == list(want_grads)
    for k in want_grads:
        assert_close(grads[k], want_grads[k], tol(want_grads[k]), f"d{k}")
    assert list(new_state) == list(want_state)
    for k in want_state:
        assert new_state[k].shape == want_state[k].shape
        assert_close(new_state[k], want_state[k], tol(want_state[k]), k)


@pytest.mark.parametrize("layer, shape", [
    (BatchNorm1d(8), (8,)), (BatchNorm1d(3, eps=1e-3, momentum=None, affine=False), (3, 5)),
    (BatchNorm2d(4, momentum=0.5, track_running_stats=False, bias=False), (4, 3, 2)),
    (LayerNorm(5), (2, 5)), (LayerNorm([2, 3], eps=1e-6, bias=False), (2, 3)),
    (LayerNorm((4,), elementwise_affine=False), (4,))], ids=repr)
def test_repr_state_and_output_shape_like_torch(layer, shape):
    """repr, the parameters and buffers (names, order, dtypes, shapes, initial values) and the
    output shape are torch's."""
    twin = torch_module(layer).float()
    assert repr(layer) == repr(twin)
    got, want = {**layer.parameters(), **layer.buffers()}, twin.state_dict()
    assert list(got) == list(want)
    for k, v in want.items():
        assert got[k].dtype == v.numpy().dtype and got[k].shape == tuple(v.shape), k
        np.testing.assert_array_equal(got[k], v.numpy())
    assert layer.output_shape(shape) == tuple(twin(torch.ones(2, *shape)).shape[1:])


# --- determinism ----------------------------------------------------------------------------


@pytest.mark.parametrize("layer, shape", [(BatchNorm2d(3, momentum=None), (3, 17, 19)), (LayerNorm((2, 150)), (3, 2, 150))],
                         ids=repr)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_the_same_step_twice_gives_the_same_bits(device, rng, layer, shape, training):
    """Reductions longer than a workgroup (strided partial sums, then the tree): the same input
    gives bit-identical outputs, gradients and running statistics."""
    x = rng.normal(1.0, 2.0, (4, math.prod(shape))).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    params, state = random_params(rng, layer), random_state(rng, layer)
    first, second = (run_layer(device, layer, x, params, dy, shapes=[shape], state=state, training=training,
                               return_state=True) for _ in range(2))
    for a, b in zip(first, second):
        if isinstance(a, dict):
            assert_bitwise_equal(a, b)
        else:
            assert a.tobytes() == b.tobytes()


# --- rejected before any GPU work -----------------------------------------------------------


@pytest.mark.parametrize("make, pattern", [
    (lambda: BatchNorm1d(0), r"^BatchNorm1d: num_features must be a positive int, got 0$"),
    (lambda: BatchNorm2d(2.0), r"^BatchNorm2d: num_features must be a positive int, got 2.0$"),
    (lambda: BatchNorm1d(True), r"num_features must be a positive int, got True"),
    (lambda: BatchNorm1d(3, eps=0), r"^BatchNorm1d: eps must be a positive number, got 0$"),
    (lambda: BatchNorm1d(3, eps=float("nan")), r"eps must be a positive number, got nan"),
    (lambda: BatchNorm2d(3, momentum=1.5), r"^BatchNorm2d: momentum must be None or a number in \[0, 1\], "
                                           r"got 1.5$"),
    (lambda: BatchNorm2d(3, momentum="0.1"), r"momentum must be None or a number in \[0, 1\], got '0.1'"),
    (lambda: BatchNorm1d(3, affine=1), r"^BatchNorm1d: affine must be a bool, got 1$"),
    (lambda: BatchNorm1d(3, track_running_stats=None), r"track_running_stats must be a bool, got None"),
    (lambda: BatchNorm2d(3, bias="no"), r"^BatchNorm2d: bias must be a bool, got 'no'$"),
    (lambda: LayerNorm(0), r"^LayerNorm: normalized_shape must be a positive int or a non-empty tuple of them, got 0$"),
    (lambda: LayerNorm(()), r"normalized_shape .* got \(\)$"),
    (lambda: LayerNorm((3, 0)), r"normalized_shape .* got \(3, 0\)$"),
    (lambda: LayerNorm(4.0), r"normalized_shape .* got 4.0$"),
    (lambda: LayerNorm(4, eps=-1e-5), r"^LayerNorm: eps must be a positive number, got -1e-05$"),
    (lambda: LayerNorm(4, elementwise_affine=None), r"^LayerNorm: elementwise_affine must be a bool, got None$"),
    (lambda: LayerNorm(4, bias=0), r"^LayerNorm: bias must be a bool, got 0$"),
])
def test_bad_arguments_are_rejected(make, pattern):
    with no_gpu_work(), pytest.raises(ValueError, match=pattern):
        make()


@pytest.mark.parametrize("layer, shapes, message", [
    (BatchNorm1d(4), [(3,)], r"^BatchNorm1d\(4, .*\) needs a per-sample shape \(4,\) or \(4, L\), got \(3,\)$"),
    (BatchNorm1d(4), [(4, 2, 2)], r"needs a per-sample shape \(4,\) or \(4, L\), got \(4, 2, 2\)$"),
    (BatchNorm2d(3), [(3, 4)], r"^BatchNorm2d\(3, .*\) needs a per-sample shape \(3, H, W\), got \(3, 4\)$"),
    (BatchNorm2d(3), [(2, 4, 4)], r"needs a per-sample shape \(3, H, W\), got \(2, 4, 4\)$"),
    (LayerNorm((2, 3)), [(3, 2)], r"^LayerNorm\(\(2, 3\), .*\) needs a per-sample shape ending in \(2, 3\), "
                                  r"got \(3, 2\)$"),
    (LayerNorm((2, 3)), [(3,)], r"ending in \(2, 3\), got \(3,\)$"),
    (LayerNorm(3), [(3,), (3,)], r"^LayerNorm\(.*\) takes one input, got 2$"),
], ids=str)
def test_bad_shapes_are_rejected(layer, shapes, message):
    with no_gpu_work(), pytest.raises(ValueError, match=message):
        layer.output_shape(*shapes)


def test_a_model_with_a_bad_shape_is_rejected_before_gpu_work():
    with no_gpu_work(), pytest.raises(ValueError, match=r"needs a per-sample shape \(5,\) or \(5, L\), got \(6,\)"):
        vb.Sequential(vb.Linear(4, 6), BatchNorm1d(5))
    with no_gpu_work(), pytest.raises(ValueError, match=r"needs a per-sample shape \(3, H, W\), got \(12,\)"):
        vb.Sequential(vb.Linear(4, 12), BatchNorm2d(3))


def fake_io(device, batch, shape, training=True):
    """A LayerIO whose buffers are stand-ins with a shape (for planning checks only)."""
    buf = types.SimpleNamespace(shape=(batch, math.prod(shape)), size=batch * math.prod(shape))
    return LayerIO(device, batch, [buf], buf, dy=buf, dxs=[buf], in_shapes=[shape], out_shape=shape,
                   training=training)


@pytest.mark.parametrize("layer, batch, shape, training", [
    (BatchNorm1d(4), 1, (4,), True),
    (BatchNorm2d(2), 1, (2, 1, 1), True),
    (BatchNorm1d(3, track_running_stats=False), 1, (3, 1), False),   # eval mode normalises with the batch's too
], ids=str)
def test_one_value_per_channel_is_rejected_when_planned(device, layer, batch, shape, training):
    with no_gpu_work(), pytest.raises(ValueError, match=r"Expected more than 1 value per channel when training, "
                                                        rf"got input size \({batch}, {', '.join(map(str, shape))}\)"):
        layer.forward(fake_io(device, batch, shape, training))


def test_backward_without_forward_is_rejected(device):
    for layer, shape in [(BatchNorm1d(4), (4,)), (LayerNorm(4), (4,))]:
        with no_gpu_work(), pytest.raises(ValueError, match=r"backward needs the .* saved by forward"):
            layer.backward(fake_io(device, 3, shape))


def test_a_trainer_with_batch_size_one_is_rejected(device):
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        vb.Trainer(vb.Sequential(vb.Linear(3, 4), BatchNorm1d(4)), vb.MSELoss(), vb.SGD(lr=0.1), 1, device=device)


# --- lavapipe's loop limit ------------------------------------------------------------------


@pytest.mark.parametrize("make, unit, loops", [
    (lambda n: (BatchNorm1d(1, affine=False), (1, n)), 256, 2),   # statistics.comp: 2 passes over a channel
    (lambda n: (LayerNorm(n, elementwise_affine=False), (n,)), 64, 3),   # forward.comp: 3 passes over a row
], ids=["BatchNorm1d", "LayerNorm"])
def test_the_longest_reduction_runs_right_and_one_more_step_is_refused(device, rng, make, unit, loops):
    """A workgroup of `unit` invocations reduces with `loops` strided passes and two trees: the
    longest channel (row) the check allows is normalised right on lavapipe (its last `unit` values
    matter), `unit` values more are refused up front."""
    if device.loop_limit is None:
        return
    values = ((device.loop_limit - 2 * unit.bit_length()) // loops - 1) * unit
    layer, shape = make(values)
    x = rng.standard_normal((1, values)).astype(np.float32)
    x[0, -unit:] = 100.0
    y, _, _ = run_layer(device, layer, x, {}, rng.standard_normal(x.shape), need_dx=False, shapes=[shape])
    want = (x - x.astype(np.float64).mean()) / np.sqrt(x.astype(np.float64).var() + layer.eps)
    assert_close(y, want, 1e-4, "y")
    layer, shape = make(values + unit)
    with no_gpu_work(), pytest.raises(ValueError, match=r"needs \d+ loop iterations per shader invocation"):
        layer.forward(fake_io(device, 1, shape))


def test_the_longest_row_on_quads_runs_right_and_one_quad_more_takes_workgroups(device, rng, monkeypatch,
                                                                                 dispatches):
    """An invocation per row runs 3 loops of COLS / 4 in forward (each exit counts once more): the
    longest row within the loop limit runs in that form right up to its last quad; one quad more
    goes to the workgroup form, which still fits."""
    if device.loop_limit is None:
        return
    monkeypatch.setattr(Device, "prefers_invocation_per_row", property(lambda self: True))
    longest = 4 * (device.loop_limit // 3 - 1)
    for cols, program in ((longest, "layernorm/forward_rows.comp"), (longest + 4, "layernorm/forward.comp")):
        x = rng.standard_normal((1, cols)).astype(np.float32)
        x[0, -4:] = 100.0
        dispatches.clear()
        y, _, _ = run_layer(device, LayerNorm(cols, elementwise_affine=False), x, {}, rng.standard_normal(x.shape),
                            need_dx=False, shapes=[(cols,)])
        want = (x - x.astype(np.float64).mean()) / np.sqrt(x.astype(np.float64).var() + 1e-5)
        assert_close(y, want, 1e-4, f"y of a row of {cols}")
        assert program in {d.program.path for d in dispatches}


# --- through the Trainer, vs PyTorch --------------------------------------------------------


def trainer_case(name):
    """(model, torch twin in float64, input shape): the same network both ways."""
    nn = torch.nn
    if name == "BatchNorm1d":
        return (vb.Sequential(vb.Linear(6, 8), BatchNorm1d(8), vb.ReLU(), vb.Linear(8, 3)),
                nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)), (6,))
    if name == "BatchNorm2d":
        return (vb.Sequential(BatchNorm2d(2, momentum=None), vb.Flatten(), vb.Linear(30, 3), input_shape=(2, 3, 5)),
                nn.Sequential(nn.BatchNorm2d(2, momentum=None), nn.Flatten(), nn.Linear(30, 3)), (2, 3, 5))
    return (vb.Sequential(vb.Linear(6, 8), LayerNorm(8), vb.ReLU(), vb.Linear(8, 3)),
            nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 3)), (6,))


def check_step(trainer, twin, x, y, shape):
    """One SGD step of the trainer and of its float64 torch twin on (x, y): the loss, the gradients
    and every state_dict entry (running statistics included) agree within 1e-4 relative. Gradients
    have an absolute floor of 1e-6: a Linear bias feeding batch norm has an exactly zero gradient,
    of which both sides compute rounding noise."""
    twin.zero_grad()
    want = F.mse_loss(twin(torch.tensor(x, dtype=torch.float64).reshape(len(x), *shape)), torch.tensor(y).double())
    want.backward()
    torch.optim.SGD(twin.parameters(), lr=trainer.optimizer.lr).step()
    assert abs(trainer.step(x, y) - want.item()) <= 1e-4 * want.item()
    grads = trainer.gradients()
    for name, p in twin.named_parameters():
        assert_close(grads[name], p.grad.numpy(), 1e-4 * np.abs(p.grad.numpy()).max() + 1e-6, f"d{name}")
    state = trainer.model.state_dict()
    for name, value in twin.state_dict().items():
        assert rel_err(state[name], value.numpy()) <= 1e-4, name


def perturbed(state: dict, rng) -> dict:
    """The state_dict with random normalisation weights (1-D weights: Linear's are 2-D) and running
    statistics, and 2 batches tracked (momentum=None then averages over 3, 4, ... batches)."""
    def change(key, v):
        if key.endswith(".weight") and v.ndim == 1:
            return rng.normal(1.0, 0.5, v.shape).astype(np.float32)
        if key.endswith(".running_mean"):
            return rng.standard_normal(v.shape).astype(np.float32)
        if key.endswith(".running_var"):
            return rng.uniform(0.5, 2.0, v.shape).astype(np.float32)
        return np.array(2, np.int64) if key.endswith(".num_batches_tracked") else v
    return {k: change(k, v) for k, v in state.items()}


@pytest.mark.parametrize("name", ["BatchNorm1d", "BatchNorm2d", "LayerNorm"])
def test_sgd_steps_predict_and_state_dict_match_torch(device, rng, name):
    """Three SGD steps (losses, gradients, parameters and running statistics within 1e-4 relative),
    then predict in eval mode vs the twin's eval(), and the state_dict into torch and back."""
    vb.manual_seed(3)
    model, twin, shape = trainer_case(name)
    model.load_state_dict(perturbed(model.state_dict(), rng))
    twin = torch_twin(twin, model, torch.float64)
    batch = 5
    trainer = vb.Trainer(model, vb.MSELoss(), vb.SGD(lr=0.1), batch, device=device)
    for _ in range(3):
        x = rng.normal(0.5, 2.0, (batch, math.prod(shape))).astype(np.float32)
        check_step(trainer, twin, x, rng.standard_normal((batch, 3)).astype(np.float32), shape)
    check_barriers_exact(trainer.plan.train.log)
    check_barriers_exact(trainer.plan.predict.log)

    x = rng.normal(0.5, 2.0, (7, math.prod(shape))).astype(np.float32)   # 7 rows: a padded last chunk
    with torch.no_grad():
        want = twin.eval()(torch.tensor(x, dtype=torch.float64).reshape(7, *shape)).numpy()
    np.testing.assert_allclose(trainer.predict(x), want, rtol=1e-4, atol=1e-5)

    state = model.state_dict()
    torch_state = torch_twin(trainer_case(name)[1], model).state_dict()   # loaded into a fresh float32 twin
    assert list(state) == list(torch_state)
    for k, v in torch_state.items():
        assert state[k].dtype == v.numpy().dtype and state[k].shape == tuple(v.shape), k
        np.testing.assert_array_equal(state[k], v.numpy())
    changed = {k: v.numpy() + 1 if v.dtype != torch.int64 else v.numpy() * 2 + 1 for k, v in torch_state.items()}
    model.load_state_dict(changed)
    assert_bitwise_equal(model.state_dict(), {k: v.astype(state[k].dtype) for k, v in changed.items()})
