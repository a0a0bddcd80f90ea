"""Dropout's reference: shaders/dropout/random.glsl's counter-based hash, in NumPy. Change both together."""

from __future__ import annotations

import math

import numpy as np

M32 = 0xFFFFFFFF


def mix(x):
    """lowbias32 on uint32 words, computed in uint64 with explicit wrap-around."""
    x = np.asarray(x, dtype=np.uint64) & M32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & M32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & M32
    return x ^ (x >> 16)


def bits(seed: int, step: int, index):
    """32 random bits per element index for a 64-bit seed and a training step."""
    key = mix((seed & M32) ^ mix(((seed >> 32) + 0x9E3779B9) & M32))
    stream = mix(key ^ mix((step + 0x632BE5AB) & M32))
    return mix(stream ^ mix(index))


def keep_mask(seed: int, step: int, shape, p: float) -> np.ndarray:
    """float64 1.0 where the element at that row-major index survives, 0.0 where it is dropped."""
    index = np.arange(math.prod(shape), dtype=np.uint64)
    return (bits(seed, step, index) >= math.floor(p * 2**32)).astype(np.float64).reshape(shape)


def dropout_forward(x, seed: int, step: int, p: float) -> np.ndarray:
    """y = x * mask / (1 - p) in training mode."""
    x = np.asarray(x, dtype=np.float64)
    return x * keep_mask(seed, step, x.shape, p) / (1.0 - p)


def dropout_backward(dy, seed: int, step: int, p: float) -> np.ndarray:
    """dx = dy * mask / (1 - p): the same mask as forward."""
    dy = np.asarray(dy, dtype=np.float64)
    return dy * keep_mask(seed, step, dy.shape, p) / (1.0 - p)
