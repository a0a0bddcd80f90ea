"""RNN, LSTM and GRU: the float64 reference vs central finite differences and vs PyTorch; the GPU vs
the reference and PyTorch autograd (same weights) for outputs, final states, input, initial-state
and weight gradients on odd sizes, with initial states, lengths (pack_padded_sequence semantics),
stacked layers and random upstream gradients; a 256-step sequence; Narrow and split; bad
arguments and lengths; exact barriers in a Trainer step; a sequence task trained end to end."""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vkbackprop as vb
from vkbackprop.gradcheck import run_layer
from vkbackprop.layers.recurrent import GRU, LSTM, RNN, Narrow
from vkbackprop.reference import recurrent as ref
from vkbackprop.reference.layers import numerical_gradient
from oracles import assert_close, check_barriers_exact, no_gpu_work

SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TORCH = {RNN: torch.nn.RNN, LSTM: torch.nn.LSTM, GRU: torch.nn.GRU}


def make(cls, input_size, hidden, num_layers=1, relu=False, **kw):
    return cls(input_size, hidden, num_layers, nonlinearity="relu", **kw) if relu else cls(input_size, hidden, num_layers, **kw)


def torch_run(layer, params, x, h0=None, c0=None, lengths=None, dout=None, dh_n=None, dc_n=None):
    """PyTorch autograd (float64, batch_first) with the same weights: outputs, final states, and
    gradients of sum(dout * out) + sum(dh_n * h_n) + sum(dc_n * c_n)."""
    kw = {"nonlinearity": layer.nonlinearity} if isinstance(layer, RNN) else {}
    module = TORCH[type(layer)](layer.input_size, layer.hidden_size, layer.num_layers, bias=layer.bias,
                                batch_first=True, **kw).double()
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.tensor(params[name], dtype=torch.float64))
    leaf = lambda a: None if a is None else torch.tensor(np.asarray(a, np.float64), requires_grad=True)
    tx, th0, tc0 = leaf(x), leaf(h0), leaf(c0)
    steps = x.shape[1]
    hx = None if th0 is None else ((th0, tc0) if isinstance(layer, LSTM) else th0)
    inp = tx if lengths is None else torch.nn.utils.rnn.pack_padded_sequence(
        tx, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
    out, state = module(inp, hx)
    if lengths is not None:
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=steps)
    h_n, c_n = state if isinstance(layer, LSTM) else (state, None)
    loss = (out * torch.tensor(dout)).sum() + (h_n * torch.tensor(dh_n)).sum()
    if c_n is not None:
        loss = loss + (c_n * torch.tensor(dc_n)).sum()
    loss.backward()
    grad = lambda t: None if t is None else t.grad.numpy()
    return dict(out=out.detach().numpy(), h_n=h_n.detach().numpy(), c_n=None if c_n is None else c_n.detach().numpy(),
                dx=grad(tx), dh0=grad(th0), dc0=grad(tc0),
                grads={n: p.grad.numpy() for n, p in module.named_parameters()})


def assert_sum_close(got, want, k: int, what: str):
    """fp32 vs float64: the error of a k-term sum grows like sqrt(k) times the magnitude of its terms."""
    assert_close(got, want, 4e-6 * math.sqrt(k + 1) * max(1.0, float(np.abs(want).max())), what)


