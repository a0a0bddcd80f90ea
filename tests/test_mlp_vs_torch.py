"""A whole MLP, same weights in PyTorch and vkbackprop, one SGD step on the same batch: loss,
gradients and updated weights agree (relative error <= 1e-4)."""

import numpy as np
import pytest
import torch

import vkbackprop as vb
from oracles import check_step_against_twin, torch_twin


@pytest.mark.parametrize("loss_name", ["cross_entropy", "mse"])
def test_one_sgd_step_matches_pytorch(device, rng, loss_name):
    batch, lr = 64, 0.1
    vb.manual_seed(1)
    model = vb.Sequential(vb.Linear(64, 128), vb.ReLU(), vb.Linear(128, 10))
    loss = vb.CrossEntropyLoss() if loss_name == "cross_entropy" else vb.MSELoss()
    trainer = vb.Trainer(model, loss=loss, optimizer=vb.SGD(lr=lr), batch_size=batch, device=device)

    x = rng.standard_normal((batch, 64)).astype(np.float32)
    y = rng.integers(0, 10, batch) if loss_name == "cross_entropy" else rng.standard_normal((batch, 10)).astype(np.float32)

    reference = torch_twin(torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)),
                           model)
    out = reference(torch.from_numpy(x))
    target = torch.from_numpy(y)
    want_loss = (torch.nn.functional.cross_entropy(out, target) if loss_name == "cross_entropy"
                 else torch.nn.functional.mse_loss(out, target))
    check_step_against_twin(trainer, x, y, reference, want_loss)
