"""Conv2d: the float64 reference vs central finite differences; the GPU vs the reference and vs
PyTorch autograd on drawn geometries (odd sizes, stride, padding incl. 'same', dilation, groups,
batch 1, 1x1 kernels, bias on/off), on either GEMM core (the vec4 + subgroup-shuffle core takes
geometries whose rows split into quads: its own list and fuzz); the split-K weight and bias
gradients; bad arguments and shapes rejected before any GPU work; one SGD step of a small CNN vs
PyTorch."""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vkbackprop as vb
from vkbackprop.gradcheck import run_layer
from vkbackprop.layers import conv as conv_module
from vkbackprop.layers.base import LayerIO
from vkbackprop.layers import gemm_shuffle
from vkbackprop.layers.conv import Conv2d
from vkbackprop.reference import conv as ref
from vkbackprop.reference.layers import numerical_gradient
from oracles import assert_close, check_step_against_twin, no_gpu_work, torch_twin

F = torch.nn.functional
SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def torch_args(layer):
    return dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups)


def upstream(rng, shape):
    """A random upstream gradient (never all ones)."""
    return rng.standard_normal(shape).astype(np.float32)


def assert_sum_close(got, want, k: int, what: str):
    """fp32 vs float64: the error of a k-term sum grows like sqrt(k) times the magnitude of its terms."""
    assert_close(got, want, 2e-6 * math.sqrt(k + 1) * max(1.0, float(np.abs(want).max())), what)


def check_gpu(device, rng, layer, batch, shape, need_dx=True):
    """The layer on the GPU vs the float64 reference and vs PyTorch autograd (float64)."""
    out_shape = layer.output_shape(shape)
    params = {n: rng.standard_normal(v.shape).astype(np.float32) for n, v in layer.parameters().items()}
    x = rng.standard_normal((batch, math.prod(shape))).astype(np.float32)
    dy = upstream(rng, (batch, math.prod(out_shape)))
    y, dx, grads = run_layer(device, layer, x, params, dy, need_dx=need_dx, shapes=[shape])
    assert set(grads) == set(params)

    x4, dy4 = x.reshape(batch, *shape), dy.reshape(batch, *out_shape)
    args = torch_args(layer)
    want_y = ref.conv2d_forward(x4, params["weight"], params.get("bias"), **args)
    want_dx, want_dw, want_db = ref.conv2d_backward(x4, params["weight"], dy4, **args, has_bias=layer.bias)
    t = {n: torch.tensor(v, dtype=torch.float64, requires_grad=True) for n, v in params.items()}
    tx = torch.tensor(x4, dtype=torch.float64, requires_grad=True)
    ty = F.conv2d(tx, t["weight"], t.get("bias"), **args)
    ty.backward(torch.tensor(dy4, dtype=torch.float64))

    # Reduction lengths: in channels x taps (y), out channels x taps (dx), batch x positions (params).
    taps = math.prod(layer.kernel_size)
    k_y, k_dx = shape[0] // layer.groups * taps, out_shape[0] // layer.groups * taps
    k_params = batch * math.prod(out_shape[1:])
    for name, oracle in (("reference", (want_y, want_dx, want_dw, want_db)),
                         ("torch", (ty.detach().numpy(), tx.grad.numpy(), t["weight"].grad.numpy(),
                                    t["bias"].grad.numpy() if layer.bias else None))):
        oy, odx, odw, odb = oracle
        assert_sum_close(y.reshape(oy.shape), oy, k_y, f"{layer!r} y vs {name}")
        if need_dx:
            assert_sum_close(dx.reshape(odx.shape), odx, k_dx, f"{layer!r} dx vs {name}")
        assert_sum_close(grads["weight"], odw, k_params, f"{layer!r} dweight vs {name}")
        if layer.bias:
            assert_sum_close(grads["bias"], odb, k_params, f"{layer!r} dbias vs {name}")
    if not need_dx:
        assert dx is None


