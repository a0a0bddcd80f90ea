"""Graph models: fan-out gradients add (in the scheduler, for every layer), shared layers add their
parameter gradients, several outputs' losses add; each against PyTorch autograd with the same weights."""

import numpy as np
import pytest
import torch

import vkbackprop as vb
from oracles import check_barriers_exact, check_step, lin

F = torch.nn.functional


def test_value_feeding_three_consumers(device, rng):
    vb.manual_seed(0)
    x = vb.Input(6)
    h = vb.Linear(6, 5)(x)                      # h feeds three layers
    b, c = vb.Linear(5, 4)(h), vb.Linear(5, 4)(h)
    d = vb.Linear(5, 4)(vb.Tanh()(h))
    out = vb.Linear(4, 3)(vb.Add()(b, c, d))
    model = vb.Model(inputs=x, outputs=out)
    xv, yv = rng.standard_normal((7, 6)), rng.standard_normal((7, 3))

    def reference(p, xt):
        ht = lin(p, "0", xt)
        s = lin(p, "1", ht) + lin(p, "2", ht) + lin(p, "4", torch.tanh(ht))
        return F.mse_loss(lin(p, "6", s), torch.tensor(yv))
    trainer = check_step(model, vb.MSELoss(), xv, yv, reference, device)
    # The scheduler routes the partials: the Tanh's backward writes h's gradient first (backward runs
    # in reverse), then the two Linears' input gradients add theirs to it as they store them.
    dispatches = [w for k, w in trainer.plan.train.log if k == "dispatch"]
    assert not any(w.name.startswith("accumulate") for w in dispatches)
    adding = [w for w in dispatches if w.constants.get("ACCUMULATE")]
    assert [w.name.split(":")[0] for w in adding] == ["2", "1"]
    tanh_backward = next(w for w in dispatches if "tanh/backward" in w.name)
    assert all(w.bound["dx"] is tanh_backward.bound["dx"] for w in adding)


def test_residual_mlp(device, rng):
    vb.manual_seed(1)
    x = vb.Input(8)
    h = vb.ReLU()(vb.Linear(8, 16)(x))
    r = vb.Add()(h, vb.ReLU()(vb.Linear(16, 16)(h)))
    out = vb.Linear(16, 5)(r)
    model = vb.Model(x, out)
    xv, yv = rng.standard_normal((9, 8)), rng.integers(0, 5, 9)

    def reference(p, xt):
        ht = F.relu(lin(p, "0", xt))
        rt = ht + F.relu(lin(p, "2", ht))
        return F.cross_entropy(lin(p, "5", rt), torch.tensor(yv))
    check_step(model, vb.CrossEntropyLoss(), xv, yv, reference, device)


def test_input_feeding_a_residual_add_needs_no_gradient(device, rng):
    vb.manual_seed(2)
    x = vb.Input(4)
    out = vb.Linear(4, 2)(vb.Add()(x, vb.Linear(4, 4)(x)))
    model = vb.Model(x, out)
    xv, yv = rng.standard_normal((3, 4)), rng.standard_normal((3, 2))
    check_step(model, vb.MSELoss(), xv, yv,
               lambda p, xt: F.mse_loss(lin(p, "2", xt + lin(p, "0", xt)), torch.tensor(yv)), device)


def test_shared_layer_adds_its_parameter_gradients(device, rng):
    vb.manual_seed(3)
    shared = vb.Linear(5, 5)
    x = vb.Input(5)
    out = shared(vb.Tanh()(shared(x)))          # the same weights act twice
    model = vb.Model(x, out)
    assert list(model.state_dict()) == ["0.weight", "0.bias"]
    xv, yv = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
    check_step(model, vb.MSELoss(), xv, yv,
               lambda p, xt: F.mse_loss(lin(p, "0", torch.tanh(lin(p, "0", xt))), torch.tensor(yv)), device)


def test_two_outputs_with_their_own_losses_add(device, rng):
    vb.manual_seed(4)
    x1, x2 = vb.Input(6, name="a"), vb.Input(3, name="b")
    trunk = vb.ReLU()(vb.Linear(6, 8, )(x1))
    head1 = vb.Linear(8, 4)(trunk)                         # an output that also feeds another layer
    head2 = vb.Linear(4, 2)(vb.Add()(vb.Linear(3, 4)(x2), head1))
    model = vb.Model(inputs=[x1, x2], outputs=[head1, head2])
    xv = [rng.standard_normal((5, 6)), rng.standard_normal((5, 3))]
    yv = [rng.integers(0, 4, 5), rng.standard_normal((5, 2))]

    def reference(p, a, b):
        h1 = lin(p, "2", F.relu(lin(p, "0", a)))
        h2 = lin(p, "5", lin(p, "3", b) + h1)
        return F.cross_entropy(h1, torch.tensor(yv[0])) + F.mse_loss(h2, torch.tensor(yv[1]))
    trainer = check_step(model, [vb.CrossEntropyLoss(), vb.MSELoss()], xv, yv, reference, device)
    outs = trainer.predict([xv[0][:2], xv[1][:2]])
    assert isinstance(outs, list) and [o.shape for o in outs] == [(2, 4), (2, 2)]


