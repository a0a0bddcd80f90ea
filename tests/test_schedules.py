"""Learning-rate schedules against torch.optim.lr_scheduler: the learning rate of each of 100 steps
agrees within 1e-7 (relative); a Trainer uploads exactly the scheduled value every step without
re-recording; and whole runs with a schedule (Adam + warm-up + cosine, and others) follow PyTorch's
loss trajectory within 1e-4 relative at every step. Bad arguments raise ValueError."""

import warnings

import numpy as np
import pytest
import torch

import vkbackprop as vb
from test_optim import TOL, Twins, batches

S = torch.optim.lr_scheduler
BASE = 0.1
STEPS = 100


def torch_lrs(make_scheduler, base=BASE, steps=STEPS) -> list:
    """The lr PyTorch's optimizer uses at each step, with scheduler.step() after optimizer.step()."""
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=base)
    scheduler = make_scheduler(opt)
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(steps):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            scheduler.step()
    return lrs


CASES = {
    "step": (lambda: vb.StepLR(7, 0.5), lambda o: S.StepLR(o, 7, 0.5)),
    "step-default-gamma": (lambda: vb.StepLR(10), lambda o: S.StepLR(o, 10)),
    "exponential": (lambda: vb.ExponentialLR(0.95), lambda o: S.ExponentialLR(o, 0.95)),
    "cosine": (lambda: vb.CosineAnnealingLR(100), lambda o: S.CosineAnnealingLR(o, 100)),
    "cosine-past-T_max": (lambda: vb.CosineAnnealingLR(30, eta_min=0.001),
                          lambda o: S.CosineAnnealingLR(o, 30, eta_min=0.001)),
    "linear": (lambda: vb.LinearLR(0.2, 0.9, 10), lambda o: S.LinearLR(o, 0.2, 0.9, 10)),
    "linear-defaults": (lambda: vb.LinearLR(), lambda o: S.LinearLR(o)),
    "linear-to-zero": (lambda: vb.LinearLR(1.0, 0.0, 40), lambda o: S.LinearLR(o, 1.0, 0.0, 40)),
    "warmup": (lambda: vb.LinearWarmup(10, 0.1), lambda o: S.LinearLR(o, 0.1, 1.0, total_iters=10)),
    "warmup-then-cosine": (
        lambda: vb.SequentialLR([vb.LinearWarmup(10, 0.1), vb.CosineAnnealingLR(90, eta_min=1e-3)], [10]),
        lambda o: S.SequentialLR(o, [S.LinearLR(o, 0.1, 1.0, 10), S.CosineAnnealingLR(o, 90, eta_min=1e-3)], [10])),
    "sequential-three": (
        lambda: vb.SequentialLR([vb.LinearWarmup(5, 0.25), vb.StepLR(10, 0.5), vb.ExponentialLR(0.9)], [5, 45]),
        lambda o: S.SequentialLR(o, [S.LinearLR(o, 0.25, 1.0, 5), S.StepLR(o, 10, 0.5), S.ExponentialLR(o, 0.9)],
                                 [5, 45])),
    "chained-warmup-exponential": (
        lambda: vb.ChainedScheduler([vb.LinearWarmup(10, 0.1), vb.ExponentialLR(0.97)]),
        lambda o: S.ChainedScheduler([S.LinearLR(o, 0.1, 1.0, 10), S.ExponentialLR(o, 0.97)])),
    "chained-warmup-cosine": (
        lambda: vb.ChainedScheduler([vb.LinearWarmup(10, 0.1), vb.CosineAnnealingLR(100)]),
        lambda o: S.ChainedScheduler([S.LinearLR(o, 0.1, 1.0, 10), S.CosineAnnealingLR(o, 100)])),
    "chained-step-exponential": (
        lambda: vb.ChainedScheduler([vb.StepLR(20, 0.5), vb.ExponentialLR(0.99)]),
        lambda o: S.ChainedScheduler([S.StepLR(o, 20, 0.5), S.ExponentialLR(o, 0.99)])),
}


