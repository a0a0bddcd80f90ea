"""The step's memory (plan.py's pool): an activation no backward reads lives from its producer's
forward to its last reader's, an activation gradient from its first contribution to its producer's
backward; then their buffers serve values planned later. Checked: steps still match PyTorch on
chains, branches, a layer called twice and random graphs, every layer gets distinct buffers, a
chain's pooled memory does not grow with its depth, a backward reading a given-back value is
refused, and `Trainer.device_memory` adds up what the plan holds."""

import collections
from unittest import mock

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vkbackprop as vb
from oracles import check_step, check_step_against_twin, lin, torch_twin
from vkbackprop.distributed import DataParallelPlan
from vkbackprop.layers.base import backward_reads

F = torch.nn.functional
BATCH, IN, WIDTH, OUT = 6, 8, 12, 3


def handing_out_distinct_buffers(model):
    """`model` with each layer checking the buffers the plan hands it: backward gets dy, each dx and
    each parameter gradient in a buffer of its own, forward never its output in an input's buffer.
    A buffer handed out again too early would show here (e.g. a layer's dx in its dy's buffer: on a
    GPU, rows other workgroups are still reading). The one exception is by design: a layer that
    passes its dy on (Add) applies its fused ReLU's mask to dy in place where no other gradient
    holds dy (plan._pass_dy), each quad read and written by one invocation. Returns the model."""
    for layer in model.layers:
        if getattr(layer, "is_view", False):
            continue     # a view's output is its input's buffer
        def checked_forward(io, forward=layer.forward, layer=layer):
            assert all(x is not io.y for x in io.xs), f"{layer!r}: forward got its output in an input's buffer"
            return forward(io)

        def checked_backward(io, backward=layer.backward, layer=layer):
            dxs = [dx for dx in io.dxs if dx is not None]
            if layer.passes_dy and io.dy_prologue is not None and dxs == [io.dy]:
                dxs = []   # the mask in place
            given = [io.dy] + dxs + list(io.grads.values())
            assert len(set(given)) == len(given), f"{layer!r}: backward got {[b.name for b in given]}"
            return backward(io)
        layer.forward, layer.backward = checked_forward, checked_backward
    return model


def chain(depth: int, act) -> tuple:
    """Linear(IN, WIDTH), act, depth x (Linear(WIDTH, WIDTH), act), Linear(WIDTH, OUT): (vkbackprop
    layers, their torch twins)."""
    sizes = [IN] + [WIDTH] * (depth + 1) + [OUT]
    ours, theirs = [], []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        ours += [vb.Linear(fan_in, fan_out), getattr(vb, act)()]
        theirs += [torch.nn.Linear(fan_in, fan_out), getattr(torch.nn, act)()]
    return vb.Sequential(*ours[:-1]), torch.nn.Sequential(*theirs[:-1])


@pytest.mark.parametrize("act", ["Tanh", "ReLU"])   # ReLU: fused into the Linears, forward and backward
@pytest.mark.parametrize("depth", [1, 6])
def test_a_chains_pooled_memory_is_two_buffers_of_its_width_at_any_depth(device, rng, depth, act):
    vb.manual_seed(depth)
    model, twin = chain(depth, act)
    handing_out_distinct_buffers(model)
    twin = torch_twin(twin, model, torch.float64)
    x, y = rng.standard_normal((BATCH, IN)), rng.standard_normal((BATCH, OUT))
    trainer = vb.Trainer(model, vb.MSELoss(), vb.SGD(lr=0.1), BATCH, device=device)
    check_step_against_twin(trainer, x, y, twin, F.mse_loss(twin(torch.tensor(x)), torch.tensor(y)))
    # Gradients: dL/d(output), then two of the hidden width in turn (one read while the next is
    # written). Activations: the activation layers' outputs are kept (the next Linear's x, a Tanh's
    # y). A Linear's output before a Tanh is dead once the Tanh has read it: one pooled buffer serves
    # them all, and later one of the gradients. Before a ReLU it is the ReLU's buffer (fused).
    made = collections.Counter(b.shape for b in trainer.plan.pool.made)
    assert made == {(BATCH, OUT): 1, (BATCH, WIDTH): 2}
    memory = trainer.device_memory()
    params = sum(p.size for p in model.state_dict().values()) * 4
    pooled = 1 if act == "Tanh" else 0     # pooled buffers holding an activation count as activations
    assert memory == {
        "parameters": params,
        "activations": 4 * BATCH * (IN + WIDTH * (depth + 1 + pooled) + OUT),
        "activation gradients": 4 * BATCH * (OUT + (2 - pooled) * WIDTH),
        "parameter gradients": params,
        "optimizer state": 0,
        "other": memory["other"]}
    assert memory["other"] >= 4 * (BATCH * OUT + 1)   # the targets and the loss among them


