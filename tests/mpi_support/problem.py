"""The model, optimizer and batches shared by the data-parallel test's ranks and its single-process twin."""

import numpy as np

import vkbackprop as vb

STEPS = 20


def make_model():
    vb.manual_seed(0)
    return vb.Sequential(vb.Linear(6, 16), vb.ReLU(), vb.Linear(16, 16), vb.ReLU(), vb.Linear(16, 3))


def make_optimizer(name):
    return vb.SGD(lr=0.1, momentum=0.9) if name == "sgd" else vb.Adam(lr=0.01)


def batches():
    rng = np.random.default_rng(5)
    return [(rng.standard_normal((8, 6)).astype(np.float32), rng.integers(0, 3, 8)) for _ in range(STEPS)]


def make_bn_model():
    vb.manual_seed(0)
    return vb.Sequential(vb.Linear(6, 16), vb.BatchNorm1d(16), vb.ReLU(), vb.Linear(16, 3))