# --- the reference ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"])
def test_reference_matches_finite_differences(rng, mode):
    batch, steps, features, hidden, layers = 3, 4, 2, 3, 2
    rows = ref.gate_count(mode) * hidden
    params = {}
    for layer in range(layers):
        width = features if layer == 0 else hidden
        params.update({f"weight_ih_l{layer}": rng.standard_normal((rows, width)),
                       f"weight_hh_l{layer}": rng.standard_normal((rows, hidden)),
                       f"bias_ih_l{layer}": rng.standard_normal(rows), f"bias_hh_l{layer}": rng.standard_normal(rows)})
    x = rng.standard_normal((batch, steps, features))
    h0, c0 = rng.standard_normal((layers, batch, hidden)), rng.standard_normal((layers, batch, hidden))
    c0 = c0 if mode == "LSTM" else None
    lengths = np.array([4, 1, 3])
    dout, dh_n, dc_n = (rng.standard_normal(s) for s in ((batch, steps, hidden), h0.shape, h0.shape))
    dc_n = dc_n if mode == "LSTM" else None

    def loss(x=x, h0=h0, c0=c0, **p):
        out, h_n, c_n = ref.recurrent_forward(mode, x, dict(params, **p), layers, h0, c0, lengths)
        return float(np.sum(dout * out) + np.sum(dh_n * h_n) + (np.sum(dc_n * c_n) if c_n is not None else 0))

    dx, grads, dh0, dc0 = ref.recurrent_backward(mode, x, params, dout, layers, dh_n, dc_n, h0, c0, lengths)
    check = lambda got, f, v: np.testing.assert_allclose(got, numerical_gradient(f, v.copy()), rtol=1e-6, atol=1e-7)
    check(dx, lambda v: loss(x=v), x)
    check(dh0, lambda v: loss(h0=v), h0)
    if c0 is not None:
        check(dc0, lambda v: loss(c0=v), c0)
    for name in ("weight_ih_l0", "weight_hh_l1", "bias_hh_l0", "bias_ih_l1"):
        check(grads[name], lambda v: loss(**{name: v}), params[name])


# --- the GPU against the reference and PyTorch --------------------------------------------------


@st.composite
def configurations(draw):
    cls = draw(st.sampled_from([RNN, LSTM, GRU]))
    layer = make(cls, draw(st.sampled_from([1, 3])), draw(st.sampled_from([1, 7, 33])), draw(st.integers(1, 2)),
                 relu=cls is RNN and draw(st.booleans()), bias=draw(st.booleans()), return_state=draw(st.booleans()))
    return (layer, draw(st.sampled_from([1, 3])), draw(st.sampled_from([1, 5, 64])),
            draw(st.booleans()), draw(st.booleans()))


