"""Pooling layers (MaxPool2d, AvgPool2d, AdaptiveAvgPool2d): the float64 reference vs central finite
differences; the GPU vs the reference and vs PyTorch autograd on drawn geometries (odd sizes,
overlapping windows, padding, dilation, ceil_mode); ties and NaN like PyTorch; bad arguments and
shapes rejected before any GPU work; lavapipe's loop limit; one SGD step of small pooling
networks vs PyTorch."""

import math
import re
import types

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import vkbackprop as vb
from vkbackprop.gradcheck import run_layer
from vkbackprop.layers.pool import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from vkbackprop.layers.base import LayerIO
from vkbackprop.reference import pool as ref
from vkbackprop.reference.layers import numerical_gradient
from oracles import assert_close, check_step_against_twin, no_gpu_work, torch_autograd, torch_twin

F = torch.nn.functional
SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# --- the same layer three ways: vkbackprop's reference, PyTorch, and the GPU -------------------


def reference(layer):
    """(forward, backward) of the float64 reference for `layer`, on (B, C, H, W) arrays:
    forward(x) -> y, backward(x, dy) -> dx."""
    if isinstance(layer, MaxPool2d):
        args = (layer.kernel_size, layer.stride, layer.padding, layer.dilation, layer.ceil_mode)
        return (lambda x: ref.max_pool2d_forward(x, *args)[0],
                lambda x, dy: ref.max_pool2d_backward(dy, ref.max_pool2d_forward(x, *args)[1], x.shape))
    if isinstance(layer, AvgPool2d):
        args = (layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode, layer.count_include_pad,
                layer.divisor_override)
        return (lambda x: ref.avg_pool2d_forward(x, *args), lambda x, dy: ref.avg_pool2d_backward(dy, x.shape, *args))
    return (lambda x: ref.adaptive_avg_pool2d_forward(x, layer.output_size),
            lambda x, dy: ref.adaptive_avg_pool2d_backward(dy, x.shape, layer.output_size))


def torch_function(layer):
    """The torch.nn.functional call `layer` stands for."""
    if isinstance(layer, MaxPool2d):
        return lambda t: F.max_pool2d(t, layer.kernel_size, layer.stride, layer.padding, layer.dilation,
                                      layer.ceil_mode)
    if isinstance(layer, AvgPool2d):
        return lambda t: F.avg_pool2d(t, layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode,
                                      layer.count_include_pad, layer.divisor_override)
    return lambda t: F.adaptive_avg_pool2d(t, layer.output_size)


def torch_module(layer):
    """The torch.nn module `layer` stands for (same arguments)."""
    if isinstance(layer, MaxPool2d):
        return torch.nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding, layer.dilation,
                                  ceil_mode=layer.ceil_mode)
    if isinstance(layer, AvgPool2d):
        return torch.nn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode,
                                  layer.count_include_pad, layer.divisor_override)
    return torch.nn.AdaptiveAvgPool2d(layer.output_size)


def distinct_values(rng, shape, dtype=np.float32):
    """Values in [-2, 2) that are pairwise at least 4 / size apart: no ties, and every maximum
    is separated from the runner-up by far more than a finite-difference step."""
    n = math.prod(shape)
    return ((rng.permutation(n) - n / 2) * (4 / n)).reshape(shape).astype(dtype)


def upstream(rng, shape):
    """A random upstream gradient (never all ones), bounded away from 0."""
    return (rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)).astype(np.float32)


def check_gpu(device, rng, layer, batch, shape, x=None):
    """The layer on the GPU vs the reference and vs PyTorch autograd (float64). Tolerances: a k-term
    float32 sum is within ~sqrt(k) rounding errors of its terms' magnitude; max pooling's forward
    selects an input, so it is exact."""
    c, h, w = shape
    out_shape = layer.output_shape(shape)
    x = distinct_values(rng, (batch, c * h * w)) if x is None else x
    dy = upstream(rng, (batch, math.prod(out_shape)))
    y, dx, grads = run_layer(device, layer, x, {}, dy, shapes=[shape])
    assert grads == {}

    x4, dy4 = x.reshape(batch, *shape).astype(np.float64), dy.reshape(batch, *out_shape).astype(np.float64)
    forward, backward = reference(layer)
    want_y, want_dx = forward(x4).reshape(y.shape), backward(x4, dy4).reshape(dx.shape)
    torch_y, torch_dx = torch_autograd(torch_function(layer), x4, dy4)
    terms = h * w   # an upper bound on any window's size and on the outputs holding one input
    tol_y = 2e-6 * math.sqrt(terms + 1) * max(1.0, np.abs(want_y).max())
    tol_dx = 2e-6 * math.sqrt(terms + 1) * max(1.0, np.abs(want_dx).max())
    if isinstance(layer, MaxPool2d):
        np.testing.assert_array_equal(y, want_y.astype(np.float32))
    assert_close(y, want_y, tol_y, f"{layer!r} y")
    assert_close(dx, want_dx, tol_dx, f"{layer!r} dx")
    assert_close(y, torch_y.reshape(y.shape), tol_y, f"{layer!r} y vs torch")
    assert_close(dx, torch_dx.reshape(dx.shape), tol_dx, f"{layer!r} dx vs torch")
    return y, dx


