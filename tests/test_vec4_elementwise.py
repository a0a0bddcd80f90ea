"""The vec4 elementwise shaders (shaders/common/vec4_index.glsl): optimizer updates, ReLU, Add, gradient
accumulation and fill on sizes around multiples of 4 and larger, where whole quads go through vec4
views and the 1-3 tail elements through float views of the same buffers. Distinctive values at the
end catch a tail that is skipped or done twice; output buffers start as NaN to catch unwritten
elements. Also: any grid is correct (one workgroup, a grid folded into y, too many invocations),
the guard's bad flag changes nothing, and hazard tracking sees a buffer bound under two names once."""

import numpy as np
import pytest
import torch

import vkbackprop as vb
from vkbackprop.layers.activation import elementwise
from vkbackprop.layers.base import LayerIO
from vkbackprop.optim import fill
from vkbackprop.optim import sgd as sgd_module
from vkbackprop.schedule import Recorder
from oracles import adam, adamw, sgd

SIZES = [1, 2, 3, 4, 5, 7, 1023, 4097, 70001]
STEPS = 4
TAIL = np.array([60.0, -45.0, 30.0], np.float32)   # the last elements: far from the random ones


def staged(device, name, values):
    buffer = device.buffer(name, np.shape(values), staged=True)
    device.write(buffer, values)
    return buffer


def run(device, *dispatches):
    rec = Recorder(device)
    for d in dispatches:
        rec.dispatch(d)
    rec.sequence.eval()


def values(rng, n, tail=TAIL):
    """Random float32 values whose last min(3, n) elements are `tail`."""
    v = rng.standard_normal(n).astype(np.float32)
    k = min(3, n)
    v[n - k:] = tail[3 - k:]
    return v


OPTIMIZERS = {
    "sgd": lambda: sgd(lr=0.1),
    "sgd-weight-decay": lambda: sgd(lr=0.1, weight_decay=0.05),
    "sgd-momentum": lambda: sgd(lr=0.05, momentum=0.9, dampening=0.2),
    "sgd-nesterov-weight-decay": lambda: sgd(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.02),
    "adam": lambda: adam(lr=0.01, weight_decay=0.1),
    "adam-small-beta1": lambda: adam(lr=0.01, betas=(0.3, 0.9), eps=1e-6),
    "adamw": lambda: adamw(lr=0.01, weight_decay=0.1),
    "amsgrad": lambda: adam(lr=0.01, amsgrad=True),
    "adamw-amsgrad": lambda: adamw(lr=0.01, betas=(0.8, 0.99), weight_decay=0.05, amsgrad=True),
}


def assert_close(got, want, what):
    want = np.asarray(want, np.float64)
    err = np.abs(np.asarray(got, np.float64) - want)
    bound = 1e-5 * np.abs(want) + 1e-6 * max(np.abs(want).max(), 1e-30)
    bad = np.flatnonzero(err > bound)
    assert bad.size == 0, f"{what}: {bad.size} elements differ, first at {bad[:5]}: {got[bad[:3]]} vs {want[bad[:3]]}"


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("config", list(OPTIMIZERS))
def test_optimizer_matches_torch(device, rng, config, n):
    ours, make_theirs = OPTIMIZERS[config]()
    p0 = values(rng, n, np.array([100.0, -50.0, 25.0], np.float32))
    param = staged(device, "param", p0)
    state = {k: staged(device, k, np.zeros(n, np.float32)) for k in ours.state_shapes((n,))}
    theirs_param = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    theirs = make_theirs([theirs_param])
    for step in range(STEPS):
        grad = values(rng, n)
        coef = np.float32(0.75 if step % 2 else 1.0)   # the clip coefficient multiplies the gradient first
        guard = staged(device, "guard", np.array([coef, 0, 0, 0], np.float32))
        hyper = staged(device, "hyper", ours.hyper_values(step))
        run(device, ours.update(device, hyper, param, staged(device, "grad", grad), state, guard))
        theirs_param.grad = torch.from_numpy(grad * coef)
        theirs.step()
    got = device.read(param)
    assert_close(got, theirs_param.detach().numpy(), f"{config} param")
    assert not np.array_equal(got[-min(3, n):], p0[-min(3, n):]), "the tail was not updated"
    for key, value in theirs.state[theirs_param].items():
        if key != "step":
            assert_close(device.read(state[key]), value.numpy(), f"{config} {key}")

    # A bad step (guard[2] != 0) writes nothing: the parameter and the state keep every bit.
    before = [device.read(b) for b in (param, *state.values())]
    guard = staged(device, "guard", np.array([1.0, np.inf, 1.0, 1.0], np.float32))
    hyper = staged(device, "hyper", ours.hyper_values(STEPS))
    run(device, ours.update(device, hyper, param, staged(device, "grad", values(rng, n)), state, guard))
    for b, old in zip((param, *state.values()), before):
        assert np.array_equal(device.read(b).view(np.uint32), old.view(np.uint32)), b.name