def check_gpu(device, rng, layer, batch, steps, initial_state: bool, with_lengths: bool):
    """One call of the layer on the GPU vs the float64 reference and PyTorch: outputs, final states,
    dL/dx, dL/d(initial state) and every parameter's gradient. Returns the GPU's (y, dxs, grads)."""
    L, H, F = layer.num_layers, layer.hidden_size, layer.input_size
    x_in = vb.Input((steps, F))
    state_in = [vb.Input((L, H)) for _ in layer.state_names] if initial_state else []
    hx = None if not initial_state else (tuple(state_in) if isinstance(layer, LSTM) else state_in[0])
    layer(x_in, hx, lengths=vb.Input(1) if with_lengths else None)    # fixes the call's inputs
    # Weights of scale 0.5 / sqrt(H) (torch's init is U(+-1/sqrt(H))): with 0.5 at hidden 33 the tanh
    # recurrence is chaotic (W_hh's spectral radius ~2.9) and fp32 rounding grows exponentially over
    # 64 steps, so no fp32 implementation would match float64 (hypothesis found RNN(1, 33), T 64).
    scale = 0.5 / math.sqrt(H)
    params = {n: (scale * rng.standard_normal(v.shape)).astype(np.float32) for n, v in layer.parameters().items()}
    x = rng.standard_normal((batch, steps, F)).astype(np.float32)
    states = [rng.standard_normal((batch, L, H)).astype(np.float32) for _ in state_in]
    lengths = rng.integers(1, steps + 1, batch) if with_lengths else None
    rows = steps + layer._state_rows
    dy = rng.standard_normal((batch, rows, H)).astype(np.float32)
    xs = [x.reshape(batch, -1)] + [s.reshape(batch, -1) for s in states]
    xs += [lengths.reshape(batch, 1).astype(np.float32)] if with_lengths else []
    need = [True] * (1 + len(states)) + ([False] if with_lengths else [])
    shapes = [(steps, F)] + [(L, H)] * len(states) + ([(1,)] if with_lengths else [])
    y, dxs, grads = run_layer(device, layer, xs, params, dy.reshape(batch, -1), need_dx=need, shapes=shapes)
    y = y.reshape(batch, rows, H)

    per_layer = lambda a: None if a is None else np.swapaxes(a, 0, 1)      # (B, L, H) <-> (L, B, H)
    finals = [per_layer(dy[:, steps + k * L:steps + (k + 1) * L]) if layer.return_state else np.zeros((L, batch, H))
              for k in range(2)]
    h0, c0 = (per_layer(s) for s in (states + [None, None])[:2])
    c0 = c0 if isinstance(layer, LSTM) else None
    want = torch_run(layer, params, x, h0, c0, None if lengths is None else lengths.tolist(), dy[:, :steps],
                     finals[0], finals[1] if isinstance(layer, LSTM) else None)
    out, h_n, c_n = ref.recurrent_forward(layer.mode, x, params, L, h0, c0, lengths, layer.bias)
    dx, rgrads, dh0, dc0 = ref.recurrent_backward(layer.mode, x, params, dy[:, :steps], L, finals[0],
                                                  finals[1] if isinstance(layer, LSTM) else None,
                                                  h0, c0, lengths, layer.bias)
    what = f"{layer!r} batch {batch} steps {steps} h0 {initial_state} lengths {lengths}"
    k_forward = steps * (F + H)
    k_backward = steps * layer.cell.gates * H
    for name, oracle in (("reference", dict(out=out, h_n=h_n, c_n=c_n, dx=dx, dh0=dh0, dc0=dc0, grads=rgrads)),
                         ("torch", want)):
        assert_sum_close(y[:, :steps], oracle["out"], k_forward, f"{what}: output vs {name}")
        if layer.return_state:
            assert_sum_close(per_layer(y[:, steps:steps + L]), oracle["h_n"], k_forward, f"{what}: h_n vs {name}")
            if isinstance(layer, LSTM):
                assert_sum_close(per_layer(y[:, steps + L:]), oracle["c_n"], k_forward, f"{what}: c_n vs {name}")
        assert_sum_close(dxs[0].reshape(x.shape), oracle["dx"], k_backward, f"{what}: dx vs {name}")
        for k, n in enumerate(("dh0", "dc0")[:len(states)]):
            assert_sum_close(per_layer(dxs[1 + k].reshape(batch, L, H)), oracle[n], k_backward, f"{what}: {n} vs {name}")
        assert set(grads) == set(oracle["grads"]) == set(params)
        for n, g in oracle["grads"].items():
            assert_sum_close(grads[n], g, batch * k_backward, f"{what}: d{n} vs {name}")
    if with_lengths:
        assert dxs[-1] is None
    return y, dxs, grads


@SETTINGS
@given(config=configurations(), seed=st.integers(0, 2**31))
def test_gpu_matches_reference_and_torch(device, config, seed):
    layer, batch, steps, initial_state, with_lengths = config
    check_gpu(device, np.random.default_rng(seed), layer, batch, steps, initial_state, with_lengths)


@pytest.mark.parametrize("make_layer", [
    lambda: RNN(3, 8, 2), lambda: RNN(2, 4, nonlinearity="relu", bias=False, return_state=True),
    lambda: LSTM(3, 8, 2, return_state=True), lambda: LSTM(2, 4, bias=False),
    lambda: GRU(3, 8, 2, return_state=True), lambda: GRU(2, 12, bias=False),
], ids=lambda make: repr(make()))
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("texel_reads", ["0", "1"])   # W_hh, W_hh^T and the gate gradients as texels or not
def test_hidden_sizes_in_quads(device, rng, monkeypatch, make_layer, with_lengths, texel_reads):
    """Hidden sizes that are multiples of 4, where the step shaders read W_hh, h and the gate
    gradients as quads (backward W_hh^T, transposed once per pass), with initial states, one and two
    layers, and samples shorter than the sequence."""
    monkeypatch.setenv("VKBACKPROP_TEXEL_READS", texel_reads)
    check_gpu(device, rng, make_layer(), 3, 5, True, with_lengths)


