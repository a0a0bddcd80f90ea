"""The Trainer's public API against PyTorch (float32, CPU) as the oracle: state_dict layout and round
trips, consecutive SGD steps, gradients, predict at every chunking boundary, learning-rate changes
and odd shapes. The vkbackprop and torch models always start from the same weights."""

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

import vkbackprop as vb
from oracles import assert_bitwise_equal

LR = 0.05


# --- helpers ----------------------------------------------------------------------------------


def vb_mlp(widths, bias=True):
    """Linear, ReLU, Linear, ... (no ReLU after the last Linear)."""
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        if i:
            layers.append(vb.ReLU())
        layers.append(vb.Linear(a, b, bias=bias))
    return vb.Sequential(*layers)


def torch_mlp(widths, bias=True):
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(a, b, bias=bias))
    return nn.Sequential(*layers).float()


def random_state(model, rng, scale=0.5):
    """Random values for every parameter of `model` (not its initialisation)."""
    return OrderedDict((k, (scale * rng.standard_normal(v.shape)).astype(np.float32))
                       for k, v in model.state_dict().items())


def to_torch(state):
    return OrderedDict((k, torch.tensor(v)) for k, v in state.items())


def batch(rng, loss_kind, rows, in_f, out_f):
    x = rng.standard_normal((rows, in_f)).astype(np.float32)
    if loss_kind == "ce":
        y = rng.integers(0, out_f, rows)
    else:
        y = rng.standard_normal((rows, out_f)).astype(np.float32)
    return x, y


def make_loss(loss_kind):
    return vb.CrossEntropyLoss() if loss_kind == "ce" else vb.MSELoss()


def torch_loss(loss_kind, out, y):
    if loss_kind == "ce":
        return nn.functional.cross_entropy(out, torch.tensor(y, dtype=torch.long))
    return nn.functional.mse_loss(out, torch.tensor(y))