@pytest.mark.parametrize("case", list(CASES))
def test_lr_sequence_matches_torch(case):
    ours, theirs = CASES[case]
    want = torch_lrs(theirs)
    got = ours().lrs(BASE, STEPS)
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-12 * BASE, err_msg=case)
    assert len(set(want)) > 1 or case == "never"   # the schedule does change the lr


def test_cosine_past_T_max_is_periodic_like_torch():
    got = vb.CosineAnnealingLR(30, eta_min=0.001).lrs(BASE, 100)
    assert got[30] == pytest.approx(0.001) and got[60] == pytest.approx(BASE) and got[90] == pytest.approx(0.001)


def test_optimizer_lr_at_and_hyper_values_follow_the_schedule():
    opt = vb.Adam(lr=0.01, schedule=vb.StepLR(3, 0.5))
    assert [opt.lr_at(k) for k in range(7)] == [0.01, 0.01, 0.01, 0.005, 0.005, 0.005, 0.0025]
    assert opt.hyper_values(3)[0] == np.float32(-0.005 / (1 - 0.9 ** 4))
    opt.schedule = None
    assert opt.lr_at(3) == 0.01
    sgd = vb.SGD(lr=0.2, schedule=vb.ExponentialLR(0.5))
    assert sgd.hyper_values(2)[0] == np.float32(0.05)


@pytest.mark.parametrize("make_optimizer", [lambda s: vb.SGD(lr=BASE, momentum=0.9, schedule=s),
                                            lambda s: vb.AdamW(lr=BASE, schedule=s)])
def test_trainer_uploads_the_scheduled_lr_every_step_without_re_recording(device, make_optimizer):
    schedule = vb.SequentialLR([vb.LinearWarmup(10, 0.1), vb.CosineAnnealingLR(90)], [10])
    optimizer = make_optimizer(schedule)
    twins = Twins(device, optimizer, lambda p: torch.optim.SGD(p, lr=0.0))
    plan = twins.trainer.plan
    sequence, log = plan.train.sequence, list(plan.train.log)
    want = schedule.lrs(BASE, STEPS)
    for k, (x, y) in enumerate(batches(9, steps=STEPS)):
        assert twins.trainer.steps == k and optimizer.lr_at(twins.trainer.steps) == want[k]
        twins.trainer.step(x, y)
        uploaded = plan.hyper.host_view()
        np.testing.assert_array_equal(uploaded, optimizer.hyper_values(k))
        if isinstance(optimizer, vb.SGD):
            assert uploaded[0] == np.float32(want[k])
    assert twins.trainer.plan is plan and plan.train.sequence is sequence and plan.train.log == log


RUNS = {
    # The usual recipe: Adam, linear warm-up, then cosine annealing.
    "adam-warmup-cosine": (
        lambda: vb.Adam(lr=0.02, schedule=vb.SequentialLR([vb.LinearWarmup(5, 0.1), vb.CosineAnnealingLR(45)], [5])),
        lambda p: torch.optim.Adam(p, lr=0.02, foreach=False),
        lambda o: S.SequentialLR(o, [S.LinearLR(o, 0.1, 1.0, 5), S.CosineAnnealingLR(o, 45)], [5])),
    "adamw-amsgrad-chained-warmup-cosine": (
        lambda: vb.AdamW(lr=0.02, amsgrad=True, schedule=vb.ChainedScheduler([vb.LinearWarmup(8, 0.2),
                                                                               vb.CosineAnnealingLR(50)])),
        lambda p: torch.optim.AdamW(p, lr=0.02, amsgrad=True, foreach=False),
        lambda o: S.ChainedScheduler([S.LinearLR(o, 0.2, 1.0, 8), S.CosineAnnealingLR(o, 50)])),
    "sgd-nesterov-step": (
        lambda: vb.SGD(lr=0.1, momentum=0.9, nesterov=True, schedule=vb.StepLR(10, 0.5)),
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, foreach=False),
        lambda o: S.StepLR(o, 10, 0.5)),
    "sgd-exponential-eta-min-cosine": (
        lambda: vb.SGD(lr=0.2, weight_decay=0.01, schedule=vb.SequentialLR(
            [vb.ExponentialLR(0.95), vb.CosineAnnealingLR(10, eta_min=0.01)], [25])),
        lambda p: torch.optim.SGD(p, lr=0.2, weight_decay=0.01, foreach=False),
        lambda o: S.SequentialLR(o, [S.ExponentialLR(o, 0.95), S.CosineAnnealingLR(o, 10, eta_min=0.01)], [25])),
}