def pooling_programs(dispatches) -> set:
    """The pooling shaders the test ran: which backward a geometry takes."""
    return {d.program.path for d in dispatches if d.program.path.split("/")[0] in POOLING}


POOLING = {"maxpool2d", "avgpool2d", "adaptive_avgpool2d"}


def expected_programs(layer, quads: bool) -> set:
    """Forward, and backward on quads (windows that do not overlap, rows of whole quads) or with
    its covering loops."""
    return {layer.forward_shader, layer.backward_quads_shader if quads else layer.backward_shader}


# --- drawn geometries -------------------------------------------------------------------------


@st.composite
def sliding(draw, dilation: bool):
    """Per axis: kernel 1..4, stride 1..kernel+1 (overlapping windows when below the kernel),
    padding up to kernel // 2, dilation 1..3 (max pooling); an input size from a window's span
    minus the padding up to 8 more (odd sizes included); ceil_mode either way."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = tuple(draw(st.integers(1, k + 1)) for k in kernel)
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dilations = tuple(draw(st.integers(1, 3)) if dilation else 1 for _ in kernel)
    sizes = tuple(max(1, d * (k - 1) + 1 - 2 * p) + draw(st.integers(0, 8))
                  for k, p, d in zip(kernel, padding, dilations))
    args = dict(kernel_size=kernel, stride=None if stride == kernel and draw(st.booleans()) else stride,
                padding=padding, ceil_mode=draw(st.booleans()))
    return args, dilations, sizes


BATCH_CHANNELS = dict(batch=st.sampled_from([1, 2, 3]), channels=st.sampled_from([1, 2, 5]))


def valid(layer, shape) -> bool:
    try:
        layer.output_shape(shape)
        return True
    except ValueError:
        return False


@SETTINGS
@given(geometry=sliding(dilation=True), **BATCH_CHANNELS, seed=st.integers(0, 2**31))
@example(geometry=(dict(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), ceil_mode=True), (1, 1), (7, 9)),
         batch=1, channels=2, seed=0)                                       # the ResNet stem's pooling
@example(geometry=(dict(kernel_size=(3, 2), stride=(1, 1), padding=(1, 1), ceil_mode=False), (2, 3), (9, 11)),
         batch=2, channels=1, seed=1)                                       # overlap and dilation
def test_max_pool_gpu(device, geometry, batch, channels, seed):
    args, dilation, (h, w) = geometry
    layer = MaxPool2d(**args, dilation=dilation)
    assume(valid(layer, (channels, h, w)))
    check_gpu(device, np.random.default_rng(seed), layer, batch, (channels, h, w))


@SETTINGS
@given(geometry=sliding(dilation=False), **BATCH_CHANNELS, count_include_pad=st.booleans(),
       divisor_override=st.sampled_from([None, None, 1, 5]), seed=st.integers(0, 2**31))
@example(geometry=(dict(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), ceil_mode=True), (1, 1), (8, 9)),
         batch=1, channels=2, count_include_pad=True, divisor_override=None, seed=0)   # window past the padding
def test_avg_pool_gpu(device, geometry, batch, channels, count_include_pad, divisor_override, seed):
    args, _, (h, w) = geometry
    layer = AvgPool2d(**args, count_include_pad=count_include_pad, divisor_override=divisor_override)
    assume(valid(layer, (channels, h, w)))
    check_gpu(device, np.random.default_rng(seed), layer, batch, (channels, h, w))


@SETTINGS
@given(size=st.tuples(st.integers(1, 13), st.integers(1, 13)),
       output_size=st.one_of(st.integers(1, 6), st.tuples(st.integers(1, 15), st.integers(1, 15)),
                             st.tuples(st.none(), st.integers(1, 4))),
       **BATCH_CHANNELS, seed=st.integers(0, 2**31))
@example(size=(7, 9), output_size=1, batch=1, channels=2, seed=0)           # global average pooling
@example(size=(5, 3), output_size=(3, 7), batch=2, channels=1, seed=1)      # overlapping and repeated windows
def test_adaptive_avg_pool_gpu(device, size, output_size, batch, channels, seed):
    check_gpu(device, np.random.default_rng(seed), AdaptiveAvgPool2d(output_size), batch, (channels, *size))


@pytest.mark.parametrize("layer, shape, quads", [
    (MaxPool2d(3, stride=2, padding=1, ceil_mode=True), (2, 7, 8), False),
    (MaxPool2d(2), (2, 6, 8), True),
], ids=str)
def test_max_pool_ties_and_nan_follow_torch(device, rng, dispatches, layer, shape, quads):
    """Ties go to the first maximum in window order (torch on the CPU) and a NaN wins its window,
    also where windows overlap. Inputs from {0, 1, 2}: every window has ties."""
    x = rng.integers(0, 3, (2, math.prod(shape))).astype(np.float32)
    check_gpu(device, rng, layer, 2, shape, x=x)
    x[0, [5, 17, 40]] = np.nan
    dy = upstream(rng, (2, math.prod(layer.output_shape(shape))))
    y, dx, _ = run_layer(device, layer, x, {}, dy, shapes=[shape])
    torch_y, torch_dx = torch_autograd(torch_function(layer), x.reshape(2, *shape),
                                       dy.reshape(2, *layer.output_shape(shape)))
    np.testing.assert_array_equal(y, torch_y.reshape(y.shape).astype(np.float32))   # NaN where torch has NaN
    assert_close(dx, torch_dx.reshape(dx.shape), 1e-6, "dx with NaN inputs")
    assert pooling_programs(dispatches) == expected_programs(layer, quads)


def test_backward_is_deterministic_with_overlapping_windows(device, rng):
    layer = AvgPool2d(3, stride=1, padding=1)
    x, dy = rng.standard_normal((3, 2 * 9 * 9)).astype(np.float32), upstream(rng, (3, 2 * 9 * 9))
    runs = [run_layer(device, layer, x, {}, dy, shapes=[(2, 9, 9)])[1] for _ in range(2)]
    assert runs[0].tobytes() == runs[1].tobytes()


# --- backward on quads (windows that do not overlap, rows of whole quads) ----------------------


@pytest.mark.parametrize("layer, shape, quads", [
    (MaxPool2d(2), (3, 8, 8), True),
    (MaxPool2d(2), (2, 7, 12), True),                                    # the last row in no window
    (MaxPool2d(3), (2, 9, 16), True),                                    # windows straddle quads; a column left out
    (MaxPool2d(3, padding=1, ceil_mode=True), (1, 8, 8), True),          # shifted windows, the last one clipped
    (MaxPool2d((2, 3), stride=(3, 4), padding=(1, 1)), (2, 10, 12), True),    # gaps between windows
    (MaxPool2d(2, stride=3, dilation=2), (1, 9, 8), True),               # holes inside windows
    (MaxPool2d(2, padding=1), (2, 6, 8), True),                          # a quad meets 3 windows
    (MaxPool2d(1), (1, 4, 4), True),                                     # 4 windows
    (MaxPool2d(1, stride=2), (2, 6, 8), True),
    (MaxPool2d(2), (2, 8, 10), False),                                   # rows of no whole quads
    (MaxPool2d(3, stride=2), (2, 9, 8), False),                          # overlapping windows
    (MaxPool2d(2, stride=2, dilation=2), (2, 8, 8), False),              # overlapping through dilation
    (AvgPool2d(2), (3, 8, 8), True),
    (AvgPool2d(3, padding=1, ceil_mode=True, count_include_pad=False), (1, 8, 8), True),   # clipped divisors
    (AvgPool2d(3, padding=1), (2, 9, 12), True),                         # the padding in the divisor
    (AvgPool2d((2, 3), stride=(3, 4), padding=(1, 1), divisor_override=5), (2, 10, 12), True),
    (AvgPool2d(2), (2, 8, 10), False),
    (AvgPool2d(3, stride=2), (2, 9, 8), False),
    (AdaptiveAvgPool2d(1), (3, 5, 8), True),                             # global pooling
    (AdaptiveAvgPool2d((2, 4)), (2, 6, 8), True),                        # sizes that divide
    (AdaptiveAvgPool2d((None, 2)), (2, 3, 4), True),                     # one axis kept
    (AdaptiveAvgPool2d(3), (2, 7, 8), False),                            # 7 over 3: windows overlap
    (AdaptiveAvgPool2d(1), (2, 4, 6), False),
], ids=str)
def test_backward_program(device, rng, dispatches, layer, shape, quads):
    check_gpu(device, rng, layer, 2, shape)
    assert pooling_programs(dispatches) == expected_programs(layer, quads)


@st.composite
def disjoint_windows(draw):
    """Max or average pooling (no dilation) whose windows do not overlap. Per axis: kernel 1..3,
    dilation 1..2, a stride past the window's span by 0..2, padding up to kernel // 2; a height of
    1..12 past the span, a width of whole quads."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    stride = tuple((k - 1) * d + 1 + draw(st.integers(0, 2)) for k, d in zip(kernel, dilation))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    h = max(1, (kernel[0] - 1) * dilation[0] + 1 - 2 * padding[0]) + draw(st.integers(0, 11))
    w = 4 * draw(st.integers(1, 5))
    if draw(st.booleans()):
        return MaxPool2d(kernel, stride, padding, dilation, ceil_mode=draw(st.booleans())), (h, w)
    stride = tuple(s - (k - 1) * (d - 1) for s, k, d in zip(stride, kernel, dilation))   # no dilation
    return AvgPool2d(kernel, stride, padding, ceil_mode=draw(st.booleans()), count_include_pad=draw(st.booleans()),
                     divisor_override=draw(st.sampled_from([None, None, 3]))), (h, w)


