"""Bad input: a clear ValueError naming the problem (what, where, expected vs got), raised before any
GPU work, with the model's parameters unchanged.

"Nothing changed" is proved twice for every rejected trainer call: the parameters are bit-identical
before and after, and the next valid step gives exactly the loss, parameters and gradients that the
same step gives on a fresh identical twin (same manual_seed, same load_state_dict).
"""

import math
import re
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

import vkbackprop as vb
from oracles import assert_bitwise_equal, no_gpu_work, with_value

SEED = 4321
IN, HIDDEN, BATCH, LR = 6, 8, 5, 0.1
OUT = {"ce": 4, "mse": 3}
KINDS = ["ce", "mse"]


# --- helpers ----------------------------------------------------------------------------------


def build_model(kind):
    vb.manual_seed(SEED)
    return vb.Sequential(vb.Linear(IN, HIDDEN), vb.ReLU(), vb.Linear(HIDDEN, OUT[kind]))


def build_trainer(device, kind, model=None):
    loss = vb.CrossEntropyLoss() if kind == "ce" else vb.MSELoss()
    return vb.Trainer(model or build_model(kind), loss=loss, optimizer=vb.SGD(lr=LR), batch_size=BATCH,
                      device=device)


def valid_batch(kind, seed=7):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, IN)).astype(np.float32)
    if kind == "ce":
        y = rng.integers(0, OUT[kind], BATCH)
    else:
        y = rng.standard_normal((BATCH, OUT[kind])).astype(np.float32)
    return x, y


class Case:
    """A reusable trainer (`trainer`) and what a fresh twin does on one valid step from `init`."""

    def __init__(self, device, kind):
        self.kind = kind
        twin = build_trainer(device, kind)
        rng = np.random.default_rng(SEED)
        self.init = OrderedDict((k, rng.standard_normal(v.shape).astype(np.float32))
                                for k, v in twin.model.state_dict().items())
        twin.model.load_state_dict(self.init)
        self.x, self.y = valid_batch(kind)
        self.expected_loss = twin.step(self.x, self.y)
        self.expected_state = twin.model.state_dict()
        self.expected_grads = twin.gradients()
        self.trainer = build_trainer(device, kind)

    def reset(self):
        self.trainer.optimizer.lr = LR
        self.trainer.model.load_state_dict(self.init)
        return self


@pytest.fixture(scope="module")
def cases(device):
    made = {}

    def get(kind):
        if kind not in made:
            made[kind] = Case(device, kind)
        return made[kind].reset()
    return get


def assert_rejected(case, call, match):
    """call(trainer) raises ValueError matching `match`, does no GPU work and changes nothing."""
    trainer = case.trainer
    before, lr = trainer.model.state_dict(), trainer.optimizer.lr
    with no_gpu_work(), pytest.raises(ValueError, match=match) as info:
        call(trainer)
    assert_bitwise_equal(trainer.model.state_dict(), before)
    assert trainer.optimizer.lr == lr
    # The next valid step is exactly the fresh twin's.
    assert trainer.step(case.x, case.y) == case.expected_loss
    assert_bitwise_equal(trainer.model.state_dict(), case.expected_state)
    assert_bitwise_equal(trainer.gradients(), case.expected_grads)
    return info.value


# --- x: shape, dtype, values (step, both losses) ----------------------------------------------

SHAPE = r"^x: expected shape \(5, 6\), got "
FLOAT = r"^x: expected a floating-point array, got dtype "
NONFINITE = r"^x: contains NaN or Inf \(first at index "