@pytest.mark.parametrize("cls, hidden", [(RNN, 8), (LSTM, 8), (GRU, 12), (LSTM, 4)])
def test_samples_per_invocation(device, monkeypatch, cls, hidden):
    """The step shaders computing a hidden unit of 1, 2, 4 or 8 samples per invocation (a GPU's 1,
    a CPU device's 4, where the hidden size is a multiple of 4): each against the reference and
    PyTorch, and bit-identical to one another (each sample's sums run in the same order). Batch 6
    leaves a partial block at 4 and 8, with lengths and initial states."""
    results = []
    for samples in (1, 2, 4, 8):
        monkeypatch.setattr(type(device), "samples_per_step_invocation", property(lambda self, n=samples: n))
        layer = make(cls, 3, hidden, 2, return_state=True)
        results.append(check_gpu(device, np.random.default_rng(5), layer, 6, 5, True, True))
    (y, dxs, grads), others = results[0], results[1:]
    for samples, (y_n, dxs_n, grads_n) in zip((2, 4, 8), others):
        np.testing.assert_array_equal(y_n, y, err_msg=f"output, {samples} samples vs 1")
        for k, (a, b) in enumerate(zip(dxs_n, dxs)):   # the lengths' gradient is None
            if b is not None:
                np.testing.assert_array_equal(a, b, err_msg=f"input {k}'s gradient, {samples} samples vs 1")
        for n in grads:
            np.testing.assert_array_equal(grads_n[n], grads[n], err_msg=f"d{n}, {samples} samples vs 1")


def test_samples_per_invocation_follow_the_loop_limit(device, rng, monkeypatch):
    """A block of samples multiplies an invocation's loop iterations (lavapipe counts all of them
    against one limit): where the device's choice would pass the limit the step shaders take one
    sample each, and a hidden size too large even for one is refused before any GPU work."""
    monkeypatch.setattr(type(device), "samples_per_step_invocation", property(lambda self: 4))
    layer = LSTM(3, 36)   # its step shaders' loops the longest of the layer's
    one, four = max(layer._step_loops(1)), max(layer._step_loops(4))
    assert four > one
    for limit, samples in ((None, 4), (four, 4), (four - 1, 1), (one, 1)):
        monkeypatch.setattr(type(device), "loop_limit", property(lambda self, n=limit: n))
        assert layer._samples(device) == samples, f"loop limit {limit}"
    assert LSTM(3, 35)._samples(device) == 1   # no quads: one sample each
    monkeypatch.setattr(type(device), "loop_limit", property(lambda self: four - 1))
    check_gpu(device, rng, LSTM(3, 36), 6, 5, True, True)    # one sample each (every other shader fits)
    monkeypatch.setattr(type(device), "loop_limit", property(lambda self: one - 1))
    with pytest.raises(ValueError, match="lstm/forward_step.comp .* loop iterations per shader invocation"):
        check_gpu(device, rng, LSTM(3, 36), 6, 5, True, True)


@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_every_input_with_lengths(device, rng, cls):
    """Initial states, lengths and return_state together, two layers, all odd sizes."""
    check_gpu(device, rng, make(cls, 3, 7, 2, return_state=True), 3, 5, True, True)


def test_256_steps(device, rng):
    check_gpu(device, rng, LSTM(2, 8, return_state=True), 2, 256, True, True)


def test_gradcheck_registry_and_model(device, rng):
    """`vkbackprop gradcheck` knows the layers, and a whole model (Embedding -> GRU with lengths ->
    the final state -> Linear) agrees with the references through a real Trainer step."""
    for cls in (RNN, LSTM, GRU):
        vb.gradcheck(cls(2, 3, return_state=True), batch=2, device=device)
    tokens, lengths = vb.Input(6), vb.Input(1)
    gru = GRU(4, 5, return_state=True)
    _, h_n = gru.split(gru(vb.Embedding(7, 4)(tokens), lengths=lengths))
    model = vb.Model([tokens, lengths], vb.Linear(5, 2)(vb.Flatten()(h_n)))
    xs = [rng.integers(0, 7, (3, 6)).astype(np.float32), np.array([[6], [1], [4]], np.float32)]
    vb.gradcheck(model, xs, device=device)