@pytest.mark.parametrize("run", list(RUNS))
def test_training_with_a_schedule_matches_torch(device, run):
    """50 steps: the loss at every step within 1e-4 relative, then parameters and optimizer state;
    the lr each side used agrees at every step; nothing is re-recorded."""
    ours, theirs, schedule = RUNS[run]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        twins = Twins(device, ours(), theirs, torch_schedule=schedule)
    plan = twins.trainer.plan
    sequence, log = plan.train.sequence, list(plan.train.log)
    for k, (x, y) in enumerate(batches(10)):
        torch_lr = twins.torch_opt.param_groups[0]["lr"]
        assert abs(twins.optimizer.lr_at(k) - torch_lr) <= 1e-7 * torch_lr, f"lr at step {k}"
        got, want = twins.step(x, y)
        assert abs(got - want) <= TOL * abs(want), f"{run} loss at step {k}: got {got}, torch {want}"
    twins.assert_params_match(run)
    twins.assert_state_matches(run)
    assert plan.train.sequence is sequence and plan.train.log == log


def test_changing_the_schedule_between_steps_never_re_records(device):
    optimizer = vb.Adam(lr=0.01)
    twins = Twins(device, optimizer, lambda p: torch.optim.Adam(p, lr=0.01, foreach=False))
    plan = twins.trainer.plan
    sequence, log = plan.train.sequence, list(plan.train.log)
    data = batches(11, steps=12)
    twins.run(data[:4], "no schedule")
    optimizer.schedule = vb.ExponentialLR(0.5)       # lr_at(k) = 0.01 * 0.5 ** k: k counts from step 0
    for k, (x, y) in enumerate(data[4:], start=4):
        for group in twins.torch_opt.param_groups:
            group["lr"] = 0.01 * 0.5 ** k
        got, want = twins.step(x, y)
        assert abs(got - want) <= TOL * abs(want), f"loss at step {k}"
    twins.assert_params_match()
    assert plan.train.sequence is sequence and plan.train.log == log


def test_schedules_nest():
    inner = vb.SequentialLR([vb.StepLR(2, 0.5), vb.ExponentialLR(0.9)], [4])
    chained = vb.ChainedScheduler([inner, vb.LinearWarmup(3, 0.5)])
    for k in range(10):
        assert chained.lr(1.0, k) == pytest.approx(inner.lr(1.0, k) * vb.LinearWarmup(3, 0.5).lr(1.0, k), rel=1e-15)
    outer = vb.SequentialLR([chained, vb.CosineAnnealingLR(5, eta_min=0.1)], [10])
    assert outer.lr(2.0, 12) == pytest.approx(vb.CosineAnnealingLR(5, eta_min=0.1).lr(2.0, 2))