def assert_close(got, want, rtol=1e-4, atol=1e-5, what=""):
    """allclose with atol scaled by the magnitude of the expected values."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * scale, err_msg=what)


class Twins:
    """A vkbackprop trainer and a torch model with the same (random) weights, stepped together."""

    def __init__(self, device, widths, loss_kind, batch_size, rng, bias=True, lr=LR):
        self.loss_kind, self.batch_size, self.widths = loss_kind, batch_size, widths
        self.optimizer = vb.SGD(lr=lr)
        self.trainer = vb.Trainer(vb_mlp(widths, bias), loss=make_loss(loss_kind), optimizer=self.optimizer,
                                  batch_size=batch_size, device=device)
        self.torch = torch_mlp(widths, bias)
        state = random_state(self.trainer.model, rng)
        self.trainer.model.load_state_dict(state)
        self.torch.load_state_dict(to_torch(state))
        self.torch_opt = torch.optim.SGD(self.torch.parameters(), lr=lr)

    def batch(self, rng, rows=None):
        return batch(rng, self.loss_kind, rows or self.batch_size, self.widths[0], self.widths[-1])

    def torch_step(self, x, y, lr=None):
        if lr is not None:
            for group in self.torch_opt.param_groups:
                group["lr"] = lr
        self.torch_opt.zero_grad()
        loss = torch_loss(self.loss_kind, self.torch(torch.tensor(x)), y)
        loss.backward()
        self.torch_opt.step()
        return float(loss.detach())

    def torch_state(self):
        return OrderedDict((k, v.detach().numpy()) for k, v in self.torch.state_dict().items())

    def torch_grads(self):
        return OrderedDict((k, p.grad.detach().numpy()) for k, p in self.torch.named_parameters())

    def torch_forward(self, x):
        with torch.no_grad():
            return self.torch(torch.tensor(x)).numpy()

    def assert_params_match(self, what=""):
        got, want = self.trainer.model.state_dict(), self.torch_state()
        assert list(got) == list(want)
        for k in want:
            assert_close(got[k], want[k], what=f"{what} {k}")


# --- state_dict -------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("bound", [False, True], ids=["host", "trainer"])
def test_state_dict_layout_matches_torch(device, bias, bound):
    widths = (5, 7, 3)
    model = vb_mlp(widths, bias)
    if bound:
        vb.Trainer(model, loss=vb.MSELoss(), optimizer=vb.SGD(lr=LR), batch_size=4, device=device)
    ours, theirs = model.state_dict(), torch_mlp(widths, bias).state_dict()
    assert list(ours) == list(theirs)
    for k in theirs:
        assert isinstance(ours[k], np.ndarray), k
        assert ours[k].shape == tuple(theirs[k].shape), k
        assert ours[k].dtype == np.float32, k


def test_default_init_follows_torch_bounds():
    vb.manual_seed(3)
    model = vb_mlp((20, 9, 4))
    for k, v in model.state_dict().items():
        fan_in = 20 if k.startswith("0.") else 9
        assert np.all(np.abs(v) <= 1 / np.sqrt(fan_in)), k
        assert np.unique(v).size == v.size, f"{k} is not random"


def test_manual_seed_makes_init_reproducible():
    vb.manual_seed(11)
    a = vb_mlp((6, 8, 2)).state_dict()
    vb.manual_seed(11)
    b = vb_mlp((6, 8, 2)).state_dict()
    assert_bitwise_equal(a, b)


@pytest.mark.parametrize("bound", [False, True], ids=["host", "trainer"])
def test_state_dict_round_trip_is_exact(device, rng, bound):
    model = vb_mlp((6, 9, 4))
    if bound:
        vb.Trainer(model, loss=vb.CrossEntropyLoss(), optimizer=vb.SGD(lr=LR), batch_size=3, device=device)
    state = random_state(model, rng, scale=3.0)
    model.load_state_dict(state)
    assert_bitwise_equal(model.state_dict(), state)
    # state_dict hands out copies: changing them changes nothing.
    copy = model.state_dict()
    for v in copy.values():
        v[...] = 123.0
    assert_bitwise_equal(model.state_dict(), state)
    # and load_state_dict does not keep references to the caller's arrays either.
    for v in state.values():
        v[...] = -7.0
    assert not np.any(model.state_dict()["0.weight"] == -7.0)


def test_load_state_dict_accepts_float64_and_converts(rng):
    model = vb_mlp((3, 4, 2))
    state = OrderedDict((k, rng.standard_normal(v.shape)) for k, v in model.state_dict().items())
    model.load_state_dict(state)
    for k, v in model.state_dict().items():
        assert v.dtype == np.float32
        assert v.tobytes() == state[k].astype(np.float32).tobytes()


def test_load_torch_state_dict(device, rng):
    widths = (8, 12, 5)
    torch.manual_seed(0)
    reference = torch_mlp(widths)
    trainer = vb.Trainer(vb_mlp(widths), loss=vb.CrossEntropyLoss(), optimizer=vb.SGD(lr=LR), batch_size=4,
                         device=device)
    trainer.model.load_state_dict(reference.state_dict())   # torch tensors, not numpy
    for k, v in reference.state_dict().items():
        assert trainer.model.state_dict()[k].tobytes() == v.numpy().tobytes(), k
    x = rng.standard_normal((10, 8)).astype(np.float32)
    with torch.no_grad():
        want = reference(torch.tensor(x)).numpy()
    assert_close(trainer.predict(x), want)


# --- training steps ---------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("loss_kind", ["ce", "mse"])
@pytest.mark.parametrize("widths", [(10, 16, 4), (9, 24, 17, 3)], ids=["2-layer", "3-layer"])
def test_consecutive_steps_match_torch(device, rng, widths, loss_kind, bias):
    twins = Twins(device, widths, loss_kind, batch_size=8, rng=rng, bias=bias)
    for step in range(5):
        x, y = twins.batch(rng)
        loss = twins.trainer.step(x, y)
        want = twins.torch_step(x, y)
        assert isinstance(loss, float)
        assert_close(loss, want, what=f"loss at step {step}")
    twins.assert_params_match("after 5 steps")
    # gradients() holds the last step's gradients, named like state_dict().
    grads = twins.trainer.gradients()
    assert list(grads) == list(twins.trainer.model.state_dict())
    for k, g in twins.torch_grads().items():
        assert_close(grads[k], g, what=f"grad {k}")


@pytest.mark.parametrize("loss_kind", ["ce", "mse"])
def test_gradients_match_torch(device, rng, loss_kind):
    twins = Twins(device, (12, 20, 6), loss_kind, batch_size=16, rng=rng)
    x, y = twins.batch(rng)
    twins.trainer.step(x, y)
    twins.torch_step(x, y)
    grads, want = twins.trainer.gradients(), twins.torch_grads()
    assert list(grads) == list(twins.trainer.model.state_dict()) == list(want)
    for k in want:
        assert grads[k].shape == want[k].shape and grads[k].dtype == np.float32, k
        err = np.max(np.abs(grads[k] - want[k])) / max(np.max(np.abs(want[k])), 1e-30)
        assert err <= 1e-4, f"{k}: relative error {err:.2e}"
        assert np.any(want[k] != 0), f"{k}: degenerate test, torch gradient is all zero"
    # reading gradients changes nothing
    assert_bitwise_equal(twins.trainer.gradients(), grads)


# --- predict ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def predict_twins(device):
    rng = np.random.default_rng(2024)
    return Twins(device, (11, 19, 7), "ce", batch_size=8, rng=rng), rng


@pytest.mark.parametrize("rows", [1, 7, 8, 9, 3 * 8 + 7, 0])
def test_predict_matches_torch_forward(predict_twins, rows):
    twins, _ = predict_twins
    x = np.random.default_rng(rows).standard_normal((rows, 11)).astype(np.float32)
    before = twins.trainer.model.state_dict()
    out = twins.trainer.predict(x)
    assert out.shape == (rows, 7) and out.dtype == np.float32
    assert_close(out, twins.torch_forward(x), what=f"{rows} rows")
    assert_bitwise_equal(twins.trainer.model.state_dict(), before)


def test_predict_is_row_independent(predict_twins):
    """A row's output does not depend on which chunk or position it lands in."""
    twins, _ = predict_twins
    x = np.random.default_rng(5).standard_normal((31, 11)).astype(np.float32)
    full = twins.trainer.predict(x)
    for start, stop in [(0, 1), (3, 12), (8, 16), (30, 31)]:
        np.testing.assert_array_equal(twins.trainer.predict(x[start:stop]), full[start:stop])


