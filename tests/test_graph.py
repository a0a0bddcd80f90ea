"""Graph models: fan-out gradients add (in the scheduler, for every layer), shared layers add their
parameter gradients, several outputs' losses add; each against PyTorch autograd with the same weights."""

import numpy as np
import pytest
import torch

import vkbackprop as vb
from oracles import check_step, lin

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
