"""Comparisons and results: one quantity against its expected value (Comparison, _compare), a
check's results (GradcheckResult), and central finite differences of the reference."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .. import reference as ref


@dataclass
class Comparison:
    """One quantity compared: `expected` is the float64 reference (GPU check) or the finite
    difference (reference check); `got` is the GPU value or the reference value."""
    quantity: str                 # "y", "dx", "dx[1]", "dweight", "loss", "dpred", "d0.weight"
    check: str                    # "GPU vs reference" or "reference vs finite differences"
    max_abs: float
    max_rel: float                # max_abs / max |expected|
    tolerance: float              # on max_abs
    index: tuple                  # worst element
    expected: float
    got: float
    passed: bool

    def describe(self) -> str:
        return (f"{self.quantity} ({self.check}): worst at index {self.index}: expected {self.expected!r}, "
                f"got {self.got!r} (max abs error {self.max_abs:.3g} "
                f"{'<=' if self.passed else '>'} tolerance {self.tolerance:.3g}, max rel error {self.max_rel:.3g})")


@dataclass
class GradcheckResult:
    """Per quantity, GPU vs reference (`gpu`) and reference vs finite differences (`fd`); `passed`
    when every comparison passed. `inputs` and `upstream` are what was used (to reproduce a failure):
    the input arrays (a loss: [pred, target]) and dL/dy (a loss: dL/dloss; a model: one per output)."""
    name: str                                      # repr of the layer, loss or model
    gpu: dict = field(default_factory=dict)        # quantity -> Comparison
    fd: dict = field(default_factory=dict)         # quantity -> Comparison
    inputs: list = field(default=None, repr=False)
    upstream: object = field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.comparisons)

    @property
    def comparisons(self) -> list:
        return list(self.gpu.values()) + list(self.fd.values())

    @property
    def failures(self) -> list:
        return [c for c in self.comparisons if not c.passed]

    @staticmethod
    def _max(values) -> float:
        return max(values, default=0.0)

    @property
    def gpu_max_abs(self) -> float:
        return self._max(c.max_abs for c in self.gpu.values())

    @property
    def gpu_max_rel(self) -> float:
        return self._max(c.max_rel for c in self.gpu.values())

    @property
    def fd_max_abs(self) -> float:
        return self._max(c.max_abs for c in self.fd.values())

    @property
    def fd_max_rel(self) -> float:
        return self._max(c.max_rel for c in self.fd.values())

    def message(self) -> str:
        if self.passed:
            return f"gradcheck passed for {self.name}"
        return f"gradcheck failed for {self.name}:\n" + "\n".join("  " + c.describe() for c in self.failures)


def _compare(quantity, check, got, want, k, rtol, atol, positions=None) -> Comparison:
    """max |got - want| against sqrt(k + 1) * (atol + rtol * max |want|); non-finite values fail.
    `positions`: flat indices to compare (others are ignored)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return Comparison(quantity, check, math.inf, math.inf, 0.0, (), f"shape {want.shape}",
                          f"shape {got.shape}", False)
    flat_got, flat_want = got.reshape(-1), want.reshape(-1)
    if positions is None:
        positions = np.arange(flat_got.size)
    g, w = flat_got[positions], flat_want[positions]
    if g.size == 0:
        return Comparison(quantity, check, 0.0, 0.0, 0.0, (), 0.0, 0.0, True)
    err = np.abs(g - w)
    err[~np.isfinite(err)] = math.inf
    worst = int(np.argmax(err))
    finite_want = np.abs(w[np.isfinite(w)])
    scale = float(finite_want.max()) if finite_want.size else 0.0
    tol = math.sqrt(k + 1) * (atol + rtol * scale)
    max_abs = float(err[worst])
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else math.inf)
    index = tuple(int(i) for i in np.unravel_index(int(positions[worst]), got.shape))
    return Comparison(quantity, check, max_abs, max_rel, tol, index, float(w[worst]), float(g[worst]),
                      bool(max_abs <= tol))


def _central_differences(f, x, positions, eps):
    """d f / d x at the given flat positions of x (0 elsewhere): reference.numerical_gradient (float64
    central differences over the step actually taken after rounding) applied to those elements
    alone, the others held at their values in x."""
    x = np.array(x, dtype=np.float64)
    flat = x.reshape(-1)

    def f_at(values):
        full = flat.copy()
        full[positions] = values
        return f(full.reshape(x.shape))
    out = np.zeros(flat.size)
    out[positions] = ref.numerical_gradient(f_at, flat[positions], eps)
    return out.reshape(x.shape)


def _positions(size, rng, limit):
    if limit is None or size <= limit:
        return np.arange(size)
    return np.sort(rng.choice(size, limit, replace=False))