def test_predict_accepts_float64_and_lists(predict_twins):
    twins, _ = predict_twins
    x = np.random.default_rng(6).standard_normal((3, 11))
    want = twins.trainer.predict(x.astype(np.float32))
    np.testing.assert_array_equal(twins.trainer.predict(x), want)
    np.testing.assert_array_equal(twins.trainer.predict(x.astype(np.float32).tolist()), want)


def test_predict_between_steps_does_not_disturb_training(device):
    widths, rng_seed = (10, 14, 5), 77
    plain = Twins(device, widths, "ce", batch_size=6, rng=np.random.default_rng(rng_seed))
    mixed = Twins(device, widths, "ce", batch_size=6, rng=np.random.default_rng(rng_seed))
    assert_bitwise_equal(plain.trainer.model.state_dict(), mixed.trainer.model.state_dict())
    data = np.random.default_rng(1)
    batches = [plain.batch(data) for _ in range(4)]
    probes = [data.standard_normal((n, 10)).astype(np.float32) for n in (1, 5, 6, 13)]
    plain_losses = [plain.trainer.step(x, y) for x, y in batches]
    mixed_losses = []
    for (x, y), probe in zip(batches, probes):
        mixed.trainer.predict(probe)
        mixed_losses.append(mixed.trainer.step(x, y))
        mixed.trainer.predict(x[:2])
    assert mixed_losses == plain_losses
    assert_bitwise_equal(mixed.trainer.model.state_dict(), plain.trainer.model.state_dict())
    assert_bitwise_equal(mixed.trainer.gradients(), plain.trainer.gradients())


