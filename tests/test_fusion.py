"""A Linear, BatchNorm or Add whose output only a ReLU reads stores max(., 0) itself (plan.py
`_fusions`), a Linear whose input only it reads, the output of the ReLU right before it, applies
that ReLU's backward to the dx it stores (`_backward_fusions`), and an Add applies its fused ReLU's
backward to dy where no Linear took it (`dy_prologues`): the ReLU's dispatches and their barriers
go, and everything the trainer computes stays bit-identical to the unfused plan (the oracle here:
the same plan with fusion turned off), which the other tests already compare with PyTorch."""

import numpy as np
import pytest

import vkbackprop as vb
from vkbackprop import tuning, zoo
from vkbackprop.bench.models import vkbackprop_mlp as mlp
from vkbackprop.layers import gemm, gemm_shuffle
from vkbackprop.plan import StepPlan
from oracles import check_barriers_exact


def forward_names(plan):
    return [w.name for k, w in plan.predict.log if k == "dispatch"]


def run(model_fn, batch, steps, rng_seed, device, monkeypatch, fuse: bool, optimizer=None, backward=None):
    """Losses, gradients, parameters and predictions after `steps` SGD steps, with or without fusion
    (`backward`: the backward fusions alone on, True, or off, False; None: as `fuse`)."""
    backward = fuse if backward is None else backward
    with monkeypatch.context() as patch:
        if not fuse:
            patch.setattr(StepPlan, "_fusions", lambda self, model: {})
        if not backward:
            patch.setattr(StepPlan, "_backward_fusions", lambda self, model: {})
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


def assert_identical(fused, plain):
    assert fused[1] == plain[1]
    for a, b in zip(fused[2:4], plain[2:4]):
        assert a.keys() == b.keys()
        for k in a:
            assert np.array_equal(a[k], b[k]), k
    assert np.array_equal(fused[4], plain[4])


@pytest.mark.parametrize("texel_reads", ["0", "1"])   # 1: the vec4 core reads texel buffers (lavapipe's default)
@pytest.mark.parametrize("kernel", ["auto", "scalar"])   # auto: the vec4 core on lavapipe (both orientations)
@pytest.mark.parametrize("sizes,batch", [((12, 16, 16, 5), 8), ((7, 9, 3), 5), ((784, 256, 256, 10), 16),
                                         ((8, 12, 13, 6), 4)])
def test_fused_plan_is_bit_identical_and_drops_the_relu_dispatches(device, monkeypatch, sizes, batch, kernel,
                                                                   texel_reads):
    monkeypatch.setattr(gemm_shuffle, "KERNEL", kernel)
    monkeypatch.setenv("VKBACKPROP_TEXEL_READS", texel_reads)
    fused = run(lambda: mlp(sizes), batch, 3, 1, device, monkeypatch, fuse=True)
    plain = run(lambda: mlp(sizes), batch, 3, 1, device, monkeypatch, fuse=False)
    assert_identical(fused, plain)

    hidden = len(sizes) - 2
    names = forward_names(fused[0].plan)
    assert not any("relu/forward" in n for n in names) and len(names) == len(sizes) - 1
    assert sum("relu/forward" in n for n in forward_names(plain[0].plan)) == hidden
    train = [w.name for k, w in fused[0].plan.train.log if k == "dispatch"]
    assert not any("relu/" in n for n in train)
    assert sum("relu/backward" in n for n in [w.name for k, w in plain[0].plan.train.log if k == "dispatch"]) == hidden
    for plan in (fused[0].plan.train, fused[0].plan.predict):
        check_barriers_exact(plan.log)
    # Each hidden Linear's forward writes its ReLU's output buffer directly.
    first = next(w for k, w in fused[0].plan.train.log if k == "dispatch")
    assert [b.name for b in first.writes] == ["1.output"]


