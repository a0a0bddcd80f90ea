"""Float64 NumPy reference Conv2d (PyTorch semantics, NCHW, zero padding, groups), written as a sum
over kernel taps: tap (kh, kw) multiplies a strided view of the padded input by weight[:, :, kh, kw].

x (B, C, H, W), weight (O, C / groups, KH, KW), bias (O,) or None; stride, padding and dilation are
an int or an (H, W) pair; padding also 'valid' or 'same' (stride 1; an odd total pads the extra row or
column at the bottom/right, as torch does)."""

import numpy as np


def _pair(value):
    return (value, value) if np.ndim(value) == 0 else tuple(value)


def _pads(padding, kernel, dilation):
    """((top, bottom), (left, right))."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in totals)
    return tuple((p, p) for p in _pair(padding))


def _taps(x_shape, weight_shape, stride, padding, dilation):
    """The padding and, per tap (kh, kw), the index of its strided view into the padded input."""
    stride, dilation = _pair(stride), _pair(dilation)
    kernel = weight_shape[2:]
    pads = _pads(padding, kernel, dilation)
    padded = [n + sum(p) for n, p in zip(x_shape[2:], pads)]
    out = [(n - d * (k - 1) - 1) // s + 1 for n, k, d, s in zip(padded, kernel, dilation, stride)]
    taps = {}
    for kh in range(kernel[0]):
        for kw in range(kernel[1]):
            h0, w0 = kh * dilation[0], kw * dilation[1]
            taps[kh, kw] = (..., slice(h0, h0 + stride[0] * (out[0] - 1) + 1, stride[0]),
                            slice(w0, w0 + stride[1] * (out[1] - 1) + 1, stride[1]))
    return pads, taps


def _grouped(a, groups):
    """(B, C, ...) as (B, groups, C / groups, ...)."""
    return a.reshape(a.shape[0], groups, a.shape[1] // groups, *a.shape[2:])


def conv2d_forward(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """y (B, O, OH, OW) = sum over taps and in channels of the group of weight * x, + bias."""
    x, weight = np.asarray(x, np.float64), np.asarray(weight, np.float64)
    pads, taps = _taps(x.shape, weight.shape, stride, padding, dilation)
    xg = _grouped(np.pad(x, ((0, 0), (0, 0)) + pads), groups)       # (B, G, Cg, H, W)
    wg = weight.reshape(groups, -1, *weight.shape[1:])                # (G, Og, Cg, KH, KW)
    y = sum(np.einsum("bgchw,goc->bgohw", xg[view], wg[..., kh, kw]) for (kh, kw), view in taps.items())
    y = y.reshape(y.shape[0], -1, *y.shape[3:])
    return y if bias is None else y + np.asarray(bias, np.float64)[:, None, None]


def conv2d_backward(x, weight, dy, stride=1, padding=0, dilation=1, groups=1, has_bias=True):
    """(dx, dweight, dbias) for upstream gradient dy (B, O, OH, OW); dbias is None without a bias.
    Each tap scatters its share of dx back onto its strided view of the padded input."""
    x, weight, dy = (np.asarray(a, np.float64) for a in (x, weight, dy))
    pads, taps = _taps(x.shape, weight.shape, stride, padding, dilation)
    xg = _grouped(np.pad(x, ((0, 0), (0, 0)) + pads), groups)
    wg = weight.reshape(groups, -1, *weight.shape[1:])
    dyg = _grouped(dy, groups)                                         # (B, G, Og, OH, OW)
    dxg = np.zeros_like(xg)
    dwg = np.zeros_like(wg)
    for (kh, kw), view in taps.items():
        dxg[view] += np.einsum("bgohw,goc->bgchw", dyg, wg[..., kh, kw])
        dwg[..., kh, kw] = np.einsum("bgohw,bgchw->goc", dyg, xg[view])
    (top, _), (left, _) = pads
    dx = dxg.reshape(x.shape[0], x.shape[1], *xg.shape[3:])[:, :, top:top + x.shape[2], left:left + x.shape[3]]
    dbias = dy.sum(axis=(0, 2, 3)) if has_bias else None
    return dx, dwg.reshape(weight.shape), dbias