# --- learning rate ----------------------------------------------------------------------------


@pytest.mark.parametrize("loss_kind", ["ce", "mse"])
def test_changing_lr_between_steps(device, rng, loss_kind):
    twins = Twins(device, (8, 10, 3), loss_kind, batch_size=5, rng=rng, lr=0.1)
    plan = twins.trainer.plan
    for step, lr in enumerate([0.1, 0.3, 0.0, 0.01, 0.2]):
        twins.optimizer.lr = lr
        assert twins.trainer.optimizer.lr == lr
        x, y = twins.batch(rng)
        before = twins.trainer.model.state_dict()
        loss = twins.trainer.step(x, y)
        assert_close(loss, twins.torch_step(x, y, lr=lr), what=f"loss at step {step}")
        twins.assert_params_match(f"after step {step} (lr {lr})")
        if lr == 0.0:
            assert_bitwise_equal(twins.trainer.model.state_dict(), before)
        assert twins.trainer.plan is plan


# --- odd shapes -------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 5])
def test_odd_shape_mlp_mse(device, rng, batch_size):
    twins = Twins(device, (7, 13, 1), "mse", batch_size=batch_size, rng=rng)
    for step in range(5):
        x, y = twins.batch(rng)
        assert_close(twins.trainer.step(x, y), twins.torch_step(x, y), what=f"loss at step {step}")
    twins.assert_params_match()
    for k, g in twins.torch_grads().items():
        assert_close(twins.trainer.gradients()[k], g, what=f"grad {k}")
    x = rng.standard_normal((2 * batch_size + 1, 7)).astype(np.float32)
    assert_close(twins.trainer.predict(x), twins.torch_forward(x))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_linear_1x1(device, rng, batch_size, bias):
    twins = Twins(device, (1, 1), "mse", batch_size=batch_size, rng=rng, bias=bias, lr=0.1)
    for step in range(5):
        x, y = twins.batch(rng)
        assert_close(twins.trainer.step(x, y), twins.torch_step(x, y), what=f"loss at step {step}")
    twins.assert_params_match()
    x = rng.standard_normal((4, 1)).astype(np.float32)
    assert_close(twins.trainer.predict(x), twins.torch_forward(x))


def test_single_class_cross_entropy(device, rng):
    """One class: the loss is exactly 0 and so are all gradients; parameters do not move."""
    twins = Twins(device, (4, 1), "ce", batch_size=3, rng=rng)
    before = twins.trainer.model.state_dict()
    x, y = twins.batch(rng)
    assert not y.any()
    loss = twins.trainer.step(x, y)
    assert_close(loss, twins.torch_step(x, y))
    assert loss == 0.0
    for k, g in twins.trainer.gradients().items():
        assert not g.any(), k
    assert_bitwise_equal(twins.trainer.model.state_dict(), before)


def test_cross_entropy_batch_one(device, rng):
    twins = Twins(device, (6, 9, 4), "ce", batch_size=1, rng=rng)
    for step in range(5):
        x, y = twins.batch(rng)
        assert_close(twins.trainer.step(x, y), twins.torch_step(x, y), what=f"loss at step {step}")
    twins.assert_params_match()


def test_two_trainers_on_one_model_share_its_parameters(device):
    """Like two PyTorch optimizers over one model: a step by either is seen by the model and the other."""
    vb.manual_seed(3)
    model = vb.Sequential(vb.Linear(4, 3))
    first = vb.Trainer(model, vb.MSELoss(), vb.SGD(lr=0.1), batch_size=2, device=device)
    second = vb.Trainer(model, vb.MSELoss(), vb.SGD(lr=0.1), batch_size=3, device=device)
    rng = np.random.default_rng(5)
    before = model.state_dict()
    first.step(rng.standard_normal((2, 4)), rng.standard_normal((2, 3)))
    after = model.state_dict()
    assert not np.array_equal(before["0.weight"], after["0.weight"])
    x = rng.standard_normal((5, 4))
    np.testing.assert_array_equal(first.predict(x), second.predict(x))
