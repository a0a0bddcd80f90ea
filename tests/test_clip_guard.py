"""Gradient clipping by global norm and the non-finite guard (Trainer(clip_grad_norm=...,
on_nonfinite=...)), against torch.nn.utils.clip_grad_norm_ + torch.optim: the loss at every step and
the final parameters within 1e-4 relative, last_grad_norm vs torch's returned total norm within 1e-5;
a step whose loss or gradient is NaN/Inf writes nothing and raises (naming the step and the
parameter or the loss) or is skipped; the norms are bit-reproducible."""

import math
import warnings

import numpy as np
import pytest
import torch

import vkbackprop as vb
from test_optim import BATCH, TOL, F, Twins, adam, batches, rel_err, sgd

S = torch.optim.lr_scheduler


class ClipTwins(Twins):
    """Twins whose trainer clips at `max_norm`, and whose torch twin calls clip_grad_norm_ before the
    optimizer step; `step` also checks last_grad_norm against torch's total norm."""

    def __init__(self, device, optimizer, torch_optimizer, max_norm, torch_schedule=None):
        vb.manual_seed(0)
        self.model = vb.Sequential(vb.Linear(6, 16), vb.Tanh(), vb.Linear(16, 3))
        self.optimizer = optimizer
        self.trainer = vb.Trainer(self.model, vb.CrossEntropyLoss(), optimizer, BATCH, device=device,
                                  clip_grad_norm=max_norm)
        self.torch = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
        self.torch.load_state_dict({k: torch.from_numpy(v) for k, v in self.model.state_dict().items()})
        self.torch_opt = torch_optimizer(self.torch.parameters())
        self.torch_sched = torch_schedule(self.torch_opt) if torch_schedule else None
        self.max_norm, self.clipped = max_norm, 0

    def step(self, x, y):
        got = self.trainer.step(x, y)
        self.torch_opt.zero_grad()
        loss = F.cross_entropy(self.torch(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.torch.parameters(), self.max_norm).item()
        self.clipped += norm > self.max_norm
        ours = self.trainer.last_grad_norm
        assert abs(ours - norm) <= 1e-5 * norm, f"total norm: ours {ours}, torch {norm}"
        self.torch_opt.step()
        if self.torch_sched is not None:
            self.torch_sched.step()
        return got, loss.item()


CONFIGS = {
    "sgd": (lambda: sgd(lr=0.1), 0.3),
    "sgd-momentum-weight-decay": (lambda: sgd(lr=0.05, momentum=0.9, weight_decay=0.05), 0.3),
    "adam": (lambda: adam(lr=0.01), 0.3),
    "adam-weight-decay": (lambda: adam(lr=0.01, weight_decay=0.1), 0.3),
}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_clipping_matches_torch(device, config):
    make, max_norm = CONFIGS[config]
    twins = ClipTwins(device, *make(), max_norm)
    twins.run(batches(1, steps=20), config)
    twins.assert_params_match(config)
    assert twins.clipped >= 15, f"clipping was active on only {twins.clipped} of 20 steps"


def test_adam_warmup_cosine_clipping_fifty_steps_match_torch(device):
    ours = vb.Adam(lr=0.02, schedule=vb.SequentialLR([vb.LinearWarmup(5, 0.1), vb.CosineAnnealingLR(45)], [5]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        twins = ClipTwins(device, ours, lambda p: torch.optim.Adam(p, lr=0.02, foreach=False), 0.5,
                          torch_schedule=lambda o: S.SequentialLR(o, [S.LinearLR(o, 0.1, 1.0, 5),
                                                                      S.CosineAnnealingLR(o, 45)], [5]))
    twins.run(batches(10), "adam-warmup-cosine-clip")
    twins.assert_params_match("adam-warmup-cosine-clip")
    twins.assert_state_matches("adam-warmup-cosine-clip")
    assert twins.clipped >= 25


def test_without_clipping_the_norm_is_reported_and_nothing_is_scaled(device):
    twins = Twins(device, *sgd(lr=0.1))
    x, y = batches(2, steps=1)[0]
    twins.step(x, y)
    grads = twins.trainer.gradients()
    want = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads.values()))
    assert abs(twins.trainer.last_grad_norm - want) <= 1e-5 * want
    twins.assert_params_match("no clipping")


def test_norms_are_deterministic(device):
    runs = []
    for _ in range(2):
        twins = ClipTwins(device, *adam(lr=0.01), 0.3)
        norms = []
        for x, y in batches(3, steps=10):
            twins.trainer.step(x, y)
            norms.append(twins.trainer.last_grad_norm)
        runs.append((norms, twins.model.state_dict()))
    assert runs[0][0] == runs[1][0]
    for name in runs[0][1]:
        np.testing.assert_array_equal(runs[0][1][name], runs[1][1][name])


def overflowing(device, on_nonfinite="raise", optimizer=None):
    """Linear(6, 3) + MSE with finite but huge weights: the forward is finite, the loss overflows to Inf."""
    model = vb.Sequential(vb.Linear(6, 3))
    trainer = vb.Trainer(model, vb.MSELoss(), optimizer or vb.Adam(lr=0.01), BATCH, device=device,
                         clip_grad_norm=1.0, on_nonfinite=on_nonfinite)
    return model, trainer


def snapshot(trainer):
    return ({k: v.copy() for k, v in trainer.model.state_dict().items()},
            {k: {s: v.copy() for s, v in d.items()} for k, d in trainer.optimizer_state().items()})


def assert_bit_identical(before, after):
    for a, b in zip(before, after):
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(a[k], dict):
                for s in a[k]:
                    assert a[k][s].tobytes() == b[k][s].tobytes(), f"{k}.{s} changed"
            else:
                assert a[k].tobytes() == b[k].tobytes(), f"{k} changed"


def test_an_overflowing_loss_raises_naming_step_and_parameter_and_writes_nothing(device, rng):
    model, trainer = overflowing(device)
    y = rng.standard_normal((BATCH, 3)).astype(np.float32)
    for _ in range(3):   # a few good steps first, so the optimizer state is not zero
        trainer.step(rng.standard_normal((BATCH, 6)).astype(np.float32), y)
    state = model.state_dict()
    state["0.weight"] = np.full((3, 6), 1e19, np.float32)
    model.load_state_dict(state)
    before = snapshot(trainer)
    with pytest.raises(FloatingPointError, match=r"parameter '0\.weight'.* at step 3\b"):
        trainer.step(np.ones((BATCH, 6), np.float32), y)
    assert_bit_identical(before, snapshot(trainer))
    assert trainer.steps == 3 and not math.isfinite(trainer.last_grad_norm)


def test_a_nan_written_into_the_input_raises_and_writes_nothing(device, rng):
    model, trainer = overflowing(device, optimizer=vb.SGD(lr=0.1, momentum=0.9))
    x = rng.standard_normal((BATCH, 6)).astype(np.float32)
    y = rng.standard_normal((BATCH, 3)).astype(np.float32)
    trainer.step(x, y)
    before = snapshot(trainer)
    plan = trainer.plan   # bypass the host's input check: NaN straight into the staged input
    plan.inputs[0].host_view()[...] = x
    plan.inputs[0].host_view()[0, 0] = np.nan
    plan.hyper.host_view()[...] = trainer.optimizer.hyper_values(trainer.steps)
    plan.step.host_view()[...] = trainer.steps
    plan.train.sequence.eval()
    with pytest.raises(FloatingPointError, match=r"parameter '0\.weight'.* at step 1\b"):
        trainer._check_guard(float(plan.losses[0].host_view()[0]))
    assert_bit_identical(before, snapshot(trainer))


def test_skip_mode_skips_and_continues(device, rng):
    model, trainer = overflowing(device, "skip")
    x = rng.standard_normal((BATCH, 6)).astype(np.float32)
    y = rng.standard_normal((BATCH, 3)).astype(np.float32)
    assert math.isfinite(trainer.step(x, y))
    good = model.state_dict()
    bad = dict(good, **{"0.weight": np.full((3, 6), 1e19, np.float32)})
    model.load_state_dict(bad)
    before = snapshot(trainer)
    loss = trainer.step(np.ones((BATCH, 6), np.float32), y)
    assert not math.isfinite(loss)
    assert trainer.skipped_steps == 1 and trainer.steps == 1
    assert_bit_identical(before, snapshot(trainer))
    model.load_state_dict(good)
    assert math.isfinite(trainer.step(x, y))
    assert trainer.skipped_steps == 1 and trainer.steps == 2
    assert model.state_dict()["0.weight"].tobytes() != good["0.weight"].tobytes()


@pytest.mark.parametrize("kw, message", [
    ({"clip_grad_norm": -1.0}, "clip_grad_norm"),
    ({"clip_grad_norm": float("nan")}, "clip_grad_norm"),
    ({"on_nonfinite": "ignore"}, "on_nonfinite"),
])
def test_bad_arguments_raise(device, kw, message):
    with pytest.raises(ValueError, match=message):
        vb.Trainer(vb.Sequential(vb.Linear(2, 2)), vb.MSELoss(), vb.SGD(lr=0.1), 2, device=device, **kw)


@pytest.mark.parametrize("texel_reads", ["0", "1"])   # the sums read quads as storage or texel buffers
def test_norm_summed_in_several_parts_matches_torch_and_names_the_bad_parameter(device, monkeypatch, rng,
                                                                                texel_reads):
    """Large gradients are summed in several parts (one workgroup each, plan.STAT_CHUNK elements of
    the largest parameter per part); made tiny here so that every parameter is split, unevenly."""
    from vkbackprop import plan
    monkeypatch.setenv("VKBACKPROP_TEXEL_READS", texel_reads)
    monkeypatch.setattr(plan, "STAT_CHUNK", 5)
    compiled = []   # the sums' variants (a loss, under one quad, must not force storage reads)
    real_program = device.program
    monkeypatch.setattr(device, "program", lambda path, defines=None: (
        compiled.append(defines) if path == "guard/sum_squares.comp" and defines else None, real_program(path, defines))[1])
    twins = ClipTwins(device, *sgd(lr=0.1), 0.3)
    assert {d["TEXEL_READS"] for d in compiled} == {int(texel_reads)}
    assert twins.trainer.plan.guard_dispatch.name == "guard" and twins.trainer.plan.grad_stats.size > 4 * 20
    twins.run(batches(4, steps=10), "sgd, norm in parts")
    twins.assert_params_match("sgd, norm in parts")

    # 0.bias's gradient overflows in its sum of squares while 0.weight's stays 0 (x = 0): the guard
    # maps the parts back to the second parameter.
    monkeypatch.setattr(plan, "STAT_CHUNK", 2)
    model = vb.Sequential(vb.Linear(6, 3))
    trainer = vb.Trainer(model, vb.MSELoss(), vb.SGD(lr=0.1), BATCH, device=device)
    before = snapshot(trainer)
    with pytest.raises(FloatingPointError, match=r"parameter '0\.bias'.* at step 0\b"):
        trainer.step(np.zeros((BATCH, 6), np.float32), np.full((BATCH, 3), 1e30, np.float32))
    assert_bit_identical(before, snapshot(trainer))


def test_more_parameters_than_one_stats_dispatch_takes(device, rng):
    """Ten parameters: two sum-of-squares dispatches (8 buffers each: the shader's values<j>). The
    norm matches the float64 one, and a gradient that overflows in the second dispatch's buffers is
    the one named. Five Linear branches of x; the last feeds its own loss, with a huge target."""
    from vkbackprop import plan

    def trainer_for():
        vb.manual_seed(1)
        x = vb.Input(6)
        branches = [vb.Linear(6, 3)(x) for _ in range(5)]
        model = vb.Model(x, [vb.Add()(*branches[:4]), branches[4]])
        return vb.Trainer(model, [vb.MSELoss(), vb.MSELoss()], vb.SGD(lr=0.0), BATCH, device=device)

    trainer = trainer_for()
    names = [d.name for k, d in trainer.plan.train.log if k == "dispatch" and d.name.startswith("sum_squares")]
    assert (len(trainer.plan.param_names) == 10 and len(names) == 2
            and plan.stats_per_dispatch(device.program("guard/sum_squares.comp")) == 8)
    x = rng.standard_normal((BATCH, 6)).astype(np.float32)
    targets = [rng.standard_normal((BATCH, 3)).astype(np.float32) for _ in range(2)]
    trainer.step(x, targets)
    want = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in trainer.gradients().values()))
    assert abs(trainer.last_grad_norm - want) <= 1e-5 * want

    trainer = trainer_for()
    last = trainer.plan.param_names[-1]
    assert last.endswith(".bias")
    before = snapshot(trainer)
    with pytest.raises(FloatingPointError, match=rf"parameter '{last}'.* at step 0\b"):
        trainer.step(np.zeros((BATCH, 6), np.float32), [targets[0], np.full((BATCH, 3), 1e30, np.float32)])
    assert_bit_identical(before, snapshot(trainer))