def test_long_lived_and_added_gradients_match_torch(device, rng):
    """h's gradient gets partials from three consumers planned far apart, so it stays taken while the
    gradients between them come and go (and the partials' scratch comes from the same pool)."""
    vb.manual_seed(3)
    x = vb.Input(IN)
    h = vb.Linear(IN, WIDTH)(x)
    a = vb.Tanh()(vb.Linear(WIDTH, WIDTH)(vb.Tanh()(vb.Linear(WIDTH, WIDTH)(h))))
    b = vb.Sigmoid()(vb.Linear(WIDTH, WIDTH)(vb.Add()(a, h)))
    out = vb.Linear(WIDTH, OUT)(vb.Add()(b, h))
    model = handing_out_distinct_buffers(vb.Model(x, out))
    xv, yv = rng.standard_normal((BATCH, IN)), rng.standard_normal((BATCH, OUT))

    def reference(p, xt):
        ht = lin(p, "0", xt)
        at = torch.tanh(lin(p, "3", torch.tanh(lin(p, "1", ht))))
        bt = torch.sigmoid(lin(p, "6", at + ht))
        return F.mse_loss(lin(p, "9", bt + ht), torch.tensor(yv))
    trainer = check_step(model, vb.MSELoss(), xv, yv, reference, device)
    # The outer Add hands h its dy as h's gradient; the inner Add's dy is added to that by an
    # accumulate dispatch; Linear 1's input gradient adds its own as it stores it.
    dispatches = [w for k, w in trainer.plan.train.log if k == "dispatch"]
    assert sum(w.name.startswith("accumulate 0.output.grad") for w in dispatches) == 1
    adding = [w.name for w in dispatches if w.constants.get("ACCUMULATE")]
    assert len(adding) == 1 and adding[0].startswith("1:linear/backward_input")
    # Nine gradients of BATCH x WIDTH in three buffers: the Adds pass their dy on as their inputs'
    # gradients (h's is the outer Add's dy, a's the inner Add's), so at most three are taken at once:
    # those two and the gradient the Tanh after a writes. (One of them held the Linear outputs before
    # Tanh and Sigmoid in forward.)
    assert collections.Counter(b.shape for b in trainer.plan.pool.made) == {(BATCH, OUT): 1, (BATCH, WIDTH): 3}


def test_one_call_adding_two_partials_writes_them_apart(device, rng):
    """s's Concat is planned after t's, so both of its input gradients are second contributions: two
    different partials (dL/ds's halves), written by the same call, added after it."""
    vb.manual_seed(6)
    x = vb.Input(IN)
    h = vb.Linear(IN, WIDTH)(x)
    a = vb.Tanh()(h)
    s, t = vb.Concat()(a, h), vb.Concat()(a, h)
    model = handing_out_distinct_buffers(vb.Model(x, vb.Linear(4 * WIDTH, OUT)(vb.Concat()(s, t))))
    xv, yv = rng.standard_normal((BATCH, IN)), rng.standard_normal((BATCH, OUT))

    def reference(p, xt):
        ht = lin(p, "0", xt)
        st = torch.cat([torch.tanh(ht), ht], dim=1)
        return F.mse_loss(lin(p, "5", torch.cat([st, st], dim=1)), torch.tensor(yv))
    trainer = check_step(model, vb.MSELoss(), xv, yv, reference, device)
    names = [w.name for k, w in trainer.plan.train.log if k == "dispatch"]
    assert names.count("accumulate 0.output.grad") == 2 and names.count("accumulate 1.output.grad") == 1


