"""Float64 NumPy reference ("oracle") forward/backward passes with PyTorch semantics.

Layouts follow PyTorch: a linear weight is (out_features, in_features); batches are rows.
"""

import numpy as np


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def linear_forward(x, weight, bias=None):
    """y = x @ weight.T + bias, with x (B, in), weight (out, in), bias (out,) or None."""
    y = _f64(x) @ _f64(weight).T
    return y if bias is None else y + _f64(bias)


def linear_backward(x, weight, dy, has_bias=True):
    """dx = dy @ weight, dweight = dy.T @ x, dbias = dy.sum(0) (None when has_bias is False)."""
    x, weight, dy = _f64(x), _f64(weight), _f64(dy)
    dbias = dy.sum(axis=0) if has_bias else None
    return dy @ weight, dy.T @ x, dbias


def relu_forward(x):
    """y = max(x, 0)."""
    return np.maximum(_f64(x), 0.0)


def relu_backward(x, dy):
    """dx = dy * (x > 0); the derivative at exactly 0 is 0, as in PyTorch."""
    return _f64(dy) * (_f64(x) > 0)


def _log_softmax(logits):
    """log_softmax(z) = z - max - log(sum(exp(z - max))) row-wise, stable for huge logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def cross_entropy_forward(logits, labels):
    """loss = mean_b(logsumexp(logits[b]) - logits[b, labels[b]])."""
    logp = _log_softmax(_f64(logits))
    labels = np.asarray(labels)
    return float(-logp[np.arange(logp.shape[0]), labels].mean())


def cross_entropy_backward(logits, labels, dloss=1.0):
    """dlogits = dloss * (softmax(logits) - onehot(labels)) / B."""
    grad = np.exp(_log_softmax(_f64(logits)))
    grad[np.arange(grad.shape[0]), np.asarray(labels)] -= 1.0
    return float(dloss) * grad / grad.shape[0]


def mse_forward(pred, target):
    """loss = mean over all elements of (pred - target)^2 (PyTorch reduction='mean')."""
    return float(np.mean((_f64(pred) - _f64(target)) ** 2))


def mse_backward(pred, target, dloss=1.0):
    """dpred = dloss * 2 * (pred - target) / pred.size."""
    pred = _f64(pred)
    return float(dloss) * 2.0 * (pred - _f64(target)) / pred.size


def sgd_update(param, grad, lr):
    """new_param = param - lr * grad."""
    return _f64(param) - float(lr) * _f64(grad)


def numerical_gradient(f, x, eps=1e-6):
    """Central differences: grad[i] = (f(x + eps*e_i) - f(x - eps*e_i)) / (2*eps)."""
    x = _f64(x).copy()
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        orig = x[i]
        x[i] = hi = orig + eps
        f_plus = float(f(x.copy()))
        x[i] = lo = orig - eps
        f_minus = float(f(x.copy()))
        x[i] = orig
        grad[i] = (f_plus - f_minus) / (hi - lo)  # the step actually taken, after rounding
    return grad
