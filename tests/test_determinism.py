"""Running a layer's forward and backward twice gives identical bits (fixed-order reductions, no
atomics): multi-input layers and Dropout here; single-input layers in test_layers_gpu.py."""

import numpy as np
import pytest

import vkbackprop as vb
from vkbackprop.gradcheck import run_layer


@pytest.mark.parametrize("make, widths", [(vb.Add, (9, 9, 9)), (vb.Concat, (3, 7, 1)),
                                          (lambda: vb.Dropout(0.4, seed=3), (17,))],
                         ids=["Add", "Concat", "Dropout"])
def test_twice_identical(device, rng, make, widths):
    layer = make()
    xs = [rng.standard_normal((5, w)).astype(np.float32) for w in widths]
    out = layer.out_features(*widths)
    dy = rng.standard_normal((5, out)).astype(np.float32)
    args = xs if len(xs) > 1 else xs[0]
    (y1, dx1, _), (y2, dx2, _) = run_layer(device, layer, args, {}, dy), run_layer(device, layer, args, {}, dy)
    np.testing.assert_array_equal(y1, y2)
    for a, b in zip(dx1 if isinstance(dx1, list) else [dx1], dx2 if isinstance(dx2, list) else [dx2]):
        np.testing.assert_array_equal(a, b)
