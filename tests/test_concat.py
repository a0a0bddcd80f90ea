"""Concat along the features: the GPU against np.concatenate / slicing on drawn widths, and training
steps through graphs (a value concatenated with itself and also feeding another layer, an input that
needs no gradient, one Concat object called twice) against PyTorch float64 autograd (torch.cat)."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vkbackprop as vb
from vkbackprop.layers.base import LayerIO
from vkbackprop.schedule import Recorder
from oracles import check_barriers_exact, check_step, lin

F = torch.nn.functional
WIDTHS = st.sampled_from([1, 2, 3, 5, 7, 13, 31, 64, 65, 97, 257])
SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def run_concat(device, layer, xs, dy, need):
    """Forward then backward of `layer` alone; need[k] False leaves input k without a gradient.
    Returns (y, [dx_k or None])."""
    batch = len(xs[0])
    x_bufs = [device.buffer(f"x{k}", x.shape, staged=True) for k, x in enumerate(xs)]
    dx_bufs = [device.buffer(f"dx{k}", x.shape, staged=True) if n else None for k, (x, n) in enumerate(zip(xs, need))]
    y = device.buffer("y", dy.shape, staged=True)
    dy_buf = device.buffer("dy", dy.shape, staged=True)
    for buf, x in zip(x_bufs, xs):
        buf.host_view()[...] = x
    dy_buf.host_view()[...] = dy
    io = LayerIO(device, batch, x_bufs, y, dy=dy_buf, dxs=list(dx_bufs))
    work = layer.forward(io) + layer.backward(io)
    assert len(work) == len(xs) + sum(need)    # one dispatch per input and per needed gradient
    rec = Recorder(device)
    rec.upload(x_bufs + [dy_buf])
    for d in work:
        rec.dispatch(d)
    rec.download([y] + [b for b in dx_bufs if b is not None])
    rec.sequence.eval()
    check_barriers_exact(rec.log)
    return y.host_view().copy(), [b.host_view().copy() if b is not None else None for b in dx_bufs]


@SETTINGS
@given(batch=st.sampled_from([1, 2, 3, 7, 64, 97]), widths=st.lists(WIDTHS, min_size=2, max_size=4),
       dim=st.sampled_from([-1, 1]), data=st.data())
def test_concat_matches_numpy(device, batch, widths, dim, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31), label="seed"))
    need = data.draw(st.lists(st.booleans(), min_size=len(widths), max_size=len(widths)), label="need")
    layer = vb.Concat(dim)
    assert layer.out_features(*widths) == sum(widths)
    xs = [rng.standard_normal((batch, w)).astype(np.float32) for w in widths]
    dy = rng.standard_normal((batch, sum(widths))).astype(np.float32)
    y, dxs = run_concat(device, layer, xs, dy, need)
    np.testing.assert_array_equal(y, np.concatenate(xs, axis=1))     # copies: exact
    bounds = np.cumsum([0] + widths)
    for k, dx in enumerate(dxs):
        if need[k]:
            np.testing.assert_array_equal(dx, dy[:, bounds[k]:bounds[k + 1]])
        else:
            assert dx is None


def test_same_buffer_twice(device, rng):
    """Concat(h, h): both slices of y come from one buffer; each dx is its own slice of dy."""
    x = rng.standard_normal((5, 3)).astype(np.float32)
    dy = rng.standard_normal((5, 6)).astype(np.float32)
    y, (d0, d1) = run_concat(device, vb.Concat(), [x, x], dy, [True, True])
    np.testing.assert_array_equal(y, np.concatenate([x, x], axis=1))
    np.testing.assert_array_equal(d0, dy[:, :3])
    np.testing.assert_array_equal(d1, dy[:, 3:])


# --- training steps vs PyTorch ---------------------------------------------------------------
def test_graph_with_a_value_concatenated_twice_and_feeding_another_layer(device, rng):
    vb.manual_seed(21)
    x, z = vb.Input(6, name="x"), vb.Input(2, name="z")
    h = vb.Linear(6, 5)(x)                      # 0; h feeds Tanh and Concat (twice)
    t = vb.Tanh()(h)                            # 1
    c = vb.Concat()(h, h)                       # 2
    g = vb.Linear(6, 3)(x)                      # 3
    d = vb.Concat(dim=1)(t, c, g, z)            # 4: widths 5 + 10 + 3 + 2; z is a model input
    out = vb.Linear(20, 4)(d)                   # 5
    model = vb.Model([x, z], out)
    assert list(model.state_dict()) == ["0.weight", "0.bias", "3.weight", "3.bias", "5.weight", "5.bias"]
    xv = [rng.standard_normal((7, 6)), rng.standard_normal((7, 2))]
    yv = rng.standard_normal((7, 4))

    def reference(p, xt, zt):
        ht = lin(p, "0", xt)
        dt = torch.cat([torch.tanh(ht), torch.cat([ht, ht], dim=-1), lin(p, "3", xt), zt], dim=1)
        return F.mse_loss(lin(p, "5", dt), torch.tensor(yv))
    trainer = check_step(model, vb.MSELoss(), xv, yv, reference, device)
    names = [w.name for k, w in trainer.plan.train.log if k == "dispatch"]
    assert names.count("2:concat/forward") == 2 and names.count("4:concat/forward") == 4
    assert names.count("2:concat/backward") == 2
    assert names.count("4:concat/backward") == 3          # no gradient for the model input z
    # h's gradient: the first contribution writes it, the other two are added by the scheduler.
    assert sum(n.startswith("accumulate 0.output.grad") for n in names) == 2
    np.testing.assert_allclose(trainer.predict([xv[0][:3], xv[1][:3]]),
                               reference_forward(model.state_dict(), xv[0][:3], xv[1][:3]), rtol=1e-4, atol=1e-5)


def reference_forward(s, x, z):
    h = x @ s["0.weight"].T.astype(np.float64) + s["0.bias"]
    d = np.concatenate([np.tanh(h), h, h, x @ s["3.weight"].T.astype(np.float64) + s["3.bias"], z], axis=1)
    return d @ s["5.weight"].T.astype(np.float64) + s["5.bias"]


def test_one_concat_object_called_on_different_widths(device, rng):
    vb.manual_seed(22)
    cat = vb.Concat()
    x = vb.Input(4)
    a = vb.ReLU()(vb.Linear(4, 3)(x))            # 0, 1
    b = cat(a, x)                                 # 2: widths 3 + 4
    out = vb.Linear(10, 2)(cat(b, a))             # 3: the same Concat on widths 7 + 3
    model = vb.Model(x, out)
    assert list(model.state_dict()) == ["0.weight", "0.bias", "3.weight", "3.bias"]
    xv, yv = rng.standard_normal((5, 4)), rng.integers(0, 2, 5)

    def reference(p, xt):
        at = F.relu(lin(p, "0", xt))
        return F.cross_entropy(lin(p, "3", torch.cat([torch.cat([at, xt], -1), at], -1)), torch.tensor(yv))
    check_step(model, vb.CrossEntropyLoss(), xv, yv, reference, device)


@pytest.mark.parametrize("dim", [0, 2, -2, True, 1.0, "1", None])
def test_bad_dim_is_rejected(dim):
    with pytest.raises(ValueError, match="Concat: dim must be -1 or 1"):
        vb.Concat(dim)


def test_too_few_inputs_are_rejected():
    h = vb.Input(3)
    with pytest.raises(ValueError, match=r"Concat\(dim=-1\) cannot take .*Concat takes at least 2 inputs, got 1"):
        vb.Concat()(h)
    assert vb.Concat(1)(h, vb.Input(5)).width == 8 and repr(vb.Concat(1)) == "Concat(dim=1)"