BAD_X = {
    "too many features": (lambda x: np.zeros((5, 7), np.float32), SHAPE + r"\(5, 7\)"),
    "too few features": (lambda x: x[:, :5], SHAPE + r"\(5, 5\)"),
    "batch too small": (lambda x: x[:4], SHAPE + r"\(4, 6\)"),
    "batch too large": (lambda x: np.vstack([x, x[:1]]), SHAPE + r"\(6, 6\)"),
    "1-D": (lambda x: x.ravel(), SHAPE + r"\(30,\)"),
    "1-D row": (lambda x: x[0], SHAPE + r"\(6,\)"),
    "3-D": (lambda x: x[:, :, None], SHAPE + r"\(5, 6, 1\)"),
    "transposed": (lambda x: np.zeros((6, 5), np.float32), SHAPE + r"\(6, 5\)"),
    "scalar": (lambda x: np.float32(1.0), SHAPE + r"\(\)"),
    "int64": (lambda x: x.astype(np.int64), FLOAT + "int64"),
    "int32": (lambda x: x.astype(np.int32), FLOAT + "int32"),
    "uint8": (lambda x: x.astype(np.uint8), FLOAT + "uint8"),
    "bool": (lambda x: x > 0, FLOAT + "bool"),
    "object": (lambda x: x.astype(object), FLOAT + "object"),
    "complex64": (lambda x: x.astype(np.complex64), FLOAT + "complex64"),
    "strings": (lambda x: x.astype(str), FLOAT + "<U"),
    "int list": (lambda x: np.ones((5, 6), int).tolist(), FLOAT + "int64"),
    "NaN": (lambda x: with_value(x, (2, 3), np.nan), NONFINITE + r"\(2, 3\)\)"),
    "NaN float64": (lambda x: with_value(x, (0, 0), np.nan, np.float64), NONFINITE + r"\(0, 0\)\)"),
    "+Inf": (lambda x: with_value(x, (4, 0), np.inf), NONFINITE + r"\(4, 0\)\)"),
    "-Inf": (lambda x: with_value(x, (0, 5), -np.inf), NONFINITE + r"\(0, 5\)\)"),
    "NaN after Inf": (lambda x: with_value(with_value(x, (3, 1), np.nan), (1, 4), np.inf),
                      NONFINITE + r"\(1, 4\)\)"),
    "NaN in a 1-D x": (lambda x: with_value(x.ravel(), 3, np.nan), SHAPE + r"\(30,\)"),  # shape first
}

# Finite float64 values beyond float32's range become Inf when converted: they must be rejected too.


@pytest.mark.parametrize("bad", list(BAD_X))
@pytest.mark.parametrize("kind", KINDS)
def test_step_rejects_bad_x(cases, kind, bad):
    case = cases(kind)
    make, match = BAD_X[bad]
    x = make(case.x)
    assert_rejected(case, lambda t: t.step(x, case.y), match)


@pytest.mark.parametrize("kind", KINDS)
def test_step_rejects_x_overflowing_float32(cases, kind):
    case = cases(kind)
    x = with_value(case.x, (1, 1), 1e300, np.float64)
    assert_rejected(case, lambda t: t.step(x, case.y), r"^x: .*\(1, 1\)")


# --- labels (CrossEntropyLoss) ----------------------------------------------------------------

RANGE = r"^labels: label {} at index {} is outside \[0, 4\)"
LSHAPE = r"^labels: expected shape \(5,\), got "
LDTYPE = r"^labels: expected integer class labels, got dtype "

BAD_LABELS = {
    "negative": (lambda y: with_value(y, 2, -1), RANGE.format(-1, 2)),
    "== classes": (lambda y: with_value(y, 3, 4), RANGE.format(4, 3)),
    "far too large": (lambda y: with_value(y, 1, 2 ** 40), RANGE.format(2 ** 40, 1)),
    "first of two": (lambda y: with_value(with_value(y, 4, 9), 1, -3), RANGE.format(-3, 1)),
    "== classes, uint8": (lambda y: with_value(y, 0, 4, np.uint8), RANGE.format(4, 0)),
    "float32": (lambda y: y.astype(np.float32), LDTYPE + "float32"),
    "float64": (lambda y: y.astype(np.float64), LDTYPE + "float64"),
    "bool": (lambda y: y > 1, LDTYPE + "bool"),
    "object": (lambda y: y.astype(object), LDTYPE + "object"),
    "column": (lambda y: y[:, None], LSHAPE + r"\(5, 1\)"),
    "too short": (lambda y: y[:4], LSHAPE + r"\(4,\)"),
    "too long": (lambda y: np.append(y, 0), LSHAPE + r"\(6,\)"),
    "one-hot": (lambda y: np.eye(4, dtype=np.int64)[y], LSHAPE + r"\(5, 4\)"),
    "scalar": (lambda y: np.int64(1), LSHAPE + r"\(\)"),
}


