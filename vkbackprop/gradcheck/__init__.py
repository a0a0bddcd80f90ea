"""Gradient checking: a layer's (or loss's, or model's) GPU forward/backward against the float64
reference, and the reference itself against central finite differences.

    import vkbackprop as vb
    vb.gradcheck(vb.Linear(7, 5))              # AssertionError naming the quantity and worst index on failure
    result = vb.gradcheck(vb.GELU("tanh"), raise_on_failure=False)
    print(result.passed, result.gpu["dx"].max_abs, result.fd["dx"].max_abs)

Two comparisons per quantity:
- GPU vs reference: the layer's shaders in float32 on the device against the float64 NumPy reference
  (vkbackprop.reference), given the same inputs, parameters and a random upstream gradient dL/dy.
  Quantities: `y`, `dx` (`dx[i]` for a layer with several inputs) and `d<param>` (`dweight`,
  `dbias`); for a loss `loss` and `dpred` with a random upstream scalar dL/dloss.
- reference vs finite differences: the reference backward against central differences (float64,
  step `eps`) of the scalar sum(dL/dy * y) (for a loss: dL/dloss * loss), for every input and
  parameter element (a random sample of `fd_max_elements` for larger ones).

Tolerances (fp32 vs float64, as the test suite's): a quantity of k-term sums (a Linear output sums
in_features products) passes when max |got - want| <= sqrt(k + 1) * (atol + rtol * max |want|); the
finite differences pass when max |reference - fd| <= fd_atol + fd_rtol * max |fd|. Max rel is
reported normwise: max |got - want| / max |want|.

A layer class is checked if it (or a base class) is in the registry, which maps it to a float64
reference forward/backward and example configurations; `register()` adds a class (your own layers
too). `vkbackprop gradcheck --all` prints a table of every registered example.
"""

from __future__ import annotations

from .check import gradcheck
from .compare import Comparison, GradcheckResult, _compare   # _compare: used by the tests
from .registry import REGISTRY, Example, LayerSpec, LossSpec, register, spec_for
from .run import run_layer, run_loss, run_model
from .table import Row, check_all, discover, format_table

__all__ = ["gradcheck", "GradcheckResult", "Comparison", "run_layer", "run_loss", "run_model", "register", "spec_for",
           "REGISTRY", "LayerSpec", "LossSpec", "Example", "check_all", "format_table", "discover", "Row"]