@pytest.mark.parametrize("make, message", [
    (lambda: vb.StepLR(0), r"^StepLR: step_size must be an int >= 1, got 0$"),
    (lambda: vb.StepLR(2.5), r"^StepLR: step_size must be an int >= 1, got 2\.5$"),
    (lambda: vb.StepLR(True), r"^StepLR: step_size must be an int >= 1, got True$"),
    (lambda: vb.StepLR(5, gamma=-0.1), r"^StepLR: gamma must be a finite number >= 0, got -0\.1$"),
    (lambda: vb.ExponentialLR(float("nan")), r"^ExponentialLR: gamma must be a finite number >= 0, got nan$"),
    (lambda: vb.CosineAnnealingLR(0), r"^CosineAnnealingLR: T_max must be an int >= 1, got 0$"),
    (lambda: vb.CosineAnnealingLR(10, eta_min=-1e-3), r"^CosineAnnealingLR: eta_min must be a finite number >= 0"),
    (lambda: vb.LinearLR(start_factor=0.0), r"^LinearLR: start_factor must be in \(0, 1\], got 0\.0$"),
    (lambda: vb.LinearLR(start_factor=1.5), r"^LinearLR: start_factor must be in \(0, 1\], got 1\.5$"),
    (lambda: vb.LinearLR(end_factor=-0.5), r"^LinearLR: end_factor must be in \[0, 1\], got -0\.5$"),
    (lambda: vb.LinearLR(total_iters=0), r"^LinearLR: total_iters must be an int >= 1, got 0$"),
    (lambda: vb.LinearWarmup(0), r"^LinearWarmup: warmup_steps must be an int >= 1, got 0$"),
    (lambda: vb.LinearWarmup(5, start_factor=0), r"^LinearWarmup: start_factor must be in \(0, 1\], got 0$"),
    (lambda: vb.SequentialLR([], []), r"^SequentialLR: schedules must be a non-empty list of schedules, got \[\]$"),
    (lambda: vb.SequentialLR([vb.StepLR(2), "cos"], [3]),
     r"^SequentialLR: schedules\[1\] must be a vkbackprop learning-rate schedule, got str$"),
    (lambda: vb.SequentialLR([vb.StepLR(2), vb.StepLR(3)], []),
     r"^SequentialLR: milestones must be a list of 1 step\(s\), one fewer than the schedules, got \[\]$"),
    (lambda: vb.SequentialLR([vb.StepLR(2), vb.StepLR(3), vb.StepLR(4)], [5, 5]),
     r"^SequentialLR: milestones must be strictly increasing, got \[5, 5\]$"),
    (lambda: vb.SequentialLR([vb.StepLR(2), vb.StepLR(3)], [0]),
     r"^SequentialLR: milestones\[0\] must be an int >= 1, got 0$"),
    (lambda: vb.ChainedScheduler([vb.LinearWarmup(3), vb.CosineAnnealingLR(10, eta_min=0.01)]),
     r"^ChainedScheduler: schedules\[1\] must multiply the learning rate; got CosineAnnealingLR"),
    (lambda: vb.ChainedScheduler(vb.StepLR(3)), r"^ChainedScheduler: schedules must be a non-empty list"),
    (lambda: vb.StepLR(3).lr(0.1, -1), r"^StepLR: step must be an int >= 0, got -1$"),
    (lambda: vb.SGD(lr=0.1, schedule=exploding()).lr_at(2),
     r"^SGD: the schedule gives learning rate [0-9.]+e\+56 at step 2; expected a finite number >= 0$"),
])
def test_bad_schedule_arguments_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def exploding():
    """lr factor 1 for steps 0 and 1, then 1e57: more than float32 holds."""
    return vb.ChainedScheduler([vb.StepLR(2, 1e19), vb.StepLR(2, 1e19), vb.StepLR(2, 1e19)])


def test_a_bad_scheduled_lr_is_refused_before_any_gpu_work(device):
    optimizer = vb.SGD(lr=0.1, schedule=exploding())
    twins = Twins(device, optimizer, lambda p: torch.optim.SGD(p, lr=0.0))
    data = batches(12, steps=3)
    twins.trainer.step(*data[0])
    twins.trainer.step(*data[1])
    before = twins.model.state_dict()
    with pytest.raises(ValueError, match=r"the schedule gives learning rate [0-9.]+e\+56 at step 2"):
        twins.trainer.step(*data[2])
    assert twins.trainer.steps == 2
    after = twins.model.state_dict()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])