def test_a_layer_called_twice_in_a_chain(device, rng):
    vb.manual_seed(4)
    shared = vb.Linear(WIDTH, WIDTH)
    x = vb.Input(IN)
    h = vb.Tanh()(shared(vb.Tanh()(shared(vb.Linear(IN, WIDTH)(x)))))
    model = handing_out_distinct_buffers(vb.Model(x, vb.Linear(WIDTH, OUT)(h)))
    xv, yv = rng.standard_normal((BATCH, IN)), rng.standard_normal((BATCH, OUT))

    def reference(p, xt):
        t = torch.tanh(lin(p, "1", torch.tanh(lin(p, "1", lin(p, "0", xt)))))
        return F.mse_loss(lin(p, "4", t), torch.tensor(yv))
    trainer = check_step(model, vb.MSELoss(), xv, yv, reference, device)
    # The shared weights' second gradient contributions are scratch from the same pool.
    names = [w.name for k, w in trainer.plan.train.log if k == "dispatch"]
    assert names.count("accumulate 1.weight.grad") == names.count("accumulate 1.bias.grad") == 1
    assert {(WIDTH, WIDTH), (WIDTH,)} <= {b.shape for b in trainer.plan.pool.made}


def test_device_memory_counts_optimizer_state_and_the_data_parallel_buckets(device):
    vb.manual_seed(5)
    model, _ = chain(2, "Tanh")
    params = sum(p.size for p in model.state_dict().values()) * 4
    adam = vb.Trainer(model, vb.MSELoss(), vb.Adam(lr=1e-3), BATCH, device=device).device_memory()
    assert adam["optimizer state"] == 2 * params      # exp_avg and exp_avg_sq

    single = vb.Trainer(model, vb.MSELoss(), vb.SGD(lr=0.1), BATCH, device=device).device_memory()
    parallel = DataParallelPlan(device, model, [vb.MSELoss()], vb.SGD(lr=0.1), BATCH).device_bytes()
    # The same buffers, plus its gradient buckets (a copy of every gradient) among the others.
    assert {k: v for k, v in parallel.items() if k != "other"} == {k: v for k, v in single.items() if k != "other"}
    assert parallel["other"] >= params


def test_device_memory_adds_up_every_buffer_the_plan_allocated(device):
    """The independent count: every buffer Device.buffer makes while a Trainer is built (the device's
    shared placeholder exists already; it is not the plan's)."""
    vb.manual_seed(7)
    x = vb.Input(IN)
    h = vb.Linear(IN, WIDTH)(x)
    model = vb.Model(x, vb.Linear(WIDTH, OUT)(vb.Add()(vb.ReLU()(h), vb.Dropout(0.2)(h))))
    device.placeholder
    made = []
    buffer = vb.Device.buffer

    def counted(self, *args, **kwargs):
        made.append(buffer(self, *args, **kwargs))
        return made[-1]
    with mock.patch.object(vb.Device, "buffer", counted):
        trainer = vb.Trainer(model, vb.MSELoss(), vb.Adam(), BATCH, device=device)
    assert sum(trainer.device_memory().values()) == sum(b.size * b.dtype.itemsize for b in made)