# --- the reference against finite differences -------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=3, padding=1),
    dict(kernel_size=(2, 3), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2),
    dict(kernel_size=4, padding="same", dilation=2),   # even kernel: 'same' pads one more at bottom/right
    dict(kernel_size=1, stride=3, groups=4, bias=False),
])
def test_reference_matches_finite_differences(rng, kwargs):
    layer = Conv2d(4, 4, **kwargs)
    args = torch_args(layer)
    x = rng.standard_normal((2, 4, 5, 6))
    p = {n: rng.standard_normal(v.shape) for n, v in layer.parameters().items()}
    dy = rng.standard_normal((2,) + layer.output_shape((4, 5, 6)))
    dx, dw, db = ref.conv2d_backward(x, p["weight"], dy, **args, has_bias=layer.bias)

    def loss(x=x, weight=p["weight"], bias=p.get("bias")):
        return float(np.sum(dy * ref.conv2d_forward(x, weight, bias, **args)))

    np.testing.assert_allclose(dx, numerical_gradient(lambda v: loss(x=v), x.copy()), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dw, numerical_gradient(lambda v: loss(weight=v), p["weight"].copy()),
                               rtol=1e-6, atol=1e-7)
    if layer.bias:
        np.testing.assert_allclose(db, numerical_gradient(lambda v: loss(bias=v), p["bias"].copy()),
                                   rtol=1e-6, atol=1e-7)
    else:
        assert db is None


# --- the GPU against the reference and PyTorch --------------------------------------------------


@st.composite
def geometries(draw):
    """(layer, batch, input shape): per axis kernel 1..4, stride 1..3, padding 0..2 or 'same'/'valid',
    dilation 1..3; groups 1..3 dividing both channel counts; sizes from the dilated kernel up to 6
    more (odd ones included)."""
    groups = draw(st.integers(1, 3))
    c_in, c_out = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 4))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["same", "valid", "pairs"]))
    stride = (1, 1) if padding == "same" else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    if padding == "pairs":
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    size = tuple(d * (k - 1) + 1 + draw(st.integers(0, 6)) for k, d in zip(kernel, dilation))
    layer = Conv2d(c_in, c_out, kernel, stride, padding, dilation, groups, bias=draw(st.booleans()))
    return layer, draw(st.integers(1, 3)), (c_in,) + size


@pytest.mark.filterwarnings("ignore:Using padding='same'")   # torch's note that it pads a copy
@SETTINGS
@given(geometry=geometries(), need_dx=st.booleans(), seed=st.integers(0, 2**31))
def test_gpu_matches_reference_and_torch(device, geometry, need_dx, seed):
    layer, batch, shape = geometry
    check_gpu(device, np.random.default_rng(seed), layer, batch, shape, need_dx)


@pytest.mark.parametrize("kernel", ["auto", "scalar"])
def test_cifar_shaped_layer(device, rng, monkeypatch, kernel):
    """On lavapipe "auto" takes the shuffle core, "scalar" the core GPUs take."""
    monkeypatch.setenv(gemm_shuffle.KERNEL_ENV, kernel)
    layer, batch, shape = Conv2d(16, 32, 3, padding=1), 8, (16, 32, 32)
    assert _gemm_shaders(device, layer, batch, shape) == _expected_shaders(device, "shuffle", "shuffle", "shuffle")
    check_gpu(device, rng, layer, batch, shape)


# --- the vec4 + subgroup-shuffle core ----------------------------------------------------------


def _gemm_shaders(device, layer, batch, shape) -> list:
    """The GEMM shaders of a layer's forward, weight gradient and input gradient, in that order
    (planned only)."""
    io = planned_io(device, layer, batch, shape, need_dx=True)
    names = [d.name for d in layer.forward(io) + layer.backward(io)]
    return [n for n in names if n.split("/")[1].startswith(("forward", "backward_weight", "backward_input"))]


def _expected_shaders(device, forward, weight, input) -> list:
    """The GEMM shaders a layer plans for forward, the weight gradient and the input gradient where
    each pass takes the named variant ("shuffle", "phases", or None for the scalar core), on a device
    that takes the shuffle core (lavapipe, or VKBACKPROP_GEMM_KERNEL=shuffle); elsewhere the scalar core."""
    takes = gemm_shuffle.chosen(device)
    return [f"conv2d/{name}{'_' + variant if takes and variant else ''}.comp"
            for name, variant in (("forward", forward), ("backward_weight", weight), ("backward_input", input))]