def test_named_layers_give_readable_stable_keys():
    x = vb.Input(3)
    model = vb.Model(x, vb.Linear(4, 2, name="head")(vb.ReLU()(vb.Linear(3, 4, name="encoder")(x))))
    assert list(model.state_dict()) == ["encoder.weight", "encoder.bias", "head.weight", "head.bias"]
    seq = vb.Sequential(vb.Linear(3, 4), vb.ReLU(), vb.Linear(4, 2))
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_graph_errors_name_what_is_wrong():
    x, unused = vb.Input(4, name="x"), vb.Input(4, name="spare")
    h = vb.Linear(4, 5)(x)
    with pytest.raises(ValueError, match=r"Linear\(in_features=6.*cannot take the output of Linear\(in_features=4"):
        vb.Linear(6, 2)(h)
    with pytest.raises(ValueError, match=r"Add\(\) cannot take .*widths \[5, 4\]"):
        vb.Add()(h, x)
    with pytest.raises(ValueError, match=r"Add takes at least 2 inputs"):
        vb.Add()(h)
    with pytest.raises(ValueError, match=r"inputs \['spare'\] are not used"):
        vb.Model(inputs=[x, unused], outputs=h)
    with pytest.raises(ValueError, match=r"reads input\(s\) \['x'\] that are not among the model's inputs"):
        vb.Model(inputs=unused, outputs=vb.Add()(h, vb.Linear(4, 5)(unused)))
    with pytest.raises(ValueError, match="not a graph value"):
        vb.Linear(4, 2)(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="two layers are named 'same'"):
        vb.Model(x, vb.Linear(5, 5, name="same")(vb.Linear(4, 5, name="same")(x)))
    with pytest.raises(ValueError, match="2 outputs but 1 losses"):
        vb.Trainer(vb.Model(x, [h, vb.ReLU()(h)]), vb.MSELoss(), vb.SGD(lr=0.1), 2)


def test_cycles_are_rejected():
    x = vb.Input(3)
    a = vb.Linear(3, 3)(x)
    b = vb.Linear(3, 3)(a)
    a.call.inputs = (b,)     # only reachable by editing the graph by hand
    with pytest.raises(ValueError, match="cycle"):
        vb.Model(x, b)


def dispatches_of(trainer) -> list:
    return [w for k, w in trainer.plan.train.log if k == "dispatch"]


def passing_and_copying(build, x, y, reference, device, monkeypatch) -> tuple:
    """Trainers of `build()` whose Adds pass dy on, and whose Adds copy it to each input (as a
    subclass with its own backward does), each after one step checked against PyTorch; their
    gradients must be bit-identical."""
    passing = check_step(build(), vb.MSELoss(), x, y, reference, device)
    with monkeypatch.context() as patch:
        patch.setattr(vb.Add, "passes_dy", False)
        copying = check_step(build(), vb.MSELoss(), x, y, reference, device)
    for name, grad in copying.gradients().items():
        assert np.array_equal(passing.gradients()[name], grad), name
    return passing, copying


PASS_THROUGH = {
    # Add(h, h): the same value twice; its second share sums the buffer with itself into a new one.
    "same value twice": (lambda x: vb.Add()(x, x), lambda xt: xt + xt),
    # The Linear's input gradient sums into a new buffer: the partials buffer (the Add's dy) is
    # also the Linear's output gradient, which it is reading.
    "linear beside its add": (lambda x: vb.Add()(vb.Linear(5, 5)(x), x), "linear"),
    # The same with a writer that cannot add (Tanh): scratch, then add/forward.comp into a new buffer.
    "tanh beside its add": (lambda x: vb.Add()(vb.Tanh()(x), x), lambda xt: torch.tanh(xt) + xt),
    # Nested: the inner Add's dy is the outer one's, which the Sigmoid's output gradient still holds
    # (the Sigmoid comes first in forward, so its backward comes last), so the inner Add's ReLU mask
    # goes to a new buffer, not in place. (The outer ReLU's backward is the last Linear's.)
    "nested adds with relus": (lambda x: vb.ReLU()(vb.Add()(vb.Sigmoid()(x), vb.ReLU()(vb.Add()(x, vb.Tanh()(x))))),
                               lambda xt: F.relu(torch.sigmoid(xt) + F.relu(xt + torch.tanh(xt)))),
}