@pytest.mark.parametrize("bad", list(BAD_LABELS))
def test_step_rejects_bad_labels(cases, bad):
    case = cases("ce")
    make, match = BAD_LABELS[bad]
    y = make(case.y)
    assert_rejected(case, lambda t: t.step(case.x, y), match)


def test_bad_x_is_reported_before_bad_labels(cases):
    case = cases("ce")
    assert_rejected(case, lambda t: t.step(case.x[:, :5], case.y.astype(np.float32)), SHAPE)


# --- targets (MSELoss) ------------------------------------------------------------------------

TSHAPE = r"^targets: expected shape \(5, 3\), got "
TNONFINITE = r"^targets: contains NaN or Inf \(first at index "

BAD_TARGETS = {
    "1-D": (lambda y: y[:, 0], TSHAPE + r"\(5,\)"),
    "flat": (lambda y: y.ravel(), TSHAPE + r"\(15,\)"),
    "too wide": (lambda y: np.zeros((5, 4), np.float32), TSHAPE + r"\(5, 4\)"),
    "too few rows": (lambda y: y[:4], TSHAPE + r"\(4, 3\)"),
    "3-D": (lambda y: y[:, :, None], TSHAPE + r"\(5, 3, 1\)"),
    "NaN": (lambda y: with_value(y, (1, 2), np.nan), TNONFINITE + r"\(1, 2\)\)"),
    "+Inf": (lambda y: with_value(y, (4, 0), np.inf), TNONFINITE + r"\(4, 0\)\)"),
    "int64": (lambda y: y.astype(np.int64), r"^targets: expected a floating-point array, got dtype int64"),
    "class labels": (lambda y: np.zeros(5, np.int64), r"^targets: expected a floating-point array, got dtype int64"),
}


@pytest.mark.parametrize("bad", list(BAD_TARGETS))
def test_step_rejects_bad_mse_targets(cases, bad):
    case = cases("mse")
    make, match = BAD_TARGETS[bad]
    y = make(case.y)
    assert_rejected(case, lambda t: t.step(case.x, y), match)


def test_step_rejects_mse_targets_overflowing_float32(cases):
    case = cases("mse")
    y = with_value(case.y, (2, 1), -1e300, np.float64)
    assert_rejected(case, lambda t: t.step(case.x, y), r"^targets: .*\(2, 1\)")


# --- predict ----------------------------------------------------------------------------------

PSHAPE = r"^x: expected shape \(N, 6\), got "

BAD_PREDICT = {
    "too many features": (lambda: np.zeros((3, 7), np.float32), PSHAPE + r"\(3, 7\)"),
    "too few features": (lambda: np.zeros((12, 5), np.float32), PSHAPE + r"\(12, 5\)"),
    "1-D": (lambda: np.zeros(6, np.float32), PSHAPE + r"\(6,\)"),
    "3-D": (lambda: np.zeros((2, 6, 1), np.float32), PSHAPE + r"\(2, 6, 1\)"),
    "int64": (lambda: np.zeros((2, 6), np.int64), FLOAT + "int64"),
    "NaN": (lambda: with_value(np.zeros((3, 6), np.float32), (0, 2), np.nan), NONFINITE + r"\(0, 2\)\)"),
    "Inf in a later chunk": (lambda: with_value(np.zeros((12, 6), np.float32), (11, 5), np.inf),
                             NONFINITE + r"\(11, 5\)\)"),
}