S, P = "shuffle", "phases"
# (layer, batch, input shape, the variant each pass takes: forward, weight gradient, input
# gradient). Forward and the weight gradient need out width % 4 == 0, the input gradient in width
# % 4 == 0, the gradients their reductions (group channels x taps) in quads (forward runs its own to
# the next quad) and each pass the images it reads in whole quads. A
# strided input gradient goes by phases with dilation 1, in height and width whole strides, in
# width / stride % 4 == 0 and out channels per group in quads.
SHUFFLE_CASES = [
    (Conv2d(4, 8, 3, padding=1), 2, (4, 6, 8), (S, S, S)),
    (Conv2d(8, 4, 3, stride=2, padding=1, bias=False), 3, (8, 7, 8), (S, S, S)),   # every other column
    (Conv2d(4, 8, 3, stride=2, padding=1), 2, (4, 5, 7), (S, S, None)),   # the last window in the padding
    (Conv2d(4, 4, (2, 3), stride=(1, 3), padding=(0, 2), dilation=(2, 1)), 2, (4, 6, 12), (None, None, S)),
    (Conv2d(4, 8, (3, 1), stride=(2, 3), padding=(1, 0)), 1, (4, 5, 12), (S, S, S)),  # stride 3 along rows
    (Conv2d(6, 8, (3, 2), padding=(1, 2), dilation=(1, 2), groups=2), 2, (6, 7, 12), (None, None, S)),
    (Conv2d(8, 8, 3, padding=2, dilation=2, groups=2), 2, (8, 5, 8), (S, S, S)),
    (Conv2d(4, 4, 4, padding="same", dilation=2), 1, (4, 6, 8), (S, S, S)),   # pads one more right
    (Conv2d(8, 4, 1), 2, (8, 5, 4), (S, S, S)),
    (Conv2d(3, 8, 3, padding=1), 2, (3, 8, 8), (S, S, S)),   # y sums 27 terms: a 28th, zero
    (Conv2d(1, 8, 3, padding=1), 3, (1, 8, 8), (S, S, S)),   # 9 terms
    (Conv2d(3, 4, 7, stride=2, padding=3), 2, (3, 16, 16), (S, S, P)),   # 147 terms, 147 weight gradient columns
    (Conv2d(1, 4, 2), 1, (1, 3, 5), (None, None, None)),   # 4 output columns, but x holds 15 values
    (Conv2d(2, 5, 1), 3, (2, 4, 4), (None, S, None)),   # the weight holds 10 values: not read in quads
    (Conv2d(4, 8, 3, padding=1), 3, (4, 4, 4), (S, S, S)),   # one quad per row, padding on both sides
    (Conv2d(4, 8, 2, stride=2), 1, (4, 8, 16), (S, S, P)),
    (Conv2d(4, 8, 3, stride=2, padding=1), 2, (4, 8, 16), (S, S, P)),   # the ResNet's strided convolution
    (Conv2d(8, 4, 1, stride=2), 2, (8, 4, 8), (S, S, P)),   # the ResNet's projection: odd phases get no tap
    (Conv2d(4, 4, (3, 5), stride=(3, 2), padding=(1, 2)), 2, (4, 6, 8), (S, S, P)),
    (Conv2d(8, 8, 3, stride=2, padding=1, groups=2), 2, (8, 4, 8), (S, S, P)),
    (Conv2d(4, 8, 3, stride=2, padding=(1, 2), dilation=(1, 2)), 1, (4, 8, 8), (S, S, S)),   # dilated: no phases
]


@pytest.mark.parametrize("layer, batch, shape, quads", SHUFFLE_CASES, ids=lambda v: repr(v) if isinstance(v, Conv2d) else None)
def test_shuffle_core_geometries(device, rng, layer, batch, shape, quads):
    """Stride along rows and columns, dilation, groups, padding incl. 'same' with an even kernel, no
    bias, 1x1, batch 1; passes whose shapes do not split into quads take the scalar core."""
    assert _gemm_shaders(device, layer, batch, shape) == _expected_shaders(device, *quads)
    check_gpu(device, rng, layer, batch, shape)


@pytest.mark.parametrize("case", [1, 6, 14], ids=lambda i: repr(SHUFFLE_CASES[i][0]))
def test_shuffle_core_with_storage_buffer_reads(device, rng, monkeypatch, dispatches, case):
    """The shuffle shaders' quads read from storage buffers, as on GPUs (lavapipe reads texel buffers)."""
    monkeypatch.setenv("VKBACKPROP_TEXEL_READS", "0")
    layer, batch, shape, variants = SHUFFLE_CASES[case]
    check_gpu(device, rng, layer, batch, shape)
    shuffle = [d for d in dispatches if "SHARE" in d.constants]
    assert len(shuffle) == 3 * gemm_shuffle.chosen(device)   # forward, dweight, dx
    assert all(dict(d.program.defines).get("TEXEL_READS") == 0 for d in shuffle)