@pytest.mark.parametrize("case", sorted(PASS_THROUGH))
def test_adds_pass_dy_on_without_copies(device, rng, monkeypatch, case):
    """An Add hands its inputs its dy buffer itself (GradientRouter.pass_on); a buffer several
    gradients hold is never written: later partials sum into a new one. Checked against PyTorch
    autograd, and bit for bit against the plan whose Adds copy dy to each input."""
    body, torch_body = PASS_THROUGH[case]

    def build():
        vb.manual_seed(7)
        x = vb.Input(4)
        h = vb.Linear(4, 5)(x)
        return vb.Model(x, vb.Linear(5, 3)(body(h)))
    xv, yv = rng.standard_normal((6, 4)), rng.standard_normal((6, 3))

    def reference(p, xt):
        def linear(shape):   # the name of the Linear whose weight has this shape
            return next(k.split(".")[0] for k in p if k.endswith(".weight") and p[k].shape == shape)
        ht = lin(p, linear((5, 4)), xt)
        inner = lin(p, linear((5, 5)), ht) + ht if torch_body == "linear" else torch_body(ht)
        return F.mse_loss(lin(p, linear((3, 5)), inner), torch.tensor(yv))
    passing, copying = passing_and_copying(build, xv, yv, reference, device, monkeypatch)
    ours, theirs = dispatches_of(passing), dispatches_of(copying)
    assert not any("add/backward" in w.name and not w.constants["RELU_BACKWARD"] for w in ours)
    assert len(ours) < len(theirs)
    if case == "linear beside its add":
        adding = [w for w in ours if w.constants.get("ACCUMULATE")]
        assert len(adding) == 1 and adding[0].bound["partials"] is not adding[0].bound["dx"]
    if case == "nested adds with relus":
        masks = [w for w in ours if "add/backward" in w.name]
        assert len(masks) == 1 and masks[0].bound["dx"] is not masks[0].bound["dy"]
    check_barriers_exact(passing.plan.train.log)


def test_a_shared_gradient_buffer_is_not_written_while_another_gradient_holds_it(device, rng, monkeypatch):
    """s = Add(a, b) hands a and b its dy buffer; in this (valid) call order the Tanh reading a comes
    after a's and b's producers but before the Add, so its backward adds to a's gradient while b's
    still holds that buffer, unread: the sum must go to a new buffer, or b's gradient changes."""
    def build():
        vb.manual_seed(8)
        x = vb.Input(4)
        h = vb.Linear(4, 5)(x)
        a, b = vb.Linear(5, 5)(h), vb.Linear(5, 5)(h)
        model = vb.Model(x, vb.Linear(5, 3)(vb.Add()(vb.Add()(a, b), vb.Tanh()(a))))
        names = [type(c.layer).__name__ for c in model.calls]
        assert names == ["Linear", "Linear", "Linear", "Add", "Tanh", "Add", "Linear"]
        model.calls = [model.calls[i] for i in (0, 1, 2, 4, 3, 5, 6)]
        return model
    xv, yv = rng.standard_normal((6, 4)), rng.standard_normal((6, 3))

    def reference(p, xt):
        ht = lin(p, "0", xt)
        at, bt = lin(p, "1", ht), lin(p, "2", ht)
        return F.mse_loss(lin(p, "6", (at + bt) + torch.tanh(at)), torch.tensor(yv))
    passing, _ = passing_and_copying(build, xv, yv, reference, device, monkeypatch)
    check_barriers_exact(passing.plan.train.log)


def test_an_add_with_its_own_backward_gets_a_gradient_buffer_per_input(device, rng):
    """A subclass's backward is the user's code: the plan runs it with a buffer per input, as for
    any layer, instead of passing dy on (`passes_dy` is False)."""
    class OwnBackwardAdd(vb.Add):
        def backward(self, io):
            return super().backward(io)
    assert vb.Add().passes_dy and not OwnBackwardAdd().passes_dy
    vb.manual_seed(9)
    x = vb.Input(4)
    h = vb.Linear(4, 5)(x)
    model = vb.Model(x, vb.Linear(5, 3)(OwnBackwardAdd()(vb.Tanh()(h), h)))
    xv, yv = rng.standard_normal((6, 4)), rng.standard_normal((6, 3))
    trainer = check_step(model, vb.MSELoss(), xv, yv, lambda p, xt: F.mse_loss(
        lin(p, "3", torch.tanh(lin(p, "0", xt)) + lin(p, "0", xt)), torch.tensor(yv)), device)
    copies = [w for w in dispatches_of(trainer) if "add/backward" in w.name]
    assert len(copies) == 2 and copies[0].bound["dx"] is not copies[1].bound["dx"]


def test_a_layer_with_parameters_cannot_pass_dy_on(device):
    class Scale(vb.Linear):   # a user's layer claiming its inputs' gradients are dy
        passes_dy = True
    x = vb.Input(4)
    model = vb.Model(x, vb.Linear(4, 2)(Scale(4, 4)(x)))
    with pytest.raises(RuntimeError, match=r"passes dy on \(passes_dy\) but has parameters \['bias', 'weight'\]"):
        vb.Trainer(model, vb.MSELoss(), vb.SGD(lr=0.1), 3, device=device)