@pytest.mark.parametrize("texel_reads", ["1", "0"])   # quads read as texel or storage buffers
@pytest.mark.parametrize("max_groups", [None, 2])   # 2: most invocations loop over several quads
def test_sgd_updates_several_parameters_per_dispatch_as_torch_does(device, rng, monkeypatch, max_groups, texel_reads):
    monkeypatch.setenv("VKBACKPROP_TEXEL_READS", texel_reads)
    compiled = []   # the variants the updates were built from
    real_program = device.program
    monkeypatch.setattr(device, "program", lambda path, defines=None: (compiled.append(defines), real_program(path, defines))[1])
    if max_groups:
        monkeypatch.setattr(sgd_module, "MAX_GROUPS", max_groups)
    ours, make_theirs = OPTIMIZERS["sgd-weight-decay"]()
    sizes = SIZES[::-1] + [6, 8]   # 11 parameters: two dispatches
    starts = [values(rng, n, np.array([100.0, -50.0, 25.0], np.float32)) for n in sizes]
    params = [staged(device, f"param{i}", p) for i, p in enumerate(starts)]
    theirs_params = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in starts]
    theirs = make_theirs(theirs_params)
    slots = sgd_module.foreach_slots(device.program("sgd/update.comp"))
    for step in range(STEPS):
        grads = [values(rng, n) for n in sizes]
        guard = staged(device, "guard", np.array([1.0, 0, 0, 0], np.float32))
        hyper = staged(device, "hyper", ours.hyper_values(step))
        work = ours.updates(device, hyper, [(p, staged(device, f"grad{i}", g), {})
                                            for i, (p, g) in enumerate(zip(params, grads))], guard)
        assert len(work) == -(-len(sizes) // slots)
        run(device, *work)
        for theirs_param, g in zip(theirs_params, grads):
            theirs_param.grad = torch.from_numpy(g)
        theirs.step()
    for i, (param, theirs_param) in enumerate(zip(params, theirs_params)):
        assert_close(device.read(param), theirs_param.detach().numpy(), f"parameter {i} ({sizes[i]} values)")
    assert {d["TEXEL_READS"] for d in compiled if d} == {int(texel_reads)}


@pytest.mark.parametrize("n", SIZES)
def test_relu_forward_backward(device, rng, n):
    x = values(rng, n, np.array([2.5, -1.5, 0.75], np.float32))
    x[rng.random(n) < 0.05] = 0.0                       # derivative at 0 is 0
    dy = values(rng, n, np.array([-3.0, 5.0, -7.0], np.float32))
    xb, dyb = staged(device, "x", x), staged(device, "dy", dy)
    y = staged(device, "y", np.full(n, np.nan, np.float32))
    dx = staged(device, "dx", np.full(n, np.nan, np.float32))
    relu = vb.ReLU()
    run(device, elementwise(device, relu.forward_shader, {"x": xb, "y": y}, n))
    run(device, elementwise(device, relu.backward_shader, {"saved": y, "dy": dyb, "dx": dx}, n))
    np.testing.assert_array_equal(device.read(y), np.maximum(x, 0))
    np.testing.assert_array_equal(device.read(dx), np.where(x > 0, dy, 0))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("texel_reads", ["0", "1"])   # forward's inputs as storage quads (a GPU's) or texels
def test_add_of_three_forward_backward(device, rng, monkeypatch, n, texel_reads):
    """Add's forward (the third input added in place into y) and its gradient copies."""
    monkeypatch.setenv("VKBACKPROP_TEXEL_READS", texel_reads)
    xs = [values(rng, n, np.array(tail, np.float32)) for tail in ([1.0, 2.0, 4.0], [8.0, 16.0, 32.0], [64.0, 128.0, 256.0])]
    dy = values(rng, n)
    io = LayerIO(device, 1, xs=[staged(device, f"x{i}", x) for i, x in enumerate(xs)],
                 y=staged(device, "y", np.full(n, np.nan, np.float32)), params={}, dy=staged(device, "dy", dy),
                 dxs=[staged(device, f"dx{i}", np.full(n, np.nan, np.float32)) for i in range(3)], grads={},
                 in_shapes=[(n,)] * 3, out_shape=(n,))
    run(device, *vb.Add().forward(io), *vb.Add().backward(io))
    np.testing.assert_array_equal(device.read(io.y), (xs[0] + xs[1]) + xs[2])   # once per element, tail included
    for dx in io.dxs:
        np.testing.assert_array_equal(device.read(dx), dy)


@pytest.mark.parametrize("n", SIZES)
def test_accumulate_and_fill(device, rng, n):
    part, total = values(rng, n), values(rng, n, np.array([1.0, 2.0, 4.0], np.float32))
    total_b = staged(device, "total", total)
    run(device, elementwise(device, "graph/accumulate.comp", {"part": staged(device, "part", part), "total": total_b}, n))
    np.testing.assert_array_equal(device.read(total_b), total + part)   # once per element, tail included

    values_b = staged(device, "values", np.full(n, np.nan, np.float32))
    run(device, fill(device, values_b, -2.5))
    np.testing.assert_array_equal(device.read(values_b), np.full(n, -2.5, np.float32))


@pytest.mark.parametrize("grid", ["one workgroup", "folded into y", "too many"])
def test_any_grid_covers_every_element_once(device, rng, grid):
    """The shaders loop over quads with the grid's size as stride (flat_index folds y into x), so
    the grid only sizes the work: each element is still added exactly once, the tail by one invocation."""
    n = 4 * 64 * 7 + 3
    program = device.program("graph/accumulate.comp")
    local = program.local_size[0]
    groups = {"one workgroup": (1, 1, 1),
              "folded into y": device.grid_1d(5 * local, local, max_x=2),   # (2, 3): y > 1
              "too many": device.grid_1d(n, local)}[grid]
    part, total = values(rng, n), values(rng, n)
    part_b, total_b = staged(device, "part", part), staged(device, "total", total)
    run(device, device.dispatch(program, {"part": part_b, "total": total_b, "part4": part_b, "total4": total_b},
                                groups, {"NUMEL": n}))
    np.testing.assert_array_equal(device.read(total_b), total + part)


def test_a_buffer_under_two_names_is_one_read_or_write_for_hazards(device):
    n = 10
    x, y, dy, dx = (device.buffer(name, (n,)) for name in ("x", "y", "dy", "dx"))
    forward = elementwise(device, "relu/forward.comp", {"x": x, "y": y}, n)
    backward = elementwise(device, "relu/backward.comp", {"saved": y, "dy": dy, "dx": dx}, n)
    assert (forward.reads, forward.writes) == ({x}, {y})
    assert (backward.reads, backward.writes) == ({y, dy}, {dx})
    add = elementwise(device, "graph/accumulate.comp", {"part": dx, "total": x}, n)
    assert (add.reads, add.writes) == ({dx, x}, {x})

    rec = Recorder(device)
    for d in (forward, backward, add):
        rec.dispatch(d)
    # y written then read: a barrier; dx written then read: a barrier. x read then written: the
    # barrier on y already ordered that read (schedule.py).
    assert [(kind, [b.name for b in what]) for kind, what in rec.log if kind == "barrier"] == [
        ("barrier", ["y"]), ("barrier", ["dx"])]