# --- Narrow and split -----------------------------------------------------------------------------


def test_split_gives_torch_return_values():
    lstm = LSTM(3, 4, num_layers=2, return_state=True)
    y = lstm(vb.Input((5, 3)))
    assert y.shape == (5 + 4, 4)
    out, (h_n, c_n) = lstm.split(y)
    assert (out.shape, h_n.shape, c_n.shape) == ((5, 4), (2, 4), (2, 4))
    assert [v.call.layer.start for v in (out, h_n, c_n)] == [0, 5, 7]
    gru = GRU(3, 4, return_state=True)
    out, h_n = gru.split(gru(vb.Input((5, 3))))
    assert h_n.shape == (1, 4)
    with pytest.raises(ValueError, match="return_state=True"):
        RNN(3, 4).split(y)


def test_narrow_on_the_gpu(device, rng):
    x = rng.standard_normal((3, 2 * 5 * 4)).astype(np.float32)
    dy = rng.standard_normal((3, 2 * 2 * 4)).astype(np.float32)
    y, dx, _ = run_layer(device, Narrow(2, 3, 2), x, {}, dy, shapes=[(2, 5, 4)])
    np.testing.assert_array_equal(y.reshape(3, 2, 2, 4), x.reshape(3, 2, 5, 4)[:, :, 3:5])
    want = np.zeros((3, 2, 5, 4), np.float32)
    want[:, :, 3:5] = dy.reshape(3, 2, 2, 4)
    np.testing.assert_array_equal(dx.reshape(want.shape), want)


# --- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize("make_layer, words", [
    (lambda: LSTM(0, 4), ["input_size", "positive int", "0"]),
    (lambda: GRU(3, 2.5), ["hidden_size", "2.5"]),
    (lambda: RNN(3, 4, num_layers=True), ["num_layers", "True"]),
    (lambda: RNN(3, 4, nonlinearity="sigmoid"), ["nonlinearity", "'sigmoid'"]),
    (lambda: LSTM(3, 4, dropout=0.5), ["dropout", "not supported", "vb.Dropout"]),
    (lambda: GRU(3, 4, bidirectional=True), ["bidirectional"]),
    (lambda: LSTM(3, 4, batch_first=1), ["batch_first", "bool"]),
    (lambda: Narrow(0, 0, 1), ["dim", ">= 1"]),
])
def test_bad_constructor_arguments(make_layer, words):
    with no_gpu_work(), pytest.raises(ValueError) as error:
        make_layer()
    assert all(w in str(error.value) for w in words), str(error.value)


def test_bad_calls():
    with no_gpu_work():
        lstm = LSTM(3, 4, num_layers=2)
        with pytest.raises(ValueError, match=r"\(steps, 3\) input"):
            lstm(vb.Input(6))
        with pytest.raises(ValueError, match="h0 and c0 as a tuple"):
            lstm(vb.Input((5, 3)), vb.Input((2, 4)))
        with pytest.raises(ValueError, match=r"h0 must be \(2, 4\)"):
            LSTM(3, 4, num_layers=2)(vb.Input((5, 3)), (vb.Input((1, 4)), vb.Input((2, 4))))
        with pytest.raises(ValueError, match="lengths must be one value"):
            GRU(3, 4)(vb.Input((5, 3)), lengths=vb.Input(2))
        gru = GRU(3, 4)
        gru(vb.Input((5, 3)))
        with pytest.raises(ValueError, match="same inputs"):
            gru(vb.Input((5, 3)), lengths=vb.Input(1))
        with pytest.raises(ValueError, match="does not fit"):
            Narrow(1, 4, 2)(vb.Input((5, 3)))


