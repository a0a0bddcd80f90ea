"""Each layer's shaders on the GPU vs the float64 NumPy reference, on shapes that include 1, primes
and sizes that are not multiples of any tile; upstream gradients are random."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vkbackprop as vb
from vkbackprop import reference as ref
from vkbackprop.gradcheck import run_layer, run_loss
from oracles import assert_close

SIZES = st.sampled_from([1, 2, 3, 5, 7, 13, 31, 64, 65, 97, 257])
SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def assert_sum_close(got, want, k: int, what: str):
    """fp32 vs float64: the error of a k-term sum grows like sqrt(k) times the magnitude of its terms."""
    scale = max(1.0, float(np.abs(want).max()))
    assert_close(got, want, 2e-6 * np.sqrt(k + 1) * scale, what)


def check_linear(device, batch, fan_in, fan_out, bias, seed) -> tuple:
    """Linear's forward and backward on the device against the float64 reference; returns
    (params, x, dy, y, dx, grads) for further oracles."""
    rng = np.random.default_rng(seed)
    layer = vb.Linear(fan_in, fan_out, bias=bias)
    params = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in layer.parameters().items()}
    x = rng.standard_normal((batch, fan_in)).astype(np.float32)
    dy = rng.standard_normal((batch, fan_out)).astype(np.float32)

    y, dx, grads = run_layer(device, layer, x, params, dy)

    assert_sum_close(y, ref.linear_forward(x, params["weight"], params.get("bias")), fan_in, "y")
    rdx, rdw, rdb = ref.linear_backward(x, params["weight"], dy, has_bias=bias)
    assert_sum_close(dx, rdx, fan_out, "dx")
    assert_sum_close(grads["weight"], rdw, batch, "dweight")
    if bias:
        assert_sum_close(grads["bias"], rdb, batch, "dbias")
    else:
        assert set(grads) == {"weight"}
    return params, x, dy, y, dx, grads


@SETTINGS
@given(batch=SIZES, fan_in=SIZES, fan_out=SIZES, bias=st.booleans(), seed=st.integers(0, 2**31))
def test_linear(device, batch, fan_in, fan_out, bias, seed):
    params, x, dy, y, dx, grads = check_linear(device, batch, fan_in, fan_out, bias, seed)

    # PyTorch autograd as a second, independent oracle.
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    ty = torch.nn.functional.linear(tx, t["weight"], t.get("bias"))
    ty.backward(torch.tensor(dy, dtype=torch.float64))
    assert_sum_close(y, ty.detach().numpy(), fan_in, "y vs torch")
    assert_sum_close(dx, tx.grad.numpy(), fan_out, "dx vs torch")
    for k in params:
        assert_sum_close(grads[k], t[k].grad.numpy(), batch, f"d{k} vs torch")


# Mostly multiples of 4, where the vec4 core takes Linear's passes (on CPU devices): dW with dy in
# place (any batch) or through a transposed copy, dx from that copy with a K % 4 tail, row-sum bias.
QUAD_SIZES = st.sampled_from([1, 3, 4, 8, 10, 12, 20, 33, 36, 64, 68, 132])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=QUAD_SIZES, fan_in=QUAD_SIZES, fan_out=QUAD_SIZES, bias=st.booleans(), seed=st.integers(0, 2**31))
def test_linear_on_mostly_quad_shapes(device, batch, fan_in, fan_out, bias, seed):
    check_linear(device, batch, fan_in, fan_out, bias, seed)


@SETTINGS
@given(batch=SIZES, width=SIZES, seed=st.integers(0, 2**31))
def test_relu(device, batch, width, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, width)).astype(np.float32)
    x[0, 0] = 0.0  # the kink: PyTorch's derivative there is 0
    dy = rng.standard_normal((batch, width)).astype(np.float32)
    y, dx, grads = run_layer(device, vb.ReLU(), x, {}, dy)
    np.testing.assert_array_equal(y, ref.relu_forward(x))
    np.testing.assert_array_equal(dx, ref.relu_backward(x, dy))
    assert grads == {}
    tx = torch.tensor(x, requires_grad=True)
    torch.relu(tx).backward(torch.tensor(dy))
    np.testing.assert_array_equal(dx, tx.grad.numpy())
    second = run_layer(device, vb.ReLU(), x, {}, dy)
    np.testing.assert_array_equal(second[1], dx)


@SETTINGS
@given(batch=st.sampled_from([1, 2, 7, 64, 255, 256, 257, 600]), classes=st.sampled_from([1, 2, 3, 10, 37]),
       seed=st.integers(0, 2**31))
def test_cross_entropy(device, batch, classes, seed):
    rng = np.random.default_rng(seed)
    logits = (3 * rng.standard_normal((batch, classes))).astype(np.float32)
    labels = rng.integers(0, classes, batch)
    dloss = float(rng.uniform(0.5, 2.0))
    loss, dlogits = run_loss(device, vb.CrossEntropyLoss(), logits, labels, dloss)
    want = ref.cross_entropy_forward(logits, labels)
    assert abs(loss - want) <= 1e-5 * max(1.0, abs(want)), (loss, want)
    assert_sum_close(dlogits, ref.cross_entropy_backward(logits, labels, dloss), classes, "dlogits")


def test_cross_entropy_is_stable_for_huge_logits(device):
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0]], np.float32)
    labels = np.array([1, 2])
    loss, dlogits = run_loss(device, vb.CrossEntropyLoss(), logits, labels, 1.0)
    assert np.isfinite(loss) and np.isfinite(dlogits).all()
    assert abs(loss - ref.cross_entropy_forward(logits, labels)) < 1e-3
    assert_sum_close(dlogits, ref.cross_entropy_backward(logits, labels), 3, "dlogits")


@SETTINGS
@given(batch=st.sampled_from([1, 3, 64, 129]), width=st.sampled_from([1, 5, 13, 300]), seed=st.integers(0, 2**31))
def test_mse(device, batch, width, seed):
    rng = np.random.default_rng(seed)
    pred = rng.standard_normal((batch, width)).astype(np.float32)
    target = rng.standard_normal((batch, width)).astype(np.float32)
    dloss = float(rng.uniform(0.5, 2.0))
    loss, dpred = run_loss(device, vb.MSELoss(), pred, target, dloss)
    want = ref.mse_forward(pred, target)
    assert abs(loss - want) <= 1e-5 * max(1.0, want), (loss, want)
    assert_sum_close(dpred, ref.mse_backward(pred, target, dloss), 1, "dpred")


def test_backward_twice_gives_identical_bits(device, rng):
    layer = vb.Linear(37, 11)
    params = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in layer.parameters().items()}
    x = rng.standard_normal((19, 37)).astype(np.float32)
    dy = rng.standard_normal((19, 11)).astype(np.float32)
    first, second = run_layer(device, layer, x, params, dy), run_layer(device, layer, x, params, dy)
    np.testing.assert_array_equal(first[1], second[1])
    for name in params:
        np.testing.assert_array_equal(first[2][name], second[2][name])


def test_checker_can_fail():
    """Negative control: the comparison used above rejects a 0.1% error on a gradient."""
    want = np.linspace(-3, 3, 50).reshape(5, 10)
    with pytest.raises(AssertionError, match="worst at"):
        assert_sum_close((want * 1.001).astype(np.float32), want, 10, "dx")


@pytest.mark.parametrize("make", [lambda: vb.Linear(13, 7), vb.ReLU, lambda: vb.LeakyReLU(0.1), vb.Sigmoid, vb.Tanh,
                                  vb.GELU, lambda: vb.GELU("tanh"), vb.Softmax, vb.LogSoftmax],
                         ids=["Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "GELU-tanh", "Softmax",
                              "LogSoftmax"])
def test_every_layer_runs_backward_twice_with_identical_bits(device, rng, make):
    layer = make()
    width = layer.in_features or 13
    params = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in layer.parameters().items()}
    x = rng.standard_normal((11, width)).astype(np.float32)
    dy = rng.standard_normal((11, layer.out_features(width))).astype(np.float32)
    first, second = run_layer(device, layer, x, params, dy), run_layer(device, layer, x, params, dy)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    for name in params:
        np.testing.assert_array_equal(first[2][name], second[2][name])


@pytest.mark.parametrize("kernel,tiles", [
    ("scalar", None),
    ("shuffle", None),
    # SHARE above lavapipe's subgroup size (8): the core's path for small subgroups (no shuffles).
    ("shuffle", {"TM": 16, "NC": 2, "WG_X": 32, "SHARE": 16}),
])
@pytest.mark.parametrize("batch,fan_in,fan_out,bias", [(128, 784, 256, True), (4, 8, 12, True), (36, 40, 44, False),
                                                       (12, 4, 4, True), (5, 8, 10, True), (8, 12, 7, False),
                                                       (6, 8, 12, True), (37, 16, 33, True), (13, 20, 9, False),
                                                       (12, 8, 10, True)])
def test_linear_gemm_kernels(device, rng, monkeypatch, kernel, tiles, batch, fan_in, fan_out, bias):
    """Both GEMM cores on shapes where the vec4 + shuffle core applies (multiples of 4) and on
    partly aligned ones (it then runs only the passes it can); dispatch names show which ran."""
    from vkbackprop.layers import gemm_shuffle
    from vkbackprop.layers.base import LayerIO
    monkeypatch.setattr(gemm_shuffle, "KERNEL", kernel)
    if tiles:
        monkeypatch.setattr(gemm_shuffle, "TILE", tiles)
        monkeypatch.setattr(gemm_shuffle, "FEW_ROWS_TILE", {"TM": 16, "NC": 1, "WG_X": 16, "SHARE": 16})
    layer = vb.Linear(fan_in, fan_out, bias=bias)
    params = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in layer.parameters().items()}
    x = rng.standard_normal((batch, fan_in)).astype(np.float32)
    dy = rng.standard_normal((batch, fan_out)).astype(np.float32)
    y, dx, grads = run_layer(device, layer, x, params, dy)
    rdx, rdw, rdb = ref.linear_backward(x, params["weight"], dy, has_bias=bias)
    assert_sum_close(y, ref.linear_forward(x, params["weight"], params.get("bias")), fan_in, "y")
    assert_sum_close(dx, rdx, fan_out, "dx")
    assert_sum_close(grads["weight"], rdw, batch, "dweight")
    if bias:
        assert_sum_close(grads["bias"], rdb, batch, "dbias")

    buffers = {n: device.buffer(n, v.shape) for n, v in params.items()}
    io = LayerIO(device, batch, [device.buffer("x", x.shape)], device.buffer("y", (batch, fan_out)), params=buffers,
                 dy=device.buffer("dy", dy.shape), grads={n: device.buffer(f"d{n}", v.shape) for n, v in params.items()})
    io.dxs[0] = device.buffer("dx", x.shape)
    shuffle = kernel == "shuffle"
    # Few outputs: the forward GEMM runs transposed (batch along the lanes).
    few = 4 * fan_out <= gemm_shuffle.columns(gemm_shuffle.TILE)
    want = ("linear/forward.comp" if not (shuffle and fan_in % 4 == 0) else
            "linear/forward_shuffle_t.comp" if few else "linear/forward_shuffle.comp")
    assert [d.name for d in layer.forward(io)] == [want]
    # dW on the vec4 core reading dy in place where dy's rows are whole quads (any batch), else
    # through a transposed copy of dy (batch % 4 == 0), which dx then reads too (any out_features).
    in_place = shuffle and fan_out % 4 == 0 and fan_in % 4 == 0
    via_copy = shuffle and not in_place and batch % 4 == 0 and fan_in % 4 == 0
    want = (["linear/backward_weight_shuffle.comp"] if in_place else
            ["linear/transpose_dy.comp", "linear/backward_weight_shuffle.comp"] if via_copy else
            ["linear/backward_weight.comp"] + ["linear/backward_bias.comp"] * bias)
    want.append("linear/backward_input_shuffle.comp" if in_place or via_copy else "linear/backward_input.comp")
    assert sorted(d.name for d in layer.backward(io)) == sorted(want)