@pytest.mark.parametrize("bad", list(BAD_PREDICT))
@pytest.mark.parametrize("kind", KINDS)
def test_predict_rejects_bad_x(cases, kind, bad):
    case = cases(kind)
    make, match = BAD_PREDICT[bad]
    x = make()
    assert_rejected(case, lambda t: t.predict(x), match)


# --- load_state_dict --------------------------------------------------------------------------


def edited(state, **changes):
    """A copy of state with keys replaced (value) or removed (None); '_' in names stands for '.'."""
    out = OrderedDict((k, v.copy()) for k, v in state.items())
    for key, value in changes.items():
        key = key.replace("_", ".")
        if value is None:
            del out[key]
        else:
            out[key] = value
    return out


def new_values(case, seed=1):
    """Valid values that differ from the current ones: a bad load must not apply even these."""
    rng = np.random.default_rng(seed)
    return OrderedDict((k, rng.standard_normal(v.shape).astype(np.float32)) for k, v in case.init.items())


BAD_STATE = {
    "missing key": (lambda s, out: edited(s, **{"2_bias": None}), r"^load_state_dict: missing keys \['2\.bias'\]"),
    "missing all": (lambda s, out: {}, r"missing keys \['0\.weight', '0\.bias', '2\.weight', '2\.bias'\]"),
    "unexpected key": (lambda s, out: edited(s, **{"4_weight": np.zeros((2, 2), np.float32)}),
                       r"^load_state_dict: missing keys \[\], unexpected keys \['4\.weight'\]"),
    "prefixed names": (lambda s, out: OrderedDict((f"module.{k}", v) for k, v in s.items()),
                       r"unexpected keys \['module\.0\.weight'"),
    "transposed weight": (lambda s, out: edited(s, **{"2_weight": s["2.weight"].T.copy()}),
                          r"^load_state_dict: '2\.weight' expected shape \({o}, 8\), got \(8, {o}\)"),
    "bias column": (lambda s, out: edited(s, **{"0_bias": s["0.bias"][:, None]}),
                    r"^load_state_dict: '0\.bias' expected shape \(8,\), got \(8, 1\)"),
    "scalar": (lambda s, out: edited(s, **{"2_bias": np.float32(0.0)}),
               r"^load_state_dict: '2\.bias' expected shape \({o},\), got \(\)"),
    "NaN": (lambda s, out: edited(s, **{"0_bias": with_value(s["0.bias"], 3, np.nan)}),
            r"^load_state_dict: '0\.bias': contains NaN or Inf"),
    "Inf in last key": (lambda s, out: edited(s, **{"2_bias": with_value(s["2.bias"], 0, -np.inf)}),
                        r"^load_state_dict: '2\.bias': contains NaN or Inf"),
    "complex": (lambda s, out: edited(s, **{"2_weight": s["2.weight"].astype(np.complex64)}),
                r"^load_state_dict: '2\.weight' expected a numeric array, got dtype complex64"),
    "bool": (lambda s, out: edited(s, **{"0_weight": s["0.weight"] > 0}),
             r"^load_state_dict: '0\.weight' expected a numeric array, got dtype bool"),
    "object": (lambda s, out: edited(s, **{"0_bias": s["0.bias"].astype(object)}),
               r"^load_state_dict: '0\.bias' expected a numeric array, got dtype object"),
}


@pytest.mark.parametrize("bad", list(BAD_STATE))
@pytest.mark.parametrize("kind", KINDS)
def test_load_state_dict_rejects_bad_state(cases, kind, bad):
    case = cases(kind)
    make, match = BAD_STATE[bad]
    state = make(new_values(case), OUT[kind])
    assert_rejected(case, lambda t: t.model.load_state_dict(state), match.format(o=OUT[kind]))


@pytest.mark.parametrize("bad", ["missing key", "transposed weight", "NaN"])
def test_load_state_dict_rejects_before_binding(bad):
    model = build_model("mse")
    before = model.state_dict()
    make, match = BAD_STATE[bad]
    state = make(OrderedDict((k, v + 1) for k, v in before.items()), OUT["mse"])
    with no_gpu_work(), pytest.raises(ValueError, match=match.format(o=OUT["mse"])):
        model.load_state_dict(state)
    assert_bitwise_equal(model.state_dict(), before)


