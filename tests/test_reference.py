"""Checks of the float64 NumPy reference layers against central finite differences."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vkbackprop.reference import (
    cross_entropy_backward,
    cross_entropy_forward,
    linear_backward,
    linear_forward,
    mse_backward,
    mse_forward,
    numerical_gradient,
    relu_backward,
    relu_forward,
    sgd_update,
)

RTOL, ATOL = 1e-6, 1e-8
BATCHES = [1, 3, 7]
FEATURES = [1, 5, 13]


def assert_grad_close(analytic, numeric):
    assert analytic.shape == numeric.shape
    np.testing.assert_allclose(analytic, numeric, rtol=RTOL, atol=ATOL)


def away_from_zero(x, margin=1e-3):
    """Push entries with |x| < margin out to +-margin so the ReLU kink is never straddled."""
    x = x.copy()
    small = np.abs(x) < margin
    x[small] = np.where(x[small] >= 0, margin, -margin)
    return x


# --- linear -----------------------------------------------------------------------------------


@pytest.mark.parametrize("has_bias", [True, False])
@pytest.mark.parametrize("out_f", FEATURES)
@pytest.mark.parametrize("in_f", FEATURES)
@pytest.mark.parametrize("batch", BATCHES)
def test_linear_backward_matches_finite_differences(batch, in_f, out_f, has_bias):
    rng = np.random.default_rng(1000 + 100 * batch + 10 * in_f + out_f)
    x = rng.standard_normal((batch, in_f))
    w = rng.standard_normal((out_f, in_f))
    b = rng.standard_normal(out_f) if has_bias else None
    g = rng.standard_normal((batch, out_f))  # random upstream gradient

    dx, dw, db = linear_backward(x, w, g, has_bias=has_bias)

    assert_grad_close(dx, numerical_gradient(lambda x_: np.sum(linear_forward(x_, w, b) * g), x))
    assert_grad_close(dw, numerical_gradient(lambda w_: np.sum(linear_forward(x, w_, b) * g), w))
    if has_bias:
        assert_grad_close(db, numerical_gradient(lambda b_: np.sum(linear_forward(x, w, b_) * g), b))
    else:
        assert db is None


@settings(max_examples=20, deadline=None)
@given(
    batch=st.integers(1, 8),
    in_f=st.integers(1, 8),
    out_f=st.integers(1, 8),
    seed=st.integers(0, 2**32 - 1),
)
def test_linear_backward_random_shapes(batch, in_f, out_f, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, in_f))
    w = rng.standard_normal((out_f, in_f))
    b = rng.standard_normal(out_f)
    g = rng.standard_normal((batch, out_f))

    dx, dw, db = linear_backward(x, w, g)

    assert_grad_close(dx, numerical_gradient(lambda x_: np.sum(linear_forward(x_, w, b) * g), x))
    assert_grad_close(dw, numerical_gradient(lambda w_: np.sum(linear_forward(x, w_, b) * g), w))
    assert_grad_close(db, numerical_gradient(lambda b_: np.sum(linear_forward(x, w, b_) * g), b))


def test_linear_forward_hand_example():
    x = np.array([[1.0, 2.0]])
    w = np.array([[1.0, 0.0], [0.5, -1.0], [2.0, 3.0]])  # (out=3, in=2), PyTorch layout
    b = np.array([0.1, 0.2, 0.3])
    np.testing.assert_allclose(linear_forward(x, w, b), [[1.1, -1.3, 8.3]])
    np.testing.assert_allclose(linear_forward(x, w), [[1.0, -1.5, 8.0]])


# --- relu -------------------------------------------------------------------------------------


@pytest.mark.parametrize("features", FEATURES)
@pytest.mark.parametrize("batch", BATCHES)
def test_relu_backward_matches_finite_differences(batch, features):
    rng = np.random.default_rng(2000 + 10 * batch + features)
    x = away_from_zero(rng.standard_normal((batch, features)))
    g = rng.standard_normal((batch, features))

    dx = relu_backward(x, g)

    assert_grad_close(dx, numerical_gradient(lambda x_: np.sum(relu_forward(x_) * g), x))


def test_relu_derivative_at_zero_is_zero():
    x = np.array([[-2.0, 0.0, 3.0]])
    np.testing.assert_array_equal(relu_forward(x), [[0.0, 0.0, 3.0]])
    np.testing.assert_array_equal(relu_backward(x, np.array([[5.0, 5.0, 5.0]])), [[0.0, 0.0, 5.0]])


# --- cross entropy ----------------------------------------------------------------------------


@pytest.mark.parametrize("classes", FEATURES)
@pytest.mark.parametrize("batch", BATCHES)
def test_cross_entropy_backward_matches_finite_differences(batch, classes):
    rng = np.random.default_rng(3000 + 10 * batch + classes)
    logits = 3.0 * rng.standard_normal((batch, classes))
    labels = rng.integers(0, classes, size=batch)
    dloss = rng.standard_normal()  # random scalar upstream gradient

    dlogits = cross_entropy_backward(logits, labels, dloss)

    numeric = numerical_gradient(lambda z: dloss * cross_entropy_forward(z, labels), logits)
    assert_grad_close(dlogits, numeric)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1000.0, -1000.0], [1000.0, -1000.0]])
    labels = np.array([0, 1])
    loss = cross_entropy_forward(logits, labels)
    # row 0: logsumexp = 1000 + log(1 + e^-2000) = 1000 -> loss 0
    # row 1: logsumexp = 1000 -> loss 1000 - (-1000) = 2000; mean = 1000
    assert np.isfinite(loss)
    assert loss == pytest.approx(1000.0, rel=1e-12)

    dlogits = cross_entropy_backward(logits, labels)
    assert np.all(np.isfinite(dlogits))
    np.testing.assert_allclose(dlogits, [[0.0, 0.0], [0.5, -0.5]], atol=1e-12)


def test_cross_entropy_matches_direct_negative_log_softmax():
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((7, 5))
    labels = rng.integers(0, 5, size=7)
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = -np.log(softmax[np.arange(7), labels]).mean()
    assert cross_entropy_forward(logits, labels) == pytest.approx(expected, rel=1e-12)
    assert isinstance(cross_entropy_forward(logits, labels), float)


# --- mse --------------------------------------------------------------------------------------


@pytest.mark.parametrize("features", FEATURES)
@pytest.mark.parametrize("batch", BATCHES)
def test_mse_backward_matches_finite_differences(batch, features):
    rng = np.random.default_rng(5000 + 10 * batch + features)
    pred = rng.standard_normal((batch, features))
    target = rng.standard_normal((batch, features))
    dloss = 0.7

    dpred = mse_backward(pred, target, dloss)

    numeric = numerical_gradient(lambda p: dloss * mse_forward(p, target), pred)
    assert_grad_close(dpred, numeric)


def test_mse_is_mean_over_all_elements():
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    target = np.zeros((2, 2))
    assert mse_forward(pred, target) == pytest.approx((1 + 4 + 9 + 16) / 4)


# --- sgd and the checker itself ---------------------------------------------------------------


def test_sgd_update_hand_example():
    param = np.array([1.0, -2.0, 0.5])
    grad = np.array([0.5, 1.0, -4.0])
    np.testing.assert_allclose(sgd_update(param, grad, 0.1), [0.95, -2.1, 0.9])
    np.testing.assert_array_equal(param, [1.0, -2.0, 0.5])  # input left untouched


def test_numerical_gradient_does_not_modify_input():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    numeric = numerical_gradient(lambda a: np.sum(a**2), x)
    np.testing.assert_array_equal(x, [[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose(numeric, 2 * x, rtol=RTOL, atol=ATOL)


def test_checker_rejects_a_wrong_gradient():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 5))
    w = rng.standard_normal((4, 5))
    g = rng.standard_normal((3, 4))
    numeric = numerical_gradient(lambda w_: np.sum(linear_forward(x, w_) * g), w)

    right = linear_backward(x, w, g, has_bias=False)[1]
    scaled = 1.01 * right  # a 1% error must be caught
    mispaired = g.T @ x[::-1]  # right shape, but batch rows of x paired with the wrong rows of g

    assert np.allclose(right, numeric, rtol=RTOL, atol=ATOL)
    assert not np.allclose(scaled, numeric, rtol=RTOL, atol=ATOL)
    assert not np.allclose(mispaired, numeric, rtol=RTOL, atol=ATOL)
    with pytest.raises(AssertionError):
        assert_grad_close(scaled, numeric)