def test_an_infinite_input_reaches_only_the_outputs_whose_windows_hold_it(device, rng):
    """Forward's reduction of 27 terms runs to 28 on the shuffle core: the 28th term's zero weight
    must meet a zero, not the next sample's input (an infinity there would make a NaN)."""
    layer, batch, shape = Conv2d(3, 4, 3, padding=1), 2, (3, 4, 8)
    params = {n: rng.standard_normal(v.shape).astype(np.float32) for n, v in layer.parameters().items()}
    x = rng.standard_normal((batch,) + shape).astype(np.float32)
    x[1, 0, 2, 2] = np.inf    # the 28th term of sample 0's windows reads sample 1's channel 0
    y, _, _ = run_layer(device, layer, x.reshape(batch, -1), params,
                        rng.standard_normal((batch, math.prod(layer.output_shape(shape)))).astype(np.float32),
                        need_dx=False, shapes=[shape])
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(params["weight"]), torch.from_numpy(params["bias"]),
                    padding=1).numpy()
    np.testing.assert_array_equal(np.isfinite(y.reshape(want.shape)), np.isfinite(want))
    assert not np.isfinite(want).all()


@st.composite
def quad_geometries(draw):
    """Geometries every pass of which the shuffle core takes: channels per group in quads, rows of 4 to 12
    columns kept by a stride-1 'same' window along them; along the height any kernel 1..4, stride
    1..3, padding 0..2, dilation 1..3, from 1 row up."""
    groups = draw(st.integers(1, 2))
    c_in, c_out = groups * 4 * draw(st.integers(1, 2)), groups * 4 * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 4)), draw(st.sampled_from([1, 3, 5])))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), dilation[1] * (kernel[1] - 1) // 2)
    stride = (draw(st.integers(1, 3)), 1)
    height = max(1, dilation[0] * (kernel[0] - 1) + 1 - 2 * padding[0]) + draw(st.integers(0, 4))
    layer = Conv2d(c_in, c_out, kernel, stride, padding, dilation, groups, bias=draw(st.booleans()))
    return layer, draw(st.integers(1, 3)), (c_in, height, 4 * draw(st.integers(1, 3)))


@SETTINGS
@given(geometry=quad_geometries(), seed=st.integers(0, 2**31))
def test_shuffle_core_matches_reference_and_torch(device, geometry, seed):
    layer, batch, shape = geometry
    by_phases = layer.stride != (1, 1) and layer.dilation == (1, 1) and shape[1] % layer.stride[0] == 0
    assert _gemm_shaders(device, layer, batch, shape) == _expected_shaders(device, S, S, P if by_phases else S)
    check_gpu(device, np.random.default_rng(seed), layer, batch, shape)