def test_load_state_dict_rejects_values_overflowing_float32(cases):
    case = cases("ce")
    state = edited(new_values(case), **{"0_weight": with_value(case.init["0.weight"], (1, 2), 1e300, np.float64)})
    assert_rejected(case, lambda t: t.model.load_state_dict(state), r"^load_state_dict: '0\.weight'")


# --- learning rate ----------------------------------------------------------------------------

BAD_LR = [-1, -1e-9, math.nan, math.inf, -math.inf, "0.1", None, True, [0.1]]


@pytest.mark.parametrize("lr", BAD_LR, ids=repr)
def test_sgd_rejects_bad_lr(lr):
    with no_gpu_work(), pytest.raises(ValueError, match=r"^SGD: lr must be a finite number >= 0, got " + re.escape(repr(lr))):
        vb.SGD(lr=lr)


@pytest.mark.parametrize("lr", [-1, math.nan, math.inf], ids=repr)
@pytest.mark.parametrize("kind", KINDS)
def test_setting_bad_lr_on_a_trainer_changes_nothing(cases, kind, lr):
    case = cases(kind)
    assert_rejected(case, lambda t: setattr(t.optimizer, "lr", lr), r"^SGD: lr must be a finite number >= 0, got ")


# --- Trainer construction ---------------------------------------------------------------------

BAD_BATCH = [0, -1, 2.5, True, False, 4.0, "4", None]


@pytest.mark.parametrize("batch_size", BAD_BATCH, ids=repr)
def test_trainer_rejects_bad_batch_size(device, batch_size):
    model = build_model("ce")
    before = model.state_dict()
    with no_gpu_work(), pytest.raises(ValueError, match=r"^Trainer: batch_size must be a positive int, got "
                                                        + re.escape(repr(batch_size)) + "$"):
        vb.Trainer(model, loss=vb.CrossEntropyLoss(), optimizer=vb.SGD(lr=LR), batch_size=batch_size,
                   device=device)
    assert_bitwise_equal(model.state_dict(), before)


def test_model_trains_normally_after_rejected_trainers(device, cases):
    """After every rejected construction, the same model object still trains exactly like its twin."""
    case = cases("ce")
    model = build_model("ce")
    model.load_state_dict(case.init)
    for batch_size in BAD_BATCH:
        with pytest.raises(ValueError, match="batch_size"):
            vb.Trainer(model, loss=vb.CrossEntropyLoss(), optimizer=vb.SGD(lr=LR), batch_size=batch_size,
                       device=device)
    with pytest.raises(ValueError, match="loss"):
        vb.Trainer(model, loss=nn.CrossEntropyLoss(), optimizer=vb.SGD(lr=LR), batch_size=BATCH, device=device)
    with pytest.raises(ValueError, match="optimizer"):
        vb.Trainer(model, loss=vb.CrossEntropyLoss(), optimizer="sgd", batch_size=BATCH, device=device)
    assert_bitwise_equal(model.state_dict(), case.init)
    trainer = build_trainer(device, "ce", model)
    assert trainer.step(case.x, case.y) == case.expected_loss
    assert_bitwise_equal(trainer.model.state_dict(), case.expected_state)


NOT_MODELS = {
    "Linear": (lambda: vb.Linear(3, 2), r"vkbackprop\.layers\.linear\.Linear"),
    "ReLU": (lambda: vb.ReLU(), r"vkbackprop\.layers\.activation\.ReLU"),
    "list of layers": (lambda: [vb.Linear(3, 2)], "list"),
    "string": (lambda: "mlp", "str"),
    "None": (lambda: None, "NoneType"),
    "torch Sequential": (lambda: nn.Sequential(nn.Linear(3, 2)), r"torch\.nn\.modules\.container\.Sequential"),
}


