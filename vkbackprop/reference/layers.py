"""Float64 NumPy reference ("oracle") forward/backward passes with PyTorch semantics.

Layouts follow PyTorch: a linear weight is (out_features, in_features); batches are rows.
"""

import math

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


def leaky_relu_forward(x, negative_slope=0.01):
    """y = x where x > 0, else negative_slope * x."""
    x = _f64(x)
    return np.where(x > 0, x, x * float(negative_slope))


def leaky_relu_backward(x, dy, negative_slope=0.01):
    """dx = dy where x > 0, else negative_slope * dy; the derivative at exactly 0 is negative_slope,
    as in PyTorch."""
    dy = _f64(dy)
    return np.where(_f64(x) > 0, dy, dy * float(negative_slope))


def _exp_neg_abs(x):
    """exp(-|x|) in (0, 1]: the stable building block of sigmoid and tanh (never overflows)."""
    return np.exp(-np.abs(x))


def sigmoid_forward(x):
    """y = 1 / (1 + exp(-x)), as exp(-|x|) / (1 + exp(-|x|)) for negative x (no overflow)."""
    x = _f64(x)
    e = _exp_neg_abs(x)
    return np.where(x >= 0, 1.0, e) / (1.0 + e)


def sigmoid_backward(x, dy):
    """dx = dy * sigmoid(x) * (1 - sigmoid(x)) = dy * e / (1 + e)^2 with e = exp(-|x|)."""
    e = _exp_neg_abs(_f64(x))
    return _f64(dy) * e / (1.0 + e) ** 2


def tanh_forward(x):
    """y = tanh(x)."""
    return np.tanh(_f64(x))


def tanh_backward(x, dy):
    """dx = dy * (1 - tanh(x)^2) = dy * 4e / (1 + e)^2 with e = exp(-2|x|) (exact in the tails)."""
    e = _exp_neg_abs(2.0 * _f64(x))
    return _f64(dy) * 4.0 * e / (1.0 + e) ** 2


_GELU_BETA = math.sqrt(2.0 / math.pi)
_GELU_KAPPA = 0.044715


def _check_approximate(approximate):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")


def _normal_cdf(x):
    """Phi(x) = 0.5 * erfc(-x / sqrt 2), accurate in both tails."""
    return 0.5 * np.vectorize(math.erfc, otypes=[np.float64])(-x / math.sqrt(2.0))


def gelu_forward(x, approximate="none"):
    """approximate='none': y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2));
    approximate='tanh': y = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), evaluated as
    x * sigmoid(2u) (the same function, without cancellation for negative x)."""
    _check_approximate(approximate)
    x = _f64(x)
    if approximate == "none":
        return x * _normal_cdf(x)
    return x * sigmoid_forward(2.0 * _GELU_BETA * (x + _GELU_KAPPA * x ** 3))


def gelu_backward(x, dy, approximate="none"):
    """approximate='none': dx = dy * (Phi(x) + x phi(x)), phi the standard normal PDF;
    approximate='tanh': dx = dy * (0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2))."""
    _check_approximate(approximate)
    x, dy = _f64(x), _f64(dy)
    if approximate == "none":
        return dy * (_normal_cdf(x) + x * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi))
    v = 2.0 * _GELU_BETA * (x + _GELU_KAPPA * x ** 3)          # 2u
    e = _exp_neg_abs(v)                                          # 1 + tanh u = 2 s, 1 - tanh^2 u = 4 s (1 - s)
    s_times_1_minus_s = e / (1.0 + e) ** 2
    inner_slope = _GELU_BETA * (1.0 + 3.0 * _GELU_KAPPA * x * x)
    slope = sigmoid_forward(v) + np.where(s_times_1_minus_s == 0, 0.0, 2.0 * x * s_times_1_minus_s * inner_slope)
    return dy * slope


def log_softmax_forward(x, dim=-1):
    """y = (x - m) - log(sum(exp(x - m))) along axis `dim`, m the maximum along it (stable: every
    exp is in (0, 1] and the sum is >= 1)."""
    z = _f64(x)
    z = z - z.max(axis=dim, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=dim, keepdims=True))


def log_softmax_backward(x, dy, dim=-1):
    """dx = dy - softmax(x) * sum(dy) along axis `dim`."""
    dy = _f64(dy)
    return dy - np.exp(log_softmax_forward(x, dim)) * dy.sum(axis=dim, keepdims=True)