def test_values_no_backward_reads_share_memory_after_their_last_reader(device, rng):
    """LayerNorm's backward reads its input, Concat's and Add's nothing, Sigmoid's its output: the
    LayerNorm, Concat and Add outputs are free once read, and each call's output is taken before its
    inputs are given back (never written over what it reads)."""
    vb.manual_seed(8)
    x = vb.Input(IN)
    normed = vb.LayerNorm(WIDTH)(vb.Linear(IN, WIDTH)(x))
    joined = vb.Concat()(normed, normed)
    added = vb.Add()(joined, joined)
    model = handing_out_distinct_buffers(vb.Model(x, vb.Linear(2 * WIDTH, OUT)(vb.Sigmoid()(added))))
    xv, yv = rng.standard_normal((BATCH, IN)), rng.standard_normal((BATCH, OUT))

    def reference(p, xt):
        nt = F.layer_norm(lin(p, "0", xt), (WIDTH,), p["1.weight"], p["1.bias"])
        jt = torch.cat([nt, nt], dim=1)
        return F.mse_loss(lin(p, "5", torch.sigmoid(jt + jt)), torch.tensor(yv))
    trainer = check_step(model, vb.MSELoss(), xv, yv, reference, device)
    # LayerNorm's output, then Concat's and Add's (both taken while the one before is read).
    pooled = [trainer.plan._value_of(v) for v in (normed, joined, added)]
    assert len(set(pooled)) == 3 and set(pooled) <= set(trainer.plan.pool.made)


def test_a_backward_reading_what_its_layer_does_not_declare_is_refused(device):
    """The plan's check of `backward_reads`: a Tanh claiming to need nothing while its backward reads
    its output (read by nothing else's backward: an Add's, so the plan would reuse its memory)."""
    class Forgetful(vb.Tanh):
        backward_reads = ()
    x = vb.Input(IN)
    t = Forgetful()(vb.Linear(IN, WIDTH)(x))
    model = vb.Model(x, vb.Linear(WIDTH, OUT)(vb.Add()(t, t)))
    with pytest.raises(RuntimeError, match=r"tanh/backward reads \['pooled \d \(given back after forward\)'\]: "
                                           r"Tanh\(\)'s backward_reads must name it"):
        vb.Trainer(model, vb.MSELoss(), vb.SGD(lr=0.1), BATCH, device=device)


def test_a_forward_saving_what_its_layer_does_not_declare_is_refused(device):
    """An LSTM keeps its input sequence in `io.saved` for its weight gradients, where backward's
    stand-ins cannot catch a read: claiming to read nothing, with its input a Dropout's output
    (which no other backward reads), is refused when planned."""
    class Forgetful(vb.LSTM):
        backward_reads = ()
    x = vb.Input((5, 3))
    lstm = Forgetful(3, 4, return_state=True)
    _, (h_n, c_n) = lstm.split(lstm(vb.Dropout(0.1)(x)))
    model = vb.Model(x, vb.Linear(4, 2)(vb.Flatten()(vb.Add()(h_n, c_n))))
    with pytest.raises(RuntimeError, match=r"Forgetful\(3, 4, return_state=True\) \(1\) saves \['pooled 0'\] for backward: its backward_reads"):
        vb.Trainer(model, vb.MSELoss(), vb.SGD(lr=0.1), 2, device=device)


def test_a_subclass_with_its_own_backward_keeps_its_input_and_output():
    """What a subclass's own backward reads is unknown: both stay (its base's declaration no longer holds)."""
    class OwnBackward(vb.Tanh):
        def backward(self, io):
            return super().backward(io)
    assert backward_reads(vb.Tanh()) == ("y",) and backward_reads(OwnBackward()) == ("x", "y")
    assert backward_reads(vb.Add()) == () and backward_reads(vb.Linear(2, 3)) == ("x",)
    assert backward_reads(vb.LSTM(2, 3)) == ("x",) and backward_reads(vb.Module()) == ("x", "y")   # the default