@SETTINGS
@given(geometry=disjoint_windows(), **BATCH_CHANNELS, seed=st.integers(0, 2**31))
def test_backward_on_quads_fuzzed(device, dispatches, geometry, batch, channels, seed):
    layer, (h, w) = geometry
    assume(valid(layer, (channels, h, w)))
    dispatches.clear()
    check_gpu(device, np.random.default_rng(seed), layer, batch, (channels, h, w))
    assert pooling_programs(dispatches) == expected_programs(layer, quads=True)


# --- the reference against finite differences ---------------------------------------------


@pytest.mark.parametrize("layer", [
    MaxPool2d(3, stride=2, padding=1, ceil_mode=True), MaxPool2d((2, 3), stride=1, dilation=(2, 1)),
    AvgPool2d(3, stride=2, padding=1, ceil_mode=True), AvgPool2d(3, 2, 1, count_include_pad=False),
    AvgPool2d(2, 1, 1, divisor_override=3), AdaptiveAvgPool2d((2, 4)), AdaptiveAvgPool2d(1),
], ids=repr)
def test_reference_backward_matches_finite_differences(rng, layer):
    shape = (2, 2, 5, 7)
    x = distinct_values(rng, shape, np.float64)
    forward, backward = reference(layer)
    dy = upstream(rng, forward(x).shape).astype(np.float64)
    fd = numerical_gradient(lambda v: np.sum(dy * forward(v)), x)
    assert_close(backward(x, dy), fd, 1e-7, f"{layer!r} reference dx vs finite differences")


