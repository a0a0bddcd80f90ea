"""Identity, Flatten and Reshape are views: no copy, no dispatch; gradients flow through the alias
and still add with other consumers. Checked against PyTorch with the same weights."""

import numpy as np
import pytest
import torch

import vkbackprop as vb
from oracles import check_step, lin

F = torch.nn.functional


def test_flatten_then_linear_matches_torch(device, rng):
    vb.manual_seed(10)
    x = vb.Input((2, 3, 4))
    flat = vb.Flatten()(x)
    assert flat.shape == (24,)
    out = vb.Linear(24, 5)(vb.Reshape(4, 6)(vb.Flatten()(vb.Reshape(6, -1)(vb.ReLU()(vb.Linear(24, 24)(flat))))))
    model = vb.Model(x, out)
    xv, yv = rng.standard_normal((3, 24)), rng.standard_normal((3, 5))

    def reference(p, xt):
        h = F.relu(lin(p, "1", xt.reshape(3, 2, 3, 4).flatten(1)))
        return F.mse_loss(lin(p, "6", h.reshape(3, 6, 4).flatten(1).reshape(3, 4, 6).flatten(1)), torch.tensor(yv))
    trainer = check_step(model, vb.MSELoss(), xv, yv, reference, device)
    # The views recorded nothing and own no buffers: no buffer is named after one (labels 0, 3, 4, 5),
    # and the gradients take 3 buffers: the loss's (3x5), then dL/d(ReLU output) (3x24, the views'
    # too) while the ReLU's backward writes dL/d(Linear 1 output) (3x24).
    names = [w.name for k, w in trainer.plan.train.log if k == "dispatch"]
    assert not any("flatten" in n.lower() or "reshape" in n.lower() for n in names)
    bound = {b.name for k, w in trainer.plan.train.log if k == "dispatch" for b in w.bound.values()}
    assert not any(n.split(".")[0] in {"0", "3", "4", "5"} for n in bound)
    assert [b.shape for b in trainer.plan.pool.made] == [(3, 5), (3, 24), (3, 24)]
    # (the non-finite guard reads the loss and the gradients, or the squares their GEMMs summed)


def test_identity_alias_still_adds_gradients(device, rng):
    vb.manual_seed(11)
    x = vb.Input(5)
    h = vb.Linear(5, 6)(x)
    out = vb.Linear(6, 2)(vb.Add()(vb.Identity()(h), vb.Tanh()(h)))   # h reaches Add twice
    model = vb.Model(x, out)
    xv, yv = rng.standard_normal((4, 5)), rng.standard_normal((4, 2))

    def reference(p, xt):
        ht = lin(p, "0", xt)
        return F.mse_loss(lin(p, "4", ht + torch.tanh(ht)), torch.tensor(yv))
    check_step(model, vb.MSELoss(), xv, yv, reference, device)


def test_output_that_is_a_view(device, rng):
    vb.manual_seed(12)
    x = vb.Input(4)
    out = vb.Flatten()(vb.Reshape(3, 2)(vb.Linear(4, 6)(x)))
    model = vb.Model(x, out)
    xv, yv = rng.standard_normal((5, 4)), rng.standard_normal((5, 6))
    trainer = check_step(model, vb.MSELoss(), xv, yv,
                         lambda p, xt: F.mse_loss(lin(p, "0", xt), torch.tensor(yv)), device)
    want = xv @ model.state_dict()["0.weight"].T.astype(np.float64) + model.state_dict()["0.bias"]
    np.testing.assert_allclose(trainer.predict(xv), want, rtol=1e-4, atol=1e-5)


def test_view_errors():
    x = vb.Input((2, 6))
    with pytest.raises(ValueError, match=r"cannot view \(2, 6\) \(12 values per sample\) as \(5, -1\)"):
        vb.Reshape(5, -1)(x)
    with pytest.raises(ValueError, match="at most one -1"):
        vb.Reshape(-1, -1)
    with pytest.raises(ValueError, match="not per-sample dims"):
        vb.Flatten(start_dim=0)(x)
    with pytest.raises(ValueError, match="Identity takes one input"):
        vb.Identity()(x, x)
    assert vb.Flatten(1, 2)(vb.Input((2, 3, 4))).shape == (6, 4)
    assert vb.Reshape(3, -1)(x).shape == (3, 4)
    with pytest.raises(ValueError, match="Input: shape must be"):
        vb.Input((2, 0))