@st.composite
def phase_geometries(draw):
    """Strided geometries whose input gradient goes by phases: strides 1..3 (not both 1), kernels
    1..4, padding 0..2, groups 1..2 with 4 or 8 out channels each and 1..3 in channels; height and
    width whole strides, the width 4 or 8 per stride."""
    stride = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)).filter(lambda s: s != (1, 1)))
    kernel, padding = draw(st.tuples(st.integers(1, 4), st.integers(1, 4))), draw(st.tuples(st.integers(0, 2), st.integers(0, 2)))
    groups = draw(st.integers(1, 2))
    c_in, c_out = groups * draw(st.integers(1, 3)), groups * 4 * draw(st.integers(1, 2))
    rows = -(-max(1, kernel[0] - 2 * padding[0]) // stride[0]) + draw(st.integers(0, 2))   # at least one output row
    layer = Conv2d(c_in, c_out, kernel, stride, padding, groups=groups, bias=draw(st.booleans()))
    return layer, draw(st.integers(1, 2)), (c_in, stride[0] * rows, stride[1] * 4 * draw(st.integers(1, 2)))


@SETTINGS
@given(geometry=phase_geometries(), seed=st.integers(0, 2**31))
def test_input_gradient_by_phases_matches_reference_and_torch(device, geometry, seed):
    layer, batch, shape = geometry
    assert _gemm_shaders(device, layer, batch, shape)[2] == _expected_shaders(device, None, None, P)[2]
    check_gpu(device, np.random.default_rng(seed), layer, batch, shape)


def planned_io(device, layer, batch, shape, need_dx=False):
    """Buffers for one call of `layer`, to plan its dispatches without running them."""
    out = layer.output_shape(shape)
    buf = lambda name, shape: device.buffer(name, shape)
    params = {n: buf(n, v.shape) for n, v in layer.parameters().items()}
    return LayerIO(device, batch, xs=[buf("x", (batch, math.prod(shape)))], y=buf("y", (batch, math.prod(out))),
                   params=params, dy=buf("dy", (batch, math.prod(out))),
                   dxs=[buf("dx", (batch, math.prod(shape))) if need_dx else None],
                   grads={n: buf(f"{n}.grad", v.shape) for n, v in params.items()}, in_shapes=[shape], out_shape=out)


def _recorded_names(device, layer, batch, shape):
    """The dispatches a layer's backward records (planned only: nothing runs)."""
    return [d.name for d in layer.backward(planned_io(device, layer, batch, shape))]


def test_split_reductions(device, rng, monkeypatch):
    """Weight and bias gradients over more terms than a slice: several slices, then their sum."""
    monkeypatch.setattr(conv_module, "GEMM_SLICE_TERMS", 100)
    monkeypatch.setattr(conv_module, "BIAS_SLICE_TERMS", 300)
    layer, batch, shape = Conv2d(4, 6, 3, stride=2, padding=1, groups=2), 5, (4, 15, 13)   # 5 * 8 * 7 = 280 terms
    assert _recorded_names(device, layer, batch, shape) == [
        "conv2d/backward_weight.comp", "conv2d/sum_slices.comp", "conv2d/backward_bias.comp"]
    check_gpu(device, rng, layer, batch, shape)


@pytest.mark.parametrize("kernel", ["auto", "scalar"])
def test_split_follows_the_loop_limit(device, rng, monkeypatch, kernel):
    """On a device with a loop limit, a reduction longer than it is split even with large slices
    (on the shuffle core one loop iteration sums a quad of terms)."""
    monkeypatch.setenv(gemm_shuffle.KERNEL_ENV, kernel)
    monkeypatch.setattr(conv_module, "GEMM_SLICE_TERMS", 10**9)
    monkeypatch.setattr(type(device), "loop_limit", property(lambda self: 300))
    layer, batch, shape = Conv2d(2, 3, 3, padding=1), 4, (2, 16, 16)     # 1,024 terms per gradient
    weight = _expected_shaders(device, None, S, None)[1]
    assert _recorded_names(device, layer, batch, shape)[:2] == [weight, "conv2d/sum_slices.comp"]
    check_gpu(device, rng, layer, batch, shape)


def test_batch_64_at_32x32_stays_within_lavapipe_loops(device):
    """65,536 terms per weight gradient element: planned without hitting the loop limit."""
    names = _recorded_names(device, Conv2d(3, 8, 3, padding=1), 64, (3, 32, 32))
    assert names.count("conv2d/sum_slices.comp") == 2


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("args, kwargs, words", [
    ((0, 4, 3), {}, ["in_channels", "positive int", "0"]),
    ((4, 2.5, 3), {}, ["out_channels", "2.5"]),
    ((6, 4, 3), dict(groups=4), ["in_channels", "divisible by groups (4)", "6"]),
    ((4, 6, 3), dict(groups=4), ["out_channels", "divisible by groups (4)", "6"]),
    ((4, 4, 3), dict(groups=0), ["groups", "0"]),
    ((4, 4, (3, 0)), {}, ["kernel_size", ">= 1", "(3, 0)"]),
    ((4, 4, (3, 3, 3)), {}, ["kernel_size", "(3, 3, 3)"]),
    ((4, 4, 3), dict(stride=0), ["stride", "0"]),
    ((4, 4, 3), dict(padding=-1), ["padding", ">= 0", "-1"]),
    ((4, 4, 3), dict(padding="full"), ["padding", "'same'", "'full'"]),
    ((4, 4, 3), dict(padding="same", stride=2), ["padding='same'", "stride 1", "(2, 2)"]),
    ((4, 4, 3), dict(dilation=True), ["dilation", "True"]),
    ((4, 4, 3), dict(padding_mode="reflect"), ["padding_mode", "'zeros'", "'reflect'"]),
])
def test_bad_constructor_arguments(args, kwargs, words):
    with no_gpu_work(), pytest.raises(ValueError) as error:
        Conv2d(*args, **kwargs)
    assert all(w in str(error.value) for w in words), str(error.value)


@pytest.mark.parametrize("shapes, words", [
    ([(3 * 8 * 8,)], ["(C, H, W)", "(192,)", "input_shape", "Reshape"]),
    ([(4, 8, 8)], ["3 input channels", "(4, 8, 8)"]),
    ([(3, 2, 8)], ["smaller than", "(3, 3)", "(5, 0, 6)"]),
    ([(3, 8, 8), (3, 8, 8)], ["one input", "2"]),
])
def test_bad_input_shapes(device, shapes, words):
    layer = Conv2d(3, 5, 3)
    with no_gpu_work(), pytest.raises(ValueError) as error:
        layer.output_shape(*shapes)
    assert all(w in str(error.value) for w in words), str(error.value)
    if len(shapes) == 1:
        with no_gpu_work(), pytest.raises(ValueError):
            vb.Sequential(layer, input_shape=shapes[0])


@pytest.mark.parametrize("width", [5, 6])   # 3 output columns: the scalar core; 4: the shuffle core on lavapipe
def test_too_long_reduction_is_rejected_before_gpu_work(device, monkeypatch, width):
    """Forward's reduction (in channels x taps) is not split: over the loop limit it is refused."""
    layer = Conv2d(16, 4, 3)
    io = planned_io(device, layer, 1, (16, 5, width))
    shader = _expected_shaders(device, S if width == 6 else None, None, None)[0]
    monkeypatch.setattr(type(device), "loop_limit", property(lambda self: 100))
    with no_gpu_work(), pytest.raises(ValueError, match=f"{shader} .*144.* loop iterations"):
        layer.forward(io)


# --- torch compatibility -----------------------------------------------------------------------


def test_parameters_repr_and_init_like_torch():
    for kwargs in (dict(), dict(stride=2, padding=1, groups=2, bias=False),
                   dict(padding="same", dilation=(1, 2)), dict(padding="valid", kernel_size=(3, 2))):
        kwargs = {"kernel_size": 3, **kwargs}
        mine, theirs = Conv2d(4, 6, **kwargs), torch.nn.Conv2d(4, 6, **kwargs)
        assert repr(mine) == repr(theirs)
        params = mine.parameters()
        assert {n: v.shape for n, v in params.items()} == {n: tuple(v.shape) for n, v in theirs.state_dict().items()}
        bound = 1 / math.sqrt(4 // mine.groups * math.prod(mine.kernel_size))
        assert all(v.dtype == np.float32 and np.abs(v).max() <= bound for v in params.values())
        assert params["weight"].std() > bound / 3      # spread over the range, not a constant


def test_init_draws_from_the_seeded_generator():
    vb.manual_seed(3)
    first = Conv2d(2, 3, 3).parameters()
    vb.manual_seed(3)
    again = Conv2d(2, 3, 3).parameters()
    assert all(np.array_equal(v, again[n]) for n, v in first.items())


def test_one_sgd_step_of_a_small_cnn_matches_pytorch(device, rng):
    batch, shape, classes = 6, (3, 9, 9), 5
    vb.manual_seed(2)
    model = vb.Sequential(Conv2d(3, 4, 3, padding=1), vb.ReLU(), Conv2d(4, 6, 3, stride=2, groups=2),
                          vb.Flatten(), vb.Linear(6 * 4 * 4, classes), input_shape=shape)
    twin = torch_twin(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                          torch.nn.Conv2d(4, 6, 3, stride=2, groups=2), torch.nn.Flatten(),
                                          torch.nn.Linear(6 * 4 * 4, classes)), model, torch.float64)
    trainer = vb.Trainer(model, loss=vb.CrossEntropyLoss(), optimizer=vb.SGD(lr=0.1), batch_size=batch, device=device)
    x = rng.standard_normal((batch,) + shape).astype(np.float32)
    y = rng.integers(0, classes, batch)
    want_loss = F.cross_entropy(twin(torch.tensor(x, dtype=torch.float64)), torch.tensor(y))
    check_step_against_twin(trainer, x.reshape(batch, -1), y, twin, want_loss)
