"""Convolutional networks end to end: a residual block vs PyTorch for one SGD step with the same
weights, and a small CNN trained on the 8x8 digits by `vkbackprop train --model cnn`."""

import json
import subprocess
import sys

import numpy as np
import torch

import vkbackprop as vb
from oracles import check_step_against_twin, torch_twin


def _named(layer, name):
    layer.name = name
    return layer


def vk_residual_net(c_in, width, stride):
    """conv-bn-relu-conv-bn + projected skip, ReLU, global average pool, linear: layers named like
    the torch twin's attributes, so the state_dict keys agree."""
    x = vb.Input((c_in, 7, 9), name="image")
    h = _named(vb.Conv2d(c_in, width, 3, stride, 1, bias=False), "conv1")(x)
    h = vb.ReLU()(_named(vb.BatchNorm2d(width), "bn1")(h))
    h = _named(vb.BatchNorm2d(width), "bn2")(_named(vb.Conv2d(width, width, 3, 1, 1, bias=False), "conv2")(h))
    skip = _named(vb.BatchNorm2d(width), "proj_bn")(_named(vb.Conv2d(c_in, width, 1, stride, bias=False), "proj")(x))
    h = vb.ReLU()(vb.Add()(h, skip))
    y = _named(vb.Linear(width, 5), "fc")(vb.Flatten()(vb.AdaptiveAvgPool2d(1)(h)))
    return vb.Model(inputs=x, outputs=y)


class TorchResidualNet(torch.nn.Module):
    def __init__(self, c_in, width, stride):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(c_in, width, 3, stride, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(width)
        self.conv2 = torch.nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(width)
        self.proj = torch.nn.Conv2d(c_in, width, 1, stride, bias=False)
        self.proj_bn = torch.nn.BatchNorm2d(width)
        self.fc = torch.nn.Linear(width, 5)

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        h = torch.relu(h + self.proj_bn(self.proj(x)))
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(h, 1), 1))


def test_residual_block_matches_torch_for_sgd_steps(device, rng):
    c_in, width, stride, batch = 3, 6, 2, 5
    model = vk_residual_net(c_in, width, stride)
    state = model.state_dict()
    # Random (not default) affine parameters and running statistics, so every term is exercised.
    for key, value in state.items():
        if key.endswith(("weight", "bias", "running_mean")):
            state[key] = rng.standard_normal(value.shape).astype(np.float32) * (0.5 if "bn" in key else 1.0) + \
                (1.0 if key.endswith("bn1.weight") else 0.0)
        elif key.endswith("running_var"):
            state[key] = rng.uniform(0.5, 2.0, value.shape).astype(np.float32)
    model.load_state_dict(state)
    twin = torch_twin(TorchResidualNet(c_in, width, stride), model, torch.float64)
    assert list(twin.state_dict()) == list(model.state_dict())        # PyTorch's names and order
    trainer = vb.Trainer(model, vb.CrossEntropyLoss(), vb.SGD(lr=0.1), batch, device=device)
    for step in range(2):
        x = rng.standard_normal((batch, c_in * 7 * 9)).astype(np.float32)
        y = rng.integers(0, 5, batch)
        twin.zero_grad()
        want = torch.nn.functional.cross_entropy(twin(torch.tensor(x, dtype=torch.float64).reshape(batch, c_in, 7, 9)),
                                                 torch.tensor(y))
        check_step_against_twin(trainer, x, y, twin, want)     # loss, gradients, weights, running stats

    # Prediction runs in eval mode: the running statistics, like twin.eval().
    x = rng.standard_normal((7, c_in * 7 * 9)).astype(np.float32)
    twin.eval()
    with torch.no_grad():
        want = twin(torch.tensor(x, dtype=torch.float64).reshape(7, c_in, 7, 9)).numpy()
    np.testing.assert_allclose(trainer.predict(x), want, rtol=1e-4, atol=1e-5)


def test_cli_trains_a_cnn_on_digits_to_98_percent(tmp_path):
    out = tmp_path / "cnn"
    proc = subprocess.run([sys.executable, "-m", "vkbackprop", "train", "--model", "cnn", "--dataset", "digits",
                           "--epochs", "12", "--batch-size", "32", "--optimizer", "adam", "--lr", "0.003",
                           "--schedule", "cosine", "--quiet", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "cnn" and len(metrics["history"]["loss"]) == 12
    assert metrics["test"]["accuracy"] >= 0.98, metrics["test"]