# --- arguments, shapes, repr ----------------------------------------------------------------


@pytest.mark.parametrize("make, message", [
    (lambda: MaxPool2d(0), "MaxPool2d: kernel_size must be an int >= 1 or a pair of them, got 0"),
    (lambda: MaxPool2d((2,)), "MaxPool2d: kernel_size must be an int >= 1 or a pair of them, got (2,)"),
    (lambda: MaxPool2d(2.0), "MaxPool2d: kernel_size must be an int >= 1 or a pair of them, got 2.0"),
    (lambda: MaxPool2d(True), "MaxPool2d: kernel_size must be an int >= 1 or a pair of them, got True"),
    (lambda: MaxPool2d(2, stride=0), "MaxPool2d: stride must be an int >= 1 or a pair of them, got 0"),
    (lambda: MaxPool2d(2, padding=-1), "MaxPool2d: padding must be an int >= 0 or a pair of them, got -1"),
    (lambda: MaxPool2d(3, padding=(1, 2)),
     "MaxPool2d: padding must be at most half the kernel size (<= (1, 1)), got (1, 2)"),
    (lambda: MaxPool2d(2, dilation=(1, 0)), "MaxPool2d: dilation must be an int >= 1 or a pair of them, got (1, 0)"),
    (lambda: MaxPool2d(2, ceil_mode=1), "MaxPool2d: ceil_mode must be a bool, got 1"),
    (lambda: AvgPool2d(2, count_include_pad="yes"), "AvgPool2d: count_include_pad must be a bool, got 'yes'"),
    (lambda: AvgPool2d(2, divisor_override=0), "AvgPool2d: divisor_override must be None or an int >= 1, got 0"),
    (lambda: AvgPool2d(4, padding=3), "AvgPool2d: padding must be at most half the kernel size (<= (2, 2)), got 3"),
    (lambda: AdaptiveAvgPool2d(0), "AdaptiveAvgPool2d: output_size must be an int >= 1 or a pair of them "
                                   "(None: the input's size), got 0"),
    (lambda: AdaptiveAvgPool2d((2, 3, 4)), "AdaptiveAvgPool2d: output_size must be .*, got (2, 3, 4)"),
    (lambda: AdaptiveAvgPool2d(None), "AdaptiveAvgPool2d: output_size must be .*, got None"),
])
def test_bad_arguments_are_rejected(make, message):
    pattern = "^" + ".*".join(re.escape(part) for part in message.split(".*")) + "$"
    with no_gpu_work(), pytest.raises(ValueError, match=pattern):
        make()


