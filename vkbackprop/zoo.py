"""Ready-made models for the CLI, the demo and the benchmarks (built from the public layers)."""

from __future__ import annotations

import math


def mlp(in_features: int, classes: int, hidden: int = 128):
    """in_features -> hidden -> ReLU -> classes."""
    import vkbackprop as vb
    return vb.Sequential(vb.Linear(in_features, hidden), vb.ReLU(), vb.Linear(hidden, classes))


def cnn(input_shape: tuple, classes: int, channels: tuple = (16, 32)):
    """(conv 3x3 -> batch norm -> ReLU -> 2x2 max pool) per entry of `channels`, then a linear
    classifier: the issue's "conv-bn-relu-pool x2 + linear"."""
    import vkbackprop as vb
    layers, c, h, w = [], *input_shape
    for out in channels:
        layers += [vb.Conv2d(c, out, 3, padding=1, bias=False), vb.BatchNorm2d(out), vb.ReLU(), vb.MaxPool2d(2)]
        c, h, w = out, h // 2, w // 2
    if h < 1 or w < 1:
        raise ValueError(f"cnn: input {tuple(input_shape)} is too small for {len(channels)} 2x2 poolings")
    return vb.Sequential(*layers, vb.Flatten(), vb.Linear(c * h * w, classes), input_shape=tuple(input_shape))


def residual_block(x, channels: int, stride: int = 1, name: str | None = None):
    """conv-bn-relu-conv-bn + skip, then ReLU (the ResNet basic block) on graph value x of shape
    (C, H, W); a strided or widening block projects the skip with a 1x1 conv + batch norm."""
    import vkbackprop as vb
    c = x.shape[0]
    h = vb.ReLU()(vb.BatchNorm2d(channels)(vb.Conv2d(c, channels, 3, stride, 1, bias=False)(x)))
    h = vb.BatchNorm2d(channels)(vb.Conv2d(channels, channels, 3, 1, 1, bias=False)(h))
    skip = x
    if stride != 1 or c != channels:
        skip = vb.BatchNorm2d(channels)(vb.Conv2d(c, channels, 1, stride, bias=False)(x))
    return vb.ReLU()(vb.Add()(h, skip))


def small_resnet(input_shape: tuple = (3, 32, 32), classes: int = 10, widths: tuple = (16, 32, 64)):
    """A CIFAR-style ResNet: a 3x3 stem, one residual block per width (stride 2 after the first),
    global average pooling and a linear classifier."""
    import vkbackprop as vb
    x = vb.Input(tuple(input_shape), name="image")
    h = vb.ReLU()(vb.BatchNorm2d(widths[0])(vb.Conv2d(input_shape[0], widths[0], 3, 1, 1, bias=False)(x)))
    for i, width in enumerate(widths):
        h = residual_block(h, width, stride=1 if i == 0 else 2)
    y = vb.Linear(widths[-1], classes)(vb.Flatten()(vb.AdaptiveAvgPool2d(1)(h)))
    return vb.Model(inputs=x, outputs=y)


def image_shape(features: int) -> tuple:
    """(1, s, s) for square single-channel images of `features` pixels (8x8 digits, 28x28 MNIST)."""
    side = math.isqrt(features)
    if side * side != features:
        raise ValueError(f"--model cnn needs square single-channel images; {features} features is not a square")
    return (1, side, side)
