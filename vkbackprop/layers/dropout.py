"""Dropout (torch.nn.Dropout semantics) with counter-based random numbers on the GPU."""

from __future__ import annotations

import math
import numbers

import numpy as np

from .activation import elementwise
from .base import LayerIO, Module


class Dropout(Module):
    """Training: each element is zeroed with probability p and the survivors are scaled by
    1 / (1 - p); eval mode (`trainer.predict`): the identity. p must be in [0, 1).

    The mask is a pure function of (seed, training step, element index), computed by a hash on
    the GPU (shaders/dropout/random.glsl): the same seed gives the same masks, each step a new one,
    and backward recomputes exactly the forward mask rather than storing it. `seed=None` draws the
    seed from vkbackprop's host generator when the layer is made (so `vb.manual_seed` fixes it).
    """

    differs_in_eval = True
    keeps_shape = True
    backward_reads = ()         # the mask is recomputed from (seed, step, index)

    def __init__(self, p: float = 0.5, seed: int | None = None):
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not math.isfinite(float(p)) \
                or not 0.0 <= float(p) < 1.0:
            raise ValueError(f"Dropout: p must be a probability in [0, 1), got {p!r}")
        if seed is None:
            from ..random import generator
            seed = int(generator().integers(0, 2**64, dtype=np.uint64))
        elif isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) < 2**64:
            raise ValueError(f"Dropout: seed must be an int in [0, 2**64), got {seed!r}")
        self.p = float(p)
        self.seed = int(seed)

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"

    def _constants(self) -> dict:
        # Dropped where bits < floor(p * 2^32): probability within 2^-32 of p (exact scaling by 2^32).
        # The scale is float32(1) / float32(1 - p), as PyTorch's noise.div_(1 - p) on a float tensor.
        return {"SEED_LO": self.seed & 0xFFFFFFFF, "SEED_HI": self.seed >> 32,
                "THRESHOLD": min(math.floor(self.p * 2.0**32), 2**32 - 1),
                "SCALE": float(np.float32(1.0) / np.float32(1.0 - self.p))}

    def _step(self, io: LayerIO):
        if io.step is None:
            raise ValueError(f"{self!r} needs the step buffer (io.step) in training mode")
        return io.step

    def forward(self, io: LayerIO) -> list:
        n = io.x.size
        if not io.training or self.p == 0.0:
            return [elementwise(io.device, "dropout/identity.comp", {"x": io.x, "y": io.y}, n)]
        return [elementwise(io.device, "dropout/mask.comp", {"x": io.x, "step": self._step(io), "y": io.y},
                            n, self._constants())]

    def backward(self, io: LayerIO) -> list:
        if io.dx is None:
            return []
        n = io.dy.size
        if self.p == 0.0:
            return [elementwise(io.device, "dropout/identity.comp", {"x": io.dy, "y": io.dx}, n)]
        return [elementwise(io.device, "dropout/mask.comp", {"x": io.dy, "step": self._step(io), "y": io.dx},
                            n, self._constants())]   # the same mask on dy