@pytest.mark.parametrize("kernel", ["auto", "scalar"])
def test_backward_fusion_alone_is_bit_identical(device, monkeypatch, kernel):
    # The ReLU forwards stay; each hidden ReLU's backward is its next Linear's dx epilogue.
    monkeypatch.setattr(gemm_shuffle, "KERNEL", kernel)
    sizes = (12, 16, 20, 5)
    backward_only = run(lambda: mlp(sizes), 8, 3, 3, device, monkeypatch, fuse=False, backward=True)
    assert_identical(backward_only, run(lambda: mlp(sizes), 8, 3, 3, device, monkeypatch, fuse=False))
    train = [w.name for k, w in backward_only[0].plan.train.log if k == "dispatch"]
    assert sum("relu/forward" in n for n in train) == 2 and not any("relu/backward" in n for n in train)
    check_barriers_exact(backward_only[0].plan.train.log)


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


def test_backward_not_fused_where_the_relu_output_has_another_reader_or_the_relu_is_not_next(device, monkeypatch):
    """r = ReLU(h) feeds the Linear and an Add; a model output; a Linear after an unrelated call."""
    def two_readers():
        x = vb.Input(6)
        r = vb.ReLU()(vb.Linear(6, 8)(x))
        return vb.Model(x, vb.Linear(8, 3)(vb.Add()(vb.Linear(8, 8)(r), r)))

    def output():
        x = vb.Input(6)
        r = vb.ReLU()(vb.Linear(6, 8)(x))
        return vb.Model(x, [vb.Linear(8, 3)(r), r])

    def not_next():
        # Model orders calls depth first, so a sole reader comes right after its producer; this
        # other valid order puts an unrelated call in between.
        x = vb.Input(6)
        r = vb.ReLU()(vb.Linear(6, 8)(x))
        other = vb.Linear(6, 3)(x)
        model = vb.Model(x, vb.Add()(vb.Linear(8, 3)(r), other))
        assert [type(c.layer).__name__ for c in model.calls] == ["Linear", "Linear", "ReLU", "Linear", "Add"]
        model.calls = [model.calls[i] for i in (1, 2, 0, 3, 4)]
        return model

    class OwnBackwardReLU(vb.ReLU):   # a user's ReLU with its own backward: never done by the Linear
        def backward(self, io):
            return super().backward(io)

    own = run(lambda: vb.Sequential(vb.Linear(6, 8), OwnBackwardReLU(), vb.Linear(8, 3)), 4, 1, 2, device,
              monkeypatch, fuse=True)
    assert sum("relu/" in w.name for k, w in own[0].plan.train.log if k == "dispatch") == 2
    fused = run(two_readers, 4, 2, 2, device, monkeypatch, fuse=True)
    assert any("relu/backward" in w.name for k, w in fused[0].plan.train.log if k == "dispatch")
    assert_identical(fused, run(two_readers, 4, 2, 2, device, monkeypatch, fuse=False))
    plan = StepPlan.__new__(StepPlan)
    for model in (output(), not_next()):
        plan._root = {id(v): v for v in model.inputs}
        for call in model.calls:
            plan._root[id(call.output)] = call.output
        assert plan._backward_fusions(model) == {}
    model.calls = [model.calls[i] for i in (2, 0, 1, 3, 4)]   # the depth-first order again: fused
    assert list(plan._backward_fusions(model).values()) == [model.calls[2]]


def cnn():
    """Conv -> BatchNorm -> ReLU twice (the second pair after a MaxPool), then a Linear."""
    return vb.Sequential(vb.Conv2d(2, 4, 3, padding=1), vb.BatchNorm2d(4), vb.ReLU(), vb.MaxPool2d(2),
                         vb.Conv2d(4, 8, 3, padding=1), vb.BatchNorm2d(8, affine=False), vb.ReLU(),
                         vb.Flatten(), vb.Linear(8 * 2 * 4, 5), input_shape=(2, 4, 8))


def test_batch_norm_stores_its_relu_in_training_and_eval_mode(device, monkeypatch):
    """BatchNorm + ReLU: one normalize dispatch, in the training step and in predict (eval mode,
    running statistics); bit-identical to the unfused plan, predictions included."""
    fused = run(cnn, 6, 3, 2, device, monkeypatch, fuse=True)
    plain = run(cnn, 6, 3, 2, device, monkeypatch, fuse=False)
    assert_identical(fused, plain)
    for plan in (fused[0].plan.train, fused[0].plan.predict):
        assert not any("relu/forward" in w.name for k, w in plan.log if k == "dispatch")
        check_barriers_exact(plan.log)
    assert sum("relu/forward" in n for n in forward_names(plain[0].plan)) == 2
    normalize = [w for k, w in fused[0].plan.predict.log if k == "dispatch" and "normalize" in w.name]
    assert [b.name for d in normalize for b in d.writes] == ["2.output", "6.output"]   # the ReLUs' outputs