@pytest.mark.parametrize("bad", [0.0, 6.0, 2.5, -1.0, 1e9])
def test_invalid_lengths_are_refused_before_gpu_work(device, monkeypatch, bad):
    """A length outside [1, T] or not an integer: a ValueError on the host naming it (and, should
    such data reach the GPU another way, NaN outputs that make the step raise)."""
    x, lengths = vb.Input((5, 2)), vb.Input(1)
    rnn = RNN(2, 3, return_state=True)
    model = vb.Model([x, lengths], vb.Linear(3 * 6, 1)(vb.Flatten()(rnn(x, lengths=lengths))))
    trainer = vb.Trainer(model, vb.MSELoss(), vb.SGD(lr=0.1), 2, device=device)
    xs = [np.ones((2, 10), np.float32), np.array([[5], [bad]], np.float32)]
    before = model.state_dict()
    with no_gpu_work(), pytest.raises(ValueError, match=r"x\[1\] \(.*\): RNN.*lengths must be integers in \[1, 5\]"):
        trainer.step(xs, np.zeros((2, 1), np.float32))
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
    # Past the host check (the shader alone): NaN outputs, so the Trainer raises and writes nothing.
    monkeypatch.setattr(type(rnn), "check_input_values", lambda *a: None)
    with pytest.raises(FloatingPointError):
        trainer.step(xs, np.zeros((2, 1), np.float32))
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())


# --- in a model ----------------------------------------------------------------------------------


def test_training_step_barriers_are_exact(device):
    x = vb.Input((6, 3))
    lstm = LSTM(3, 4, num_layers=2, return_state=True)
    out, (h_n, c_n) = lstm.split(lstm(x))
    model = vb.Model(x, vb.Linear(8, 2)(vb.Flatten()(vb.Add()(h_n, c_n))))
    trainer = vb.Trainer(model, vb.CrossEntropyLoss(), vb.SGD(lr=0.1), 3, device=device)
    check_barriers_exact(trainer.plan.train.log)


def bigram_task(rng, count, steps, vocabulary=5):
    """Token sequences of random lengths (padding token 0 after the end); label 1 iff the sequence
    holds the bigram (1, 2) within its length. About half the samples of each class."""
    lengths = rng.integers(3, steps + 1, count)
    tokens = rng.integers(1, vocabulary, (count, steps))
    tokens[np.arange(steps)[None, :] >= lengths[:, None]] = 0
    has = ((tokens[:, :-1] == 1) & (tokens[:, 1:] == 2)).any(1)
    flip = rng.random(count) < 0.5     # plant the bigram in about half of those without it
    for i in np.flatnonzero(~has & flip):
        t = rng.integers(0, lengths[i] - 1)
        tokens[i, t:t + 2] = (1, 2)
    has = ((tokens[:, :-1] == 1) & (tokens[:, 1:] == 2)).any(1)
    return tokens.astype(np.float32), lengths.reshape(-1, 1).astype(np.float32), has.astype(np.int64)


def test_sequence_classification_trains_end_to_end(device):
    """Embedding -> LSTM (lengths) -> its final state -> Linear, trained by the real Trainer: the
    loss falls far below chance (ln 2) and held-out accuracy is high."""
    vb.manual_seed(0)
    rng = np.random.default_rng(0)
    steps, batch = 10, 32
    tokens, lengths = vb.Input(steps), vb.Input(1)
    lstm = LSTM(8, 16, return_state=True)
    _, (h_n, _) = lstm.split(lstm(vb.Embedding(5, 8)(tokens), lengths=lengths))
    model = vb.Model([tokens, lengths], vb.Linear(16, 2)(vb.Flatten()(h_n)))
    trainer = vb.Trainer(model, vb.CrossEntropyLoss(), vb.Adam(lr=0.02), batch, device=device)
    losses = []
    for _ in range(300):
        x, n, y = bigram_task(rng, batch, steps)
        losses.append(trainer.step([x, n], y))
    final = float(np.mean(losses[-20:]))
    assert final < 0.25 * math.log(2), f"loss {final:.3f} vs chance {math.log(2):.3f}"
    x, n, y = bigram_task(rng, 256, steps)
    accuracy = float((np.argmax(trainer.predict([x, n]), 1) == y).mean())
    assert accuracy >= 0.9, accuracy