@pytest.mark.parametrize("layer, shapes, message", [
    (MaxPool2d(2), [(12,)], r"^MaxPool2d\(.*\) needs a \(C, H, W\) input, got per-sample shape \(12,\)$"),
    (AvgPool2d(2), [(3, 4)], r"needs a \(C, H, W\) input, got per-sample shape \(3, 4\)$"),
    (AdaptiveAvgPool2d(1), [(1, 2, 2), (1, 2, 2)], r"takes one input, got 2$"),
    (MaxPool2d(3), [(1, 2, 2)], r"^MaxPool2d\(.*\): a \(1, 2, 2\) input gives an empty \(1, 0, 0\) output$"),
    (AvgPool2d((1, 3)), [(2, 4, 2)], r"gives an empty \(2, 4, 0\) output$"),
    (MaxPool2d(2, stride=1, padding=1, dilation=2), [(1, 1, 3)],
     r"on an input of size 1, window 0 along H covers only padding$"),
])
def test_bad_shapes_are_rejected(layer, shapes, message):
    with no_gpu_work(), pytest.raises(ValueError, match=message):
        layer.output_shape(*shapes)


def test_a_model_with_a_bad_shape_is_rejected_before_gpu_work():
    with no_gpu_work(), pytest.raises(ValueError, match=r"^Sequential: layer 0 \(MaxPool2d\(.*\)\) cannot follow "
                                                        r"the input: .*gives an empty"):
        vb.Sequential(MaxPool2d(5), vb.Flatten(), input_shape=(3, 4, 4))
    with no_gpu_work(), pytest.raises(ValueError, match=r"needs a \(C, H, W\) input"):
        vb.Sequential(vb.Linear(4, 12), MaxPool2d(2))


def test_repr_and_output_shape_like_torch():
    for layer in [MaxPool2d(2), MaxPool2d((3, 2), stride=(2, 1), padding=1, dilation=(1, 2), ceil_mode=True),
                  AvgPool2d(3, 2, 1), AvgPool2d((2, 4), padding=(1, 0), count_include_pad=False),
                  AdaptiveAvgPool2d(1), AdaptiveAvgPool2d((None, 3))]:
        twin = torch_module(layer)
        assert repr(layer) == repr(twin)
        assert layer.parameters() == {}
        assert layer.output_shape((3, 11, 10)) == tuple(twin(torch.zeros(1, 3, 11, 10)).shape[1:])


# --- lavapipe's loop limit ----------------------------------------------------------------


def fake_io(device, batch, in_shape, out_shape):
    """A LayerIO whose buffers are stand-ins with a shape (for planning checks only)."""
    buf = lambda shape: types.SimpleNamespace(shape=(batch, math.prod(shape)), size=batch * math.prod(shape))
    return LayerIO(device, batch, [buf(in_shape)], buf(out_shape), dy=buf(out_shape), dxs=[buf(in_shape)],
                   in_shapes=[in_shape], out_shape=out_shape)