def residual(addends: int):
    """Two residual blocks on a Linear's output h: r = ReLU(Add(h, Linear(h), ...)) with `addends`
    terms, then ReLU(Add(r, Linear(r))) and a Linear. The first block's ReLU output has two readers,
    so its backward can only be its Add's (dy_prologues); the second's only reader is the last
    Linear, whose dx epilogue takes it (backward fusions come first)."""
    x = vb.Input(6)
    h = vb.Linear(6, 8)(x)
    r = vb.ReLU()(vb.Add()(h, *[vb.Linear(8, 8)(h) for _ in range(addends - 1)]))
    r = vb.ReLU()(vb.Add()(r, vb.Linear(8, 8)(r)))
    return vb.Model(x, vb.Linear(8, 3)(r))


@pytest.mark.parametrize("addends", [2, 3])
def test_add_applies_its_relu_forward_and_backward(device, monkeypatch, addends):
    fused = run(lambda: residual(addends), 5, 3, 4, device, monkeypatch, fuse=True)
    assert_identical(fused, run(lambda: residual(addends), 5, 3, 4, device, monkeypatch, fuse=False))
    train = [w for k, w in fused[0].plan.train.log if k == "dispatch"]
    assert not any("relu/" in w.name for w in train)
    sums = [w.constants["RELU"] for w in train if "add/forward" in w.name]
    assert sums == [False] * (addends - 2) + [True, True]   # the last sum of each Add stores the ReLU
    # Each input's gradient is the Add's dy, its buffer itself: the second block's Add (its ReLU's
    # backward is the last Linear's) records nothing; the first block's masks its dy once, in place
    # (no other gradient holds that buffer), for all of its inputs.
    masks = [w for w in train if "add/backward" in w.name]
    assert [w.constants["RELU_BACKWARD"] for w in masks] == [True]
    assert masks[0].bound["dx"] is masks[0].bound["dy"]
    assert not any("relu/" in w.name for k, w in fused[0].plan.predict.log if k == "dispatch")
    for plan in (fused[0].plan.train, fused[0].plan.predict):
        check_barriers_exact(plan.log)


def strided_convs():
    """ReLUs before convolutions on each input-gradient path of lavapipe: a strided one by phases, a
    grouped one on the vec4 shuffle core (rows of whole quads), then a 1x1."""
    return vb.Sequential(vb.Conv2d(2, 4, 3, padding=1), vb.BatchNorm2d(4), vb.ReLU(),
                         vb.Conv2d(4, 8, 3, stride=2, padding=1), vb.BatchNorm2d(8), vb.ReLU(),
                         vb.Conv2d(8, 8, 3, padding=1, groups=2), vb.ReLU(), vb.Conv2d(8, 4, 1), vb.ReLU(),
                         vb.Flatten(), vb.Linear(4 * 4 * 4, 5), input_shape=(2, 8, 8))


def odd_width_convs():
    """Rows of 6: no whole quads, so the scalar core's input gradient everywhere."""
    return vb.Sequential(vb.Conv2d(2, 4, 3, padding=1), vb.ReLU(), vb.Conv2d(4, 4, 3, padding=1, bias=False),
                         vb.ReLU(), vb.Flatten(), vb.Linear(4 * 6 * 6, 5), input_shape=(2, 6, 6))


@pytest.mark.parametrize("texel_reads", ["0", "1"])
@pytest.mark.parametrize("kernel", ["auto", "scalar"])
@pytest.mark.parametrize("build,shaders", [
    (strided_convs, {"auto": ["backward_input_shuffle", "backward_input_shuffle", "backward_input_phases"],
                     "scalar": ["backward_input"] * 3}),
    (odd_width_convs, {"auto": ["backward_input"], "scalar": ["backward_input"]})])