# Shapes where the vec4 weight-gradient GEMM runs (in_features and batch multiples of 4) and its
# epilogue sums the gradients' squares: dy read in place (out % 4 == 0), from its transposed copy
# (out = 10), without a bias. Forced onto that core on any device. (in, out, bias) per Linear, ReLU between.
EPILOGUE_MODELS = {"in place": [(8, 12, True), (12, 4, True)], "transposed copy": [(8, 12, True), (12, 10, True)],
                   "no bias": [(8, 12, False), (12, 4, False)]}


def mlp_twins(linears):
    """A vkbackprop MLP (ReLU between the Linears) and its PyTorch twin with the same weights."""
    def layers(linear, relu):
        out = []
        for i, (n_in, n_out, bias) in enumerate(linears):
            out += [relu()] * (i > 0) + [linear(n_in, n_out, bias=bias)]
        return out
    model = vb.Sequential(*layers(vb.Linear, vb.ReLU))
    twin = torch.nn.Sequential(*layers(torch.nn.Linear, torch.nn.ReLU))
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    return model, twin


@pytest.mark.parametrize("kind", list(EPILOGUE_MODELS))
def test_norm_from_the_weight_gradient_epilogue_matches_torch(device, monkeypatch, rng, kind):
    from vkbackprop.layers import gemm_shuffle
    monkeypatch.setattr(gemm_shuffle, "KERNEL", "shuffle")
    vb.manual_seed(2)
    model, twin = mlp_twins(EPILOGUE_MODELS[kind])
    trainer = vb.Trainer(model, vb.CrossEntropyLoss(), vb.SGD(lr=0.1), BATCH, device=device, clip_grad_norm=0.3)
    assert set(trainer.plan.grad_squares) == set(model.state_dict()), "every gradient's squares from its GEMM"
    opt = torch.optim.SGD(twin.parameters(), lr=0.1)
    clipped = 0
    for _ in range(6):
        x = rng.standard_normal((BATCH, 8)).astype(np.float32)
        y = rng.integers(0, EPILOGUE_MODELS[kind][-1][1], BATCH)
        got = trainer.step(x, y)
        opt.zero_grad()
        loss = F.cross_entropy(twin(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(twin.parameters(), 0.3).item()
        opt.step()
        clipped += norm > 0.3
        assert abs(trainer.last_grad_norm - norm) <= 1e-5 * norm, f"total norm: ours {trainer.last_grad_norm}, torch {norm}"
        assert rel_err(got, loss.item()) <= TOL
    assert clipped >= 3
    for name, value in model.state_dict().items():
        assert rel_err(value, twin.state_dict()[name].numpy()) <= TOL, name


def test_a_shared_layer_sums_its_gradient_squares_after_accumulating(device, monkeypatch, rng):
    """A Linear called twice gets its gradient from two GEMMs (added by an accumulate dispatch): its
    squares are summed from the finished gradient, not from either epilogue."""
    from vkbackprop.layers import gemm_shuffle
    monkeypatch.setattr(gemm_shuffle, "KERNEL", "shuffle")
    vb.manual_seed(3)
    shared, head = vb.Linear(8, 8), vb.Linear(8, 4)
    x = vb.Input(8)
    model = vb.Model(x, head(vb.ReLU()(shared(vb.ReLU()(shared(x))))))
    trainer = vb.Trainer(model, vb.MSELoss(), vb.SGD(lr=0.0), BATCH, device=device)
    assert set(trainer.plan.grad_squares) == set(model.param_names(head).values())
    trainer.step(rng.standard_normal((BATCH, 8)).astype(np.float32), rng.standard_normal((BATCH, 4)).astype(np.float32))
    want = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in trainer.gradients().values()))
    assert abs(trainer.last_grad_norm - want) <= 1e-5 * want


