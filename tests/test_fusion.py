"""A Linear whose output only a ReLU reads stores max(., 0) itself (plan.py `_fusions`): the ReLU's
forward dispatch and its barrier go, and everything the trainer computes stays bit-identical to
the unfused plan (the oracle here: the same plan with fusion turned off), which the other tests
already compare with PyTorch."""

import numpy as np
import pytest

import vkbackprop as vb
from vkbackprop.bench.models import vkbackprop_mlp as mlp
from vkbackprop.layers import gemm_shuffle
from vkbackprop.plan import StepPlan
from oracles import check_barriers_exact


def forward_names(plan):
    return [w.name for k, w in plan.predict.log if k == "dispatch"]


def run(model_fn, batch, steps, rng_seed, device, monkeypatch, fuse: bool, optimizer=None):
    """Losses, gradients, parameters and predictions after `steps` SGD steps, with or without fusion."""
    with monkeypatch.context() as patch:
        if not fuse:
            patch.setattr(StepPlan, "_fusions", lambda self, model: {})
        vb.manual_seed(0)
        model = model_fn()
        trainer = vb.Trainer(model, vb.CrossEntropyLoss(), optimizer or vb.SGD(lr=0.1, momentum=0.9), batch,
                             device=device)
    rng = np.random.default_rng(rng_seed)
    width = trainer.plan.inputs[0].shape[1]
    classes = trainer.plan.outputs[0].shape[1]
    losses = []
    for _ in range(steps):
        x = rng.standard_normal((batch, width)).astype(np.float32)
        losses.append(trainer.step(x, rng.integers(0, classes, batch)))
    x = rng.standard_normal((batch + 3, width)).astype(np.float32)
    return trainer, losses, trainer.gradients(), model.state_dict(), trainer.predict(x)


@pytest.mark.parametrize("kernel", ["auto", "scalar"])   # auto: the vec4 core on lavapipe (both orientations)
@pytest.mark.parametrize("sizes,batch", [((12, 16, 16, 5), 8), ((7, 9, 3), 5), ((784, 256, 256, 10), 16)])
def test_fused_plan_is_bit_identical_and_drops_the_relu_forwards(device, monkeypatch, sizes, batch, kernel):
    monkeypatch.setattr(gemm_shuffle, "KERNEL", kernel)
    fused = run(lambda: mlp(sizes), batch, 3, 1, device, monkeypatch, fuse=True)
    plain = run(lambda: mlp(sizes), batch, 3, 1, device, monkeypatch, fuse=False)
    assert fused[1] == plain[1]
    for a, b in zip(fused[2:4], plain[2:4]):
        assert a.keys() == b.keys()
        for k in a:
            assert np.array_equal(a[k], b[k]), k
    assert np.array_equal(fused[4], plain[4])

    hidden = len(sizes) - 2
    names = forward_names(fused[0].plan)
    assert not any("relu/forward" in n for n in names) and len(names) == len(sizes) - 1
    assert sum("relu/forward" in n for n in forward_names(plain[0].plan)) == hidden
    train = [w.name for k, w in fused[0].plan.train.log if k == "dispatch"]
    assert sum("relu/backward" in n for n in train) == hidden      # backward is unchanged
    for plan in (fused[0].plan.train, fused[0].plan.predict):
        check_barriers_exact(plan.log)
    # Each hidden Linear's forward writes its ReLU's output buffer directly.
    first = next(w for k, w in fused[0].plan.train.log if k == "dispatch")
    assert [b.name for b in first.writes] == ["1.output"]


def test_not_fused_where_the_linear_output_has_another_reader(device, monkeypatch):
    """h = Linear(x) feeds the ReLU and an Add; a model output; a LeakyReLU (needs its input); a view."""
    def skip():
        x = vb.Input(6)
        h = vb.Linear(6, 8)(x)
        return vb.Model(x, vb.Linear(8, 3)(vb.Add()(vb.ReLU()(h), h)))

    def output():
        x = vb.Input(6)
        h = vb.Linear(6, 8)(x)
        return vb.Model(x, [vb.Linear(8, 3)(vb.ReLU()(h)), h])

    def leaky():
        return vb.Sequential(vb.Linear(6, 8), vb.LeakyReLU(0.1), vb.Linear(8, 3))

    def view():
        return vb.Sequential(vb.Linear(6, 8), vb.Flatten(), vb.ReLU(), vb.Linear(8, 3))

    for build in (skip, leaky, view):
        trainer = run(build, 4, 1, 2, device, monkeypatch, fuse=True)[0]
        assert any(n.endswith("/forward") and "relu" in n for n in forward_names(trainer.plan)), build.__name__
    plan = StepPlan.__new__(StepPlan)
    model = output()
    plan._root = {id(v): v for v in model.inputs}
    for call in model.calls:
        plan._root[id(call.output)] = call.output
    assert plan._fusions(model) == {}
