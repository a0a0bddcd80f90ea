"""Trains three small models for a few steps on the default device and writes what they computed
(losses, gradients, predictions), the shaders its steps ran and the device's subgroup size to an
.npz file: test_subgroup_sizes runs it on lavapipe at several subgroup sizes and compares the files
bit for bit.

    python probe.py OUT.npz

The models cover the shaders that use subgroup operations or quads: the convolution shuffle core
(forward, weight and input gradients, the strided input gradient by phases) with batch norm, Add
and ReLU; Linear on the shuffle core with GELU, LayerNorm and gradient clipping; an LSTM with a
hidden size in quads; per-channel and per-row reductions, cross-entropy and the optimizers."""

import sys

import numpy as np

import vkbackprop as vb
from vkbackprop import zoo

STEPS = 3


def resnet():
    model = zoo.small_resnet((3, 16, 16), 10, (8, 16, 32))
    return model, dict(optimizer=vb.Adam(lr=1e-3)), (16, 3 * 16 * 16), 10


def mlp():
    x = vb.Input(64)
    h = vb.LayerNorm(128)(vb.GELU()(vb.Linear(64, 128)(x)))
    model = vb.Model(x, vb.Linear(128, 12)(vb.ReLU()(vb.Linear(128, 128)(h))))
    return model, dict(optimizer=vb.SGD(lr=0.1, momentum=0.9), clip_grad_norm=0.5), (32, 64), 12


def lstm():
    x = vb.Input((6, 8))   # 6 steps of 8 features
    layer = vb.LSTM(8, 16, return_state=True)
    _, (h_n, _) = layer.split(layer(x))
    model = vb.Model(x, vb.Linear(16, 5)(vb.Flatten()(h_n)))
    return model, dict(optimizer=vb.AdamW(lr=1e-2)), (8, 48), 5


def main(out: str) -> None:
    results = {"subgroup_size": np.array(vb.Device.default().properties["subgroup_size"])}
    shaders = set()
    for make in (resnet, mlp, lstm):
        vb.manual_seed(0)
        rng = np.random.default_rng(0)
        model, options, (batch, width), classes = make()
        trainer = vb.Trainer(model, vb.CrossEntropyLoss(), options.pop("optimizer"), batch, **options)
        x = rng.standard_normal((batch, width)).astype(np.float32)
        y = rng.integers(0, classes, batch)
        results[f"{make.__name__}/losses"] = np.array([trainer.step(x, y) for _ in range(STEPS)], np.float32)
        for name, grad in trainer.gradients().items():
            results[f"{make.__name__}/grad/{name}"] = grad
        results[f"{make.__name__}/predict"] = np.asarray(trainer.predict(x))
        shaders |= {what.program.path for kind, what in trainer.plan.train.log if kind == "dispatch"}
    np.savez(out, shaders=np.array(sorted(shaders)), **results)


if __name__ == "__main__":
    main(sys.argv[1])