@pytest.mark.parametrize("bad", list(NOT_MODELS))
def test_trainer_rejects_a_non_model(device, bad):
    make, name = NOT_MODELS[bad]
    with no_gpu_work(), pytest.raises(ValueError, match=r"^Trainer: model must be a vkbackprop Model or Sequential, got "
                                                        + name + "$"):
        vb.Trainer(make(), loss=vb.MSELoss(), optimizer=vb.SGD(lr=LR), batch_size=2, device=device)


@pytest.mark.parametrize("loss, name", [(nn.MSELoss(), r"torch\.nn\.modules\.loss\.MSELoss"), ("mse", "str"), (vb.MSELoss, "type")],
                         ids=["torch", "str", "class"])
def test_trainer_rejects_a_non_loss(device, loss, name):
    with no_gpu_work(), pytest.raises(ValueError, match=r"^Trainer: loss must be a vkbackprop loss, got " + name):
        vb.Trainer(build_model("mse"), loss=loss, optimizer=vb.SGD(lr=LR), batch_size=2, device=device)


@pytest.mark.parametrize("optimizer, name", [(lambda: torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1),
                                              r"torch\.optim\.sgd\.SGD"), (lambda: vb.SGD, "type"), (lambda: 0.1, "float")],
                         ids=["torch", "class", "float"])
def test_trainer_rejects_a_non_optimizer(device, optimizer, name):
    with no_gpu_work(), pytest.raises(ValueError, match=r"^Trainer: optimizer must be a vkbackprop optimizer, got "
                                                        + name):
        vb.Trainer(build_model("mse"), loss=vb.MSELoss(), optimizer=optimizer(), batch_size=2, device=device)


def test_trainer_rejects_a_model_of_unknown_input_width(device):
    with no_gpu_work(), pytest.raises(ValueError, match=r"^Sequential: the input shape is unknown"):
        vb.Trainer(vb.Sequential(vb.ReLU()), loss=vb.MSELoss(), optimizer=vb.SGD(lr=LR), batch_size=2,
                   device=device)


@pytest.mark.parametrize("args, what, got", [
    ((0, 3), "in_features", "0"), ((3, 0), "out_features", "0"), ((-2, 3), "in_features", "-2"),
    ((2.5, 3), "in_features", "2.5"), ((3, 2.0), "out_features", "2.0"), (("4", 3), "in_features", "'4'"),
    ((None, 3), "in_features", "None"),
], ids=repr)
def test_linear_rejects_bad_widths(args, what, got):
    with no_gpu_work(), pytest.raises(ValueError, match=rf"^Linear: {what} must be a positive int, got {re.escape(got)}$"):
        vb.Linear(*args)


def test_sequential_width_mismatch_names_both_layers():
    first, second = vb.Linear(4, 5), vb.Linear(6, 2)
    with no_gpu_work(), pytest.raises(ValueError) as info:
        vb.Sequential(first, second)
    message = str(info.value)
    assert message.startswith("Sequential: layer 1 ")
    assert repr(second) in message and repr(first) in message
    assert message.index(repr(second)) < message.index(repr(first))
    assert re.search(r"takes 6 input features, got 5", message), message


def test_sequential_width_mismatch_through_an_activation():
    with no_gpu_work(), pytest.raises(ValueError, match=r"^Sequential: layer 2 \(Linear\(in_features=6, "
                                                        r"out_features=2, bias=True\)\) .*got 5"):
        vb.Sequential(vb.Linear(4, 5), vb.ReLU(), vb.Linear(6, 2))


def test_sequential_rejects_no_layers_and_non_layers():
    with pytest.raises(ValueError, match=r"^Sequential: needs at least one layer"):
        vb.Sequential()
    with pytest.raises(ValueError, match=r"^Sequential: item 1 is str, not a layer"):
        vb.Sequential(vb.Linear(4, 5), "relu")
    with pytest.raises(ValueError, match=r"^Sequential: item 0 is ReLU, not a layer"):
        vb.Sequential(nn.ReLU(), vb.Linear(4, 5))