# The layers random graphs are made of, and each one's PyTorch twin on its inputs (p: torch_params).
TWINS = {
    vb.Linear: lambda p, name, layer, xs: lin(p, name, xs[0]),
    vb.Tanh: lambda p, name, layer, xs: torch.tanh(xs[0]),
    vb.ReLU: lambda p, name, layer, xs: F.relu(xs[0]),
    vb.Sigmoid: lambda p, name, layer, xs: torch.sigmoid(xs[0]),
    vb.Add: lambda p, name, layer, xs: sum(xs[1:], xs[0]),
    vb.Concat: lambda p, name, layer, xs: torch.cat(xs, dim=1),
    vb.LayerNorm: lambda p, name, layer, xs: F.layer_norm(xs[0], layer.normalized_shape, p[f"{name}.weight"],
                                                          p[f"{name}.bias"]),
    vb.Identity: lambda p, name, layer, xs: xs[0],
}


def random_graph(data) -> vb.Model:
    """Up to 8 calls, each on values drawn from those made so far (so values fan out, join and live
    long), widths 4 to 16, then a Linear to OUT from the last value."""
    x = vb.Input(8)
    values = [x]
    for _ in range(data.draw(st.integers(1, 8))):
        v = data.draw(st.sampled_from(values))
        width = v.shape[0]
        kind = data.draw(st.sampled_from(sorted(TWINS, key=lambda k: k.__name__)))
        if kind is vb.Linear:
            layer, inputs = vb.Linear(width, data.draw(st.sampled_from([4, 8]))), [v]
        elif kind is vb.Add:
            layer, inputs = vb.Add(), [v, data.draw(st.sampled_from([u for u in values if u.shape == v.shape]))]
        elif kind is vb.Concat:
            fitting = [u for u in values if u.shape[0] + width <= 16]
            if not fitting:
                continue
            layer, inputs = vb.Concat(), [v, data.draw(st.sampled_from(fitting))]
        elif kind is vb.LayerNorm:
            layer, inputs = vb.LayerNorm(width), [v]
        else:
            layer, inputs = kind(), [v]
        values.append(layer(*inputs))
    return vb.Model(x, vb.Linear(values[-1].shape[0], OUT)(values[-1]))


def torch_forward(model, p, xt):
    """The model's output in PyTorch, call by call through the graph."""
    done = {id(model.inputs[0]): xt}

    def value(v):
        if id(v) not in done:
            layer = v.call.layer
            done[id(v)] = TWINS[type(layer)](p, model.layer_names[id(layer)], layer, [value(u) for u in v.call.inputs])
        return done[id(v)]
    return value(model.outputs[0])


def test_an_adds_mask_in_place_beside_an_input_that_needs_no_gradient(device, rng):
    """x + relu(h + h), h = Linear(x): the outer Add passes its dy to the ReLU alone (the model
    input needs no gradient), so the inner Add applies the fused ReLU's mask to that buffer in
    place. Found by test_random_graphs_train_like_torch."""
    vb.manual_seed(3)
    x = vb.Input(8)
    h = vb.Linear(8, 8)(x)
    inner = vb.ReLU()(vb.Add()(h, h))
    model = handing_out_distinct_buffers(vb.Model(x, vb.Linear(8, OUT)(vb.Add()(x, inner))))
    xv, yv = rng.standard_normal((5, 8)), rng.standard_normal((5, OUT))
    trainer = check_step(model, vb.MSELoss(), xv, yv,
                         lambda p, xt: F.mse_loss(torch_forward(model, p, xt), torch.tensor(yv)), device)
    masks = [w for k, w in trainer.plan.train.log if k == "dispatch" and "add/backward" in w.name]
    assert len(masks) == 1 and masks[0].reads & masks[0].writes, "the mask in place"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), seed=st.integers(0, 2 ** 16))
def test_random_graphs_train_like_torch(device, rng, data, seed):
    """Fan-out, joins, views, fusion and long-lived values in any mix: one step matches PyTorch, every
    layer gets distinct buffers, and the barriers are exact (check_step)."""
    vb.manual_seed(seed)
    model = handing_out_distinct_buffers(random_graph(data))
    xv, yv = rng.standard_normal((5, 8)), rng.standard_normal((5, OUT))
    check_step(model, vb.MSELoss(), xv, yv,
               lambda p, xt: F.mse_loss(torch_forward(model, p, xt), torch.tensor(yv)), device)
