"""Float64 NumPy references for batch norm and layer norm with PyTorch semantics.

Written from the definitions, independently of the shaders: backward follows the textbook chain rule
through the mean and the variance (Ioffe & Szegedy, 2015) rather than the shaders' compact form.

Batch norm: x is (B, C, *rest), statistics per channel over every axis but 1. Layer norm: x is
(..., *normalized_shape), statistics over the last `ndim` axes. Weights and biases are None when
absent (the identity); the gradients dweight and dbias are returned regardless.
"""

from __future__ import annotations

import numpy as np


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def _batch_axes(x) -> tuple:
    return (0,) + tuple(range(2, x.ndim))


def _per_channel(v, ndim: int):
    """A (C,) vector shaped to broadcast against (B, C, *rest)."""
    return _f64(v).reshape((1, -1) + (1,) * (ndim - 2))


def _moments(x, axes):
    mean = x.mean(axis=axes, keepdims=True)
    return mean, ((x - mean) ** 2).mean(axis=axes, keepdims=True)   # the biased variance


def _affine(xhat, weight, bias):
    y = xhat if weight is None else xhat * weight
    return y if bias is None else y + bias


def _normalize_backward(x, dxhat, axes, eps):
    """dL/dx through xhat = (x - mean(x)) / sqrt(var(x) + eps), mean and var over `axes` depending on x."""
    n = np.prod([x.shape[a] for a in axes])
    mean, var = _moments(x, axes)
    centered = x - mean
    invstd = 1.0 / np.sqrt(var + eps)
    dvar = np.sum(dxhat * centered, axis=axes, keepdims=True) * -0.5 * invstd ** 3
    dmean = -np.sum(dxhat, axis=axes, keepdims=True) * invstd + dvar * -2.0 * np.sum(centered, axis=axes,
                                                                                      keepdims=True) / n
    return dxhat * invstd + dvar * 2.0 * centered / n + dmean / n


def _channel_statistics(x, running_mean, running_var):
    """Per-channel (mean, variance), broadcasting against x: the batch's (biased) or the running ones."""
    if running_mean is None:
        return _moments(x, _batch_axes(x))
    return _per_channel(running_mean, x.ndim), _per_channel(running_var, x.ndim)


def batch_norm_forward(x, weight=None, bias=None, eps=1e-5, running_mean=None, running_var=None):
    """y = (x - mean) / sqrt(var + eps) * weight + bias per channel, with the batch's mean and
    biased variance (training mode, or no running statistics), or the running ones if given (eval)."""
    x = _f64(x)
    mean, var = _channel_statistics(x, running_mean, running_var)
    xhat = (x - mean) / np.sqrt(var + eps)
    return _affine(xhat, None if weight is None else _per_channel(weight, x.ndim),
                   None if bias is None else _per_channel(bias, x.ndim))


def batch_norm_backward(x, dy, weight=None, eps=1e-5, running_mean=None, running_var=None):
    """(dx, dweight, dbias) of batch_norm_forward with the same statistics: through the batch's
    (which depend on x), or the running ones (constants: the affine map's gradient)."""
    x, dy = _f64(x), _f64(dy)
    axes = _batch_axes(x)
    mean, var = _channel_statistics(x, running_mean, running_var)
    xhat = (x - mean) / np.sqrt(var + eps)
    dxhat = dy if weight is None else dy * _per_channel(weight, x.ndim)
    dx = _normalize_backward(x, dxhat, axes, eps) if running_mean is None else dxhat / np.sqrt(var + eps)
    return dx, np.sum(dy * xhat, axis=axes), np.sum(dy, axis=axes)


def batch_norm_running_update(x, running_mean, running_var, num_batches_tracked, momentum=0.1):
    """The running statistics after a training forward on x: (running_mean, running_var,
    num_batches_tracked), each moved by the factor momentum (None: 1 / num_batches_tracked after
    its increment, a cumulative average) towards the batch mean and *unbiased* variance."""
    x = _f64(x)
    axes = _batch_axes(x)
    n = np.prod([x.shape[a] for a in axes])
    count = int(num_batches_tracked) + 1
    factor = 1.0 / count if momentum is None else momentum
    mean = x.mean(axis=axes)
    unbiased = ((x - _per_channel(mean, x.ndim)) ** 2).sum(axis=axes) / (n - 1)
    return ((1 - factor) * _f64(running_mean) + factor * mean,
            (1 - factor) * _f64(running_var) + factor * unbiased,
            np.array(count, np.int64))


def layer_norm_forward(x, ndim: int, weight=None, bias=None, eps=1e-5):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, statistics over the last ndim axes."""
    x = _f64(x)
    mean, var = _moments(x, tuple(range(x.ndim - ndim, x.ndim)))
    return _affine((x - mean) / np.sqrt(var + eps), _f64(weight), _f64(bias))


def layer_norm_backward(x, dy, ndim: int, weight=None, eps=1e-5):
    """(dx, dweight, dbias) of layer_norm_forward; the parameter gradients summed over the leading axes."""
    x, dy = _f64(x), _f64(dy)
    axes = tuple(range(x.ndim - ndim, x.ndim))
    mean, var = _moments(x, axes)
    xhat = (x - mean) / np.sqrt(var + eps)
    dx = _normalize_backward(x, dy if weight is None else dy * _f64(weight), axes, eps)
    leading = tuple(range(x.ndim - ndim))
    return dx, np.sum(dy * xhat, axis=leading), np.sum(dy, axis=leading)