@pytest.mark.parametrize("bad", ["weight", "bias"])
def test_an_overflow_in_the_epilogue_squares_names_its_parameter(device, monkeypatch, bad):
    """Inf in a gradient's epilogue squares: the weight's (huge weights, the loss overflows too) or
    only the bias's (x = 0: the weight gradient is 0, the bias gradient huge)."""
    from vkbackprop.layers import gemm_shuffle
    monkeypatch.setattr(gemm_shuffle, "KERNEL", "shuffle")
    model = vb.Sequential(vb.Linear(8, 4))
    trainer = vb.Trainer(model, vb.MSELoss(), vb.SGD(lr=0.1), BATCH, device=device)
    assert set(trainer.plan.grad_squares) == {"0.weight", "0.bias"}
    if bad == "weight":
        model.load_state_dict(dict(model.state_dict(), **{"0.weight": np.full((4, 8), 1e19, np.float32)}))
        x, y = np.ones((BATCH, 8), np.float32), np.zeros((BATCH, 4), np.float32)
    else:
        x, y = np.zeros((BATCH, 8), np.float32), np.full((BATCH, 4), 1e30, np.float32)
    before = snapshot(trainer)
    with pytest.raises(FloatingPointError, match=rf"parameter '0\.{bad}'.* at step 0\b"):
        trainer.step(x, y)
    assert_bit_identical(before, snapshot(trainer))


def test_norm_mixes_epilogue_squares_and_gradients_summed_afterwards(device, monkeypatch, rng):
    """Batch 6: layer 0 (out 12) runs its weight gradient on the vec4 core and leaves its squares;
    layer 2 (out 5, neither out nor batch a multiple of 4) runs on the scalar core, whose gradients
    the sums dispatch squares itself. Both kinds in one norm, against float64."""
    from vkbackprop.layers import gemm_shuffle
    monkeypatch.setattr(gemm_shuffle, "KERNEL", "shuffle")
    vb.manual_seed(4)
    model = vb.Sequential(vb.Linear(8, 12), vb.ReLU(), vb.Linear(12, 5))
    trainer = vb.Trainer(model, vb.CrossEntropyLoss(), vb.SGD(lr=0.0), 6, device=device)
    assert set(trainer.plan.grad_squares) == {"0.weight", "0.bias"}
    trainer.step(rng.standard_normal((6, 8)).astype(np.float32), rng.integers(0, 5, 6))
    want = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in trainer.gradients().values()))
    assert abs(trainer.last_grad_norm - want) <= 1e-5 * want