def test_global_pooling_runs_right_up_to_the_loop_limit(device, rng):
    """Global average pooling of an H x W plane loops H * (W + 2) + 1 times per invocation (inner
    iterations, one exit per row, the rows, the outer exit): the widest such plane the check allows
    is pooled right on lavapipe (its last column matters), one column more is refused up front."""
    if device.loop_limit is None:
        return
    layer = AdaptiveAvgPool2d(1)
    widest = (device.loop_limit - 1) // 2 - 2          # 2 rows
    x = rng.standard_normal((1, 2 * widest)).astype(np.float32)
    x[0, [widest - 1, -1]] = 1e4
    y, dx, _ = run_layer(device, layer, x, {}, np.full((1, 1), 0.5, np.float32), shapes=[(1, 2, widest)])
    assert_close(y, [[x.astype(np.float64).mean()]], 1e-6 * 2e4, "mean of the widest plane")
    np.testing.assert_array_equal(dx, np.full_like(x, np.float32(0.5) / np.float32(2 * widest)))
    with no_gpu_work(), pytest.raises(ValueError, match=rf"AdaptiveAvgPool2d\(output_size=1\) forward on a "
                                                        rf"\(1, 2, {widest + 1}\) input needs 65537 loop "
                                                        rf"iterations .*stops loops after 65535"):
        layer.forward(fake_io(device, 1, (1, 2, widest + 1), (1, 1, 1)))


# --- in a model, through the Trainer, vs PyTorch --------------------------------------------


@pytest.mark.parametrize("pool", [MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
                                  AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
                                  AdaptiveAvgPool2d((2, 3))], ids=repr)
def test_one_sgd_step_matches_torch(device, rng, pool):
    """Linear -> (C, H, W) -> pool -> Linear: the pool's backward feeds the first Linear's gradient.
    Loss, gradients and updated weights agree with a float64 PyTorch twin (relative 1e-4)."""
    batch, features, shape, classes = 4, 6, (3, 7, 9), 5
    pooled = math.prod(pool.output_shape(shape))
    model = vb.Sequential(vb.Linear(features, math.prod(shape)), vb.Reshape(*shape), pool, vb.Flatten(),
                          vb.Linear(pooled, classes))
    twin = torch_twin(torch.nn.Sequential(torch.nn.Linear(features, math.prod(shape)), torch.nn.Unflatten(1, shape),
                                          torch_module(pool), torch.nn.Flatten(), torch.nn.Linear(pooled, classes)),
                      model, torch.float64)
    trainer = vb.Trainer(model, vb.CrossEntropyLoss(), vb.SGD(lr=0.1), batch, device=device)
    x = rng.standard_normal((batch, features)).astype(np.float32)
    y = rng.integers(0, classes, batch)
    want = F.cross_entropy(twin(torch.tensor(x, dtype=torch.float64)), torch.tensor(y))
    check_step_against_twin(trainer, x, y, twin, want)


def test_pooling_first_model_trains_and_predicts_like_torch(device, rng):
    """A model that starts with pooling (input_shape given; no gradient flows into the input):
    one step and then prediction (the inference sequence reuses the forward) match PyTorch."""
    batch, shape, classes = 3, (2, 6, 5), 4
    model = vb.Sequential(MaxPool2d(2), AvgPool2d(2, stride=1, padding=1), AdaptiveAvgPool2d((2, 2)), vb.Flatten(),
                          vb.Linear(8, classes), input_shape=shape)
    twin = torch_twin(torch.nn.Sequential(torch.nn.MaxPool2d(2), torch.nn.AvgPool2d(2, 1, 1),
                                          torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(8, classes)),
                      model, torch.float64)
    trainer = vb.Trainer(model, vb.CrossEntropyLoss(), vb.SGD(lr=0.1), batch, device=device)
    x = distinct_values(rng, (batch, math.prod(shape)))
    y = rng.integers(0, classes, batch)
    want = F.cross_entropy(twin(torch.tensor(x, dtype=torch.float64).reshape(batch, *shape)), torch.tensor(y))
    check_step_against_twin(trainer, x, y, twin, want)
    with torch.no_grad():
        want = twin(torch.tensor(x, dtype=torch.float64).reshape(batch, *shape)).numpy()
    np.testing.assert_allclose(trainer.predict(x), want, rtol=1e-4, atol=1e-5)
