"""A whole MLP, same weights in PyTorch and vkbackprop, one SGD step on the same batch: loss,
gradients and updated weights agree (relative error <= 1e-4)."""

import numpy as np
import pytest
import torch

import vkbackprop as vb


def rel_err(got, want) -> float:
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))


@pytest.mark.parametrize("loss_name", ["cross_entropy", "mse"])
def test_one_sgd_step_matches_pytorch(device, rng, loss_name):
    batch, lr = 64, 0.1
    vb.manual_seed(1)
    model = vb.Sequential(vb.Linear(64, 128), vb.ReLU(), vb.Linear(128, 10))
    loss = vb.CrossEntropyLoss() if loss_name == "cross_entropy" else vb.MSELoss()
    trainer = vb.Trainer(model, loss=loss, optimizer=vb.SGD(lr=lr), batch_size=batch, device=device)

    x = rng.standard_normal((batch, 64)).astype(np.float32)
    y = rng.integers(0, 10, batch) if loss_name == "cross_entropy" else rng.standard_normal((batch, 10)).astype(np.float32)

    reference = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    reference.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    out = reference(torch.from_numpy(x))
    target = torch.from_numpy(y)
    want_loss = (torch.nn.functional.cross_entropy(out, target) if loss_name == "cross_entropy"
                 else torch.nn.functional.mse_loss(out, target))
    want_loss.backward()
    torch.optim.SGD(reference.parameters(), lr=lr).step()

    got_loss = trainer.step(x, y)
    assert abs(got_loss - want_loss.item()) <= 1e-4 * abs(want_loss.item())
    grads = trainer.gradients()
    for name, p in reference.named_parameters():
        assert rel_err(grads[name], p.grad.numpy()) <= 1e-4, name
    updated = model.state_dict()
    for name, value in reference.state_dict().items():
        assert rel_err(updated[name], value.numpy()) <= 1e-4, name