def softmax_forward(x, dim=-1):
    """y = exp(x - m) / sum(exp(x - m)) along axis `dim`, m the maximum along it (no overflow)."""
    z = _f64(x)
    e = np.exp(z - z.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def softmax_backward(x, dy, dim=-1):
    """dx = y * (dy - sum(dy * y)) along axis `dim`, with y = softmax(x)."""
    y, dy = softmax_forward(x, dim), _f64(dy)
    return y * (dy - (dy * y).sum(axis=dim, keepdims=True))


def _log_softmax(logits):
    """log_softmax(z) = z - max - log(sum(exp(z - max))) row-wise, stable for huge logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _divisor(reduction, pred, allowed=("mean", "sum")):
    """PyTorch's reduction as a divisor of the summed pointwise losses: 'mean' -> number of elements
    (or rows, for losses with one term per row), 'sum' -> 1, 'batchmean' -> rows."""
    if reduction not in allowed:
        raise ValueError(f"reduction must be {' or '.join(repr(a) for a in allowed)}, got {reduction!r}")
    return {"mean": pred.size, "sum": 1, "batchmean": pred.shape[0]}[reduction]


def _cross_entropy_target(logits, target, label_smoothing):
    """The (B, C) target distribution PyTorch's cross_entropy uses: integer labels (B,) become
    (1 - eps) * onehot + eps / C; float probabilities (B, C) become (1 - eps) * p + eps / C. Like
    PyTorch, the kind of target is picked from its dtype."""
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    target = np.asarray(target)
    classes = logits.shape[1]
    if target.dtype.kind in "iu":
        dist = np.zeros_like(logits)
        dist[np.arange(logits.shape[0]), target] = 1.0
    else:
        dist = _f64(target)
    return (1.0 - eps) * dist + eps / classes


def cross_entropy_forward(logits, target, reduction="mean", label_smoothing=0.0):
    """loss = sum_b(-sum_c q[b, c] log_softmax(logits)[b, c]) / (B for 'mean', 1 for 'sum'), with
    q the (smoothed) target distribution: integer labels (B,) or float probabilities (B, C)."""
    logits = _f64(logits)
    q = _cross_entropy_target(logits, target, label_smoothing)
    rows = -(q * _log_softmax(logits)).sum(axis=1)
    return float(rows.sum() / _divisor(reduction, rows))


def cross_entropy_backward(logits, target, dloss=1.0, reduction="mean", label_smoothing=0.0):
    """dlogits = dloss * (softmax(logits) * sum_c q[b, c] - q) / (B for 'mean', 1 for 'sum')."""
    logits = _f64(logits)
    q = _cross_entropy_target(logits, target, label_smoothing)
    grad = np.exp(_log_softmax(logits)) * q.sum(axis=1, keepdims=True) - q
    return float(dloss) * grad / _divisor(reduction, grad[:, 0])


def nll_forward(logp, labels, reduction="mean"):
    """loss = -sum_b logp[b, labels[b]] / (B for 'mean', 1 for 'sum') (PyTorch nll_loss, no weights)."""
    logp = _f64(logp)
    picked = logp[np.arange(logp.shape[0]), np.asarray(labels)]
    return float(-picked.sum() / _divisor(reduction, picked))


def nll_backward(logp, labels, dloss=1.0, reduction="mean"):
    """dlogp = -dloss * onehot(labels) / (B for 'mean', 1 for 'sum')."""
    grad = np.zeros_like(_f64(logp))
    grad[np.arange(grad.shape[0]), np.asarray(labels)] = -1.0
    return float(dloss) * grad / _divisor(reduction, grad[:, 0])


def bce_with_logits_forward(logits, target, reduction="mean"):
    """loss = sum(max(x, 0) - x t + log1p(exp(-|x|))) / (numel for 'mean', 1 for 'sum')."""
    x, t = _f64(logits), _f64(target)
    pointwise = np.maximum(x, 0.0) - x * t + np.log1p(np.exp(-np.abs(x)))
    return float(pointwise.sum() / _divisor(reduction, x))


def bce_with_logits_backward(logits, target, dloss=1.0, reduction="mean"):
    """dlogits = dloss * (sigmoid(x) - t) / (numel for 'mean', 1 for 'sum'), with sigmoid(x) - t
    written as (1 - t) - sigmoid(-x) for x >= 0 so that it stays exact in the tails."""
    x, t = _f64(logits), _f64(target)
    e = np.exp(-np.abs(x))
    tail = e / (1.0 + e)   # sigmoid(-|x|)
    return float(dloss) * np.where(x >= 0, (1.0 - t) - tail, tail - t) / _divisor(reduction, x)


_KL_REDUCTIONS = ("mean", "sum", "batchmean")


def kl_div_forward(logp, target, reduction="mean", log_target=False):
    """PyTorch kl_div: pointwise t (log t - x), 0 where t == 0 (log_target: exp(t) (t - x)), summed and
    divided by numel ('mean'), 1 ('sum') or the batch size ('batchmean')."""
    x, t = _f64(logp), _f64(target)
    if log_target:
        pointwise = np.exp(t) * (t - x)
    else:
        pointwise = np.where(t > 0, t * (np.log(np.where(t > 0, t, 1.0)) - x), 0.0)
    return float(pointwise.sum() / _divisor(reduction, x, _KL_REDUCTIONS))


def kl_div_backward(logp, target, dloss=1.0, reduction="mean", log_target=False):
    """dlogp = -dloss * t / divisor (log_target: -dloss * exp(t) / divisor)."""
    x, t = _f64(logp), _f64(target)
    weight = np.exp(t) if log_target else t
    return -float(dloss) * weight / _divisor(reduction, x, _KL_REDUCTIONS)


def mse_forward(pred, target, reduction="mean"):
    """loss = sum over all elements of (pred - target)^2 / (numel for 'mean', 1 for 'sum')."""
    pred = _f64(pred)
    return float(((pred - _f64(target)) ** 2).sum() / _divisor(reduction, pred))


def mse_backward(pred, target, dloss=1.0, reduction="mean"):
    """dpred = dloss * 2 * (pred - target) / (numel for 'mean', 1 for 'sum')."""
    pred = _f64(pred)
    return float(dloss) * 2.0 * (pred - _f64(target)) / _divisor(reduction, pred)


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
