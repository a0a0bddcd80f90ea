"""Float64 NumPy references for 2-D pooling with PyTorch semantics (NCHW, x of shape (B, C, H, W)).

Written from the definitions, independently of the shaders: each axis's windows are listed
explicitly (in-input indices, plus the padded length AvgPool2d's count_include_pad divides by),
forward reduces over them and backward *scatters* dy into the inputs (the shaders gather)."""

from __future__ import annotations

import numpy as np


def _pair(value) -> tuple:
    return (value, value) if value is None or isinstance(value, (int, np.integer)) else tuple(value)


def sliding_windows(n: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool):
    """The windows along an axis of length n: a list of (in-input indices, padded length), where
    window j starts at j*stride - padding and takes every dilation-th position, kernel of them.

    Floor mode keeps the windows that fit in the padded input; ceil mode also keeps a last, partial
    one, unless it would start in the right padding (PyTorch's rule)."""
    span = dilation * (kernel - 1) + 1
    windows, j = [], 0
    while True:
        start = j * stride - padding
        fits = start + span <= n + padding
        partial = ceil_mode and not fits and start + span < n + padding + stride and start < n
        if not (fits or partial):
            return windows
        taps = [start + t * dilation for t in range(kernel)]
        padded = min(start + kernel, n + padding) - start   # AvgPool2d only (no dilation there)
        windows.append(([i for i in taps if 0 <= i < n], padded))
        j += 1


def adaptive_windows(n: int, m: int):
    """The m adaptive windows along an axis of length n: window o is [floor(o*n/m), ceil((o+1)*n/m))."""
    return [(list(range(o * n // m, -(-(o + 1) * n // m))), None) for o in range(m)]


def _grid(rows, cols):
    """(oh, ow, row indices, col indices, row padded length, col padded length) per output."""
    return [(oh, ow, r, c, rp, cp) for oh, (r, rp) in enumerate(rows) for ow, (c, cp) in enumerate(cols)]


def _max_pool(x, rows, cols):
    x = np.asarray(x, np.float64)
    b, ch, _, w = x.shape
    y = np.empty((b, ch, len(rows), len(cols)))
    argmax = np.empty(y.shape, np.int64)
    for oh, ow, r, c, _, _ in _grid(rows, cols):
        flat = np.array([i * w + j for i in r for j in c])         # scan order: rows, then columns
        values = x[:, :, r][:, :, :, c].reshape(b, ch, -1)
        first = values.argmax(axis=-1)                              # the first maximum wins ties
        y[:, :, oh, ow] = np.take_along_axis(values, first[..., None], -1)[..., 0]
        argmax[:, :, oh, ow] = flat[first]
    return y, argmax


def max_pool2d_forward(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """(y, argmax): the window maxima and their flat indices within the input plane (h * W + w)."""
    k, s, p, d = _pair(kernel_size), _pair(stride or kernel_size), _pair(padding), _pair(dilation)
    _, _, h, w = np.shape(x)
    return _max_pool(x, sliding_windows(h, k[0], s[0], p[0], d[0], ceil_mode),
                     sliding_windows(w, k[1], s[1], p[1], d[1], ceil_mode))


def max_pool2d_backward(dy, argmax, input_shape):
    """dx: each dy added to the input its window's maximum came from."""
    b, ch, h, w = input_shape
    dx = np.zeros((b * ch, h * w))
    planes = np.repeat(np.arange(b * ch), argmax[0, 0].size)
    np.add.at(dx, (planes, np.asarray(argmax).reshape(-1)), np.asarray(dy, np.float64).reshape(-1))
    return dx.reshape(input_shape)


def _average(x, rows, cols, divisor):
    x = np.asarray(x, np.float64)
    y = np.empty(x.shape[:2] + (len(rows), len(cols)))
    for oh, ow, r, c, rp, cp in _grid(rows, cols):
        y[:, :, oh, ow] = x[:, :, r][:, :, :, c].sum(axis=(2, 3)) / divisor(r, c, rp, cp)
    return y


def _average_backward(dy, input_shape, rows, cols, divisor):
    dy = np.asarray(dy, np.float64)
    dx = np.zeros(input_shape)
    for oh, ow, r, c, rp, cp in _grid(rows, cols):
        rr, cc = np.ix_(r, c)
        dx[:, :, rr, cc] += (dy[:, :, oh, ow] / divisor(r, c, rp, cp))[:, :, None, None]
    return dx


def _avg_geometry(shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    k, s, p = _pair(kernel_size), _pair(stride or kernel_size), _pair(padding)
    rows = sliding_windows(shape[2], k[0], s[0], p[0], 1, ceil_mode)
    cols = sliding_windows(shape[3], k[1], s[1], p[1], 1, ceil_mode)

    def divisor(r, c, rp, cp):
        if divisor_override:
            return divisor_override
        return rp * cp if count_include_pad else len(r) * len(c)
    return rows, cols, divisor


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                       divisor_override=None):
    """y: window sums over the in-input positions, divided by divisor_override if given, else by the
    window's size counting padding (count_include_pad) or not."""
    return _average(x, *_avg_geometry(np.shape(x), kernel_size, stride, padding, ceil_mode, count_include_pad,
                                      divisor_override))


def avg_pool2d_backward(dy, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    """dx: each dy / divisor added to every in-input position of its window."""
    return _average_backward(dy, input_shape, *_avg_geometry(input_shape, kernel_size, stride, padding, ceil_mode,
                                                             count_include_pad, divisor_override))


def _adaptive_geometry(shape, output_size):
    out = tuple(n if o is None else o for o, n in zip(_pair(output_size), shape[2:]))
    return (adaptive_windows(shape[2], out[0]), adaptive_windows(shape[3], out[1]),
            lambda r, c, rp, cp: len(r) * len(c))


def adaptive_avg_pool2d_forward(x, output_size):
    """y: the mean of each adaptive window (output_size: int, or pair with None for "as the input")."""
    return _average(x, *_adaptive_geometry(np.shape(x), output_size))


def adaptive_avg_pool2d_backward(dy, input_shape, output_size):
    """dx: each dy / window size added to every position of its window."""
    return _average_backward(dy, input_shape, *_adaptive_geometry(input_shape, output_size))