def test_conv_applies_the_backward_of_the_relu_before_it(device, monkeypatch, build, shaders, kernel, texel_reads):
    """Each ReLU read only by the convolution after it: that convolution's input gradient masks the
    dx it stores with x (the ReLU's output), and the ReLU's backward dispatch goes; bit-identical
    to the unfused plan after 3 steps with momentum."""
    monkeypatch.setattr(gemm_shuffle, "KERNEL", kernel)
    monkeypatch.setenv("VKBACKPROP_TEXEL_READS", texel_reads)
    fused = run(build, 4, 3, 5, device, monkeypatch, fuse=True)
    assert_identical(fused, run(build, 4, 3, 5, device, monkeypatch, fuse=False))
    train = [w for k, w in fused[0].plan.train.log if k == "dispatch"]
    masked = [w.name.split("conv2d/")[1].removesuffix(".comp") for w in train
              if "conv2d/backward_input" in w.name and w.constants["RELU_BACKWARD"]]
    assert masked == shaders[kernel]   # backward order: the last convolution first; the first has no dx
    # The last ReLU's output reaches the Linear through a Flatten: that one keeps its own backward.
    assert sum("relu/backward" in w.name for w in train) == 1
    plain = run(build, 4, 1, 5, device, monkeypatch, fuse=False, backward=False)
    assert sum("relu/backward" in w.name for k, w in plain[0].plan.train.log if k == "dispatch") == len(shaders[kernel]) + 1
    check_barriers_exact(fused[0].plan.train.log)


def shared_hidden():
    """h read by two Linears and the Add of their outputs with h: three contributions to dL/dh, the
    Add's first (backward runs in reverse), then the two Linears'."""
    x = vb.Input(6)
    h = vb.Linear(6, 8)(x)
    return vb.Model(x, vb.Linear(8, 3)(vb.Add()(vb.Linear(8, 8)(h), vb.Linear(8, 8)(h), h)))


def small_resnet():
    """Residual blocks whose input gradients the first convolution adds to the skip's: stride 1 on
    the shuffle core, stride 2 by phases (8 -> 4 rows) and stride 2 on the shuffle core (4 -> 2)."""
    return zoo.small_resnet((3, 8, 8), 5, (4, 8, 8))


@pytest.mark.parametrize("texel_reads", ["0", "1"])
@pytest.mark.parametrize("kernel", ["auto", "scalar", "shared"])   # shared: the scalar core's shared-memory tile
@pytest.mark.parametrize("build,in_place", [(shared_hidden, 2), (small_resnet, 3)])
def test_input_gradients_add_to_earlier_partials_in_place(device, monkeypatch, build, in_place, kernel, texel_reads):
    """A later contribution to a gradient from a Linear's or Conv2d's input gradient adds itself in
    as it stores (ACCUMULATE): no scratch, no accumulate dispatch; bit-identical to storing it apart
    and adding it with graph/accumulate.comp."""
    monkeypatch.setattr(gemm_shuffle, "KERNEL", "scalar" if kernel == "shared" else kernel)
    if kernel == "shared":
        monkeypatch.setattr(tuning, "choose_tile", lambda *args, **kw: dict(gemm.SHARED_TILES[0]))
    monkeypatch.setenv("VKBACKPROP_TEXEL_READS", texel_reads)
    fused = run(build, 4, 3, 6, device, monkeypatch, fuse=True)
    with monkeypatch.context() as patch:
        for layer in (vb.Linear, vb.Conv2d):
            patch.setattr(layer, "accumulates_dx", False)
        apart = run(build, 4, 3, 6, device, monkeypatch, fuse=True)
    assert_identical(fused, apart)
    train = [w for k, w in fused[0].plan.train.log if k == "dispatch"]
    assert not any(w.name.startswith("accumulate") for w in train)
    adding = [w for w in train if w.constants.get("ACCUMULATE")]
    assert len(adding) == in_place and all("backward_input" in w.name for w in adding)
    if kernel == "shared":
        assert all(gemm.tile_of(w.constants) == gemm.SHARED_TILES[0] for w in adding)
    assert sum(w.name.startswith("accumulate") for k, w in apart[0].plan.train.log if k == "dispatch") == in_place
    check_barriers_exact(fused[0].plan.train.log)
