"""Embedding: the GPU vs the float64 reference and PyTorch (forward, the weight gradient gathered
deterministically, padding_idx); repeated tokens; bitwise reproducible gradients; bad tokens make
the step raise; bad arguments rejected before any GPU work."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vkbackprop as vb
from vkbackprop.gradcheck import run_layer
from vkbackprop.layers.embedding import Embedding
from vkbackprop.reference import recurrent as ref
from oracles import assert_close, no_gpu_work

SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def check_gpu(device, rng, layer, batch, shape, tokens=None):
    """Forward and weight gradient vs the reference and torch.nn.functional.embedding (float64)."""
    weight = rng.standard_normal((layer.num_embeddings, layer.embedding_dim)).astype(np.float32)
    if tokens is None:
        tokens = rng.integers(0, layer.num_embeddings, (batch,) + shape)
    dy = rng.standard_normal(tokens.shape + (layer.embedding_dim,)).astype(np.float32)
    y, dx, grads = run_layer(device, layer, tokens.reshape(batch, -1).astype(np.float32), {"weight": weight},
                             dy.reshape(batch, -1), shapes=[shape])
    tw = torch.tensor(weight, dtype=torch.float64, requires_grad=True)
    ty = torch.nn.functional.embedding(torch.tensor(tokens), tw, padding_idx=layer.padding_idx)
    ty.backward(torch.tensor(dy, dtype=torch.float64))
    want_dw = ref.embedding_backward(tokens, dy, layer.num_embeddings, layer.padding_idx)
    np.testing.assert_array_equal(y.reshape(dy.shape), weight[tokens])
    np.testing.assert_array_equal(ty.detach().numpy(), ref.embedding_forward(tokens, weight))
    positions = tokens.size
    for name, want in (("reference", want_dw), ("torch", tw.grad.numpy())):
        assert_close(grads["weight"], want, 4e-6 * np.sqrt(positions) * max(1.0, np.abs(want).max()),
                     f"{layer!r} dweight vs {name}")
    np.testing.assert_array_equal(dx, np.zeros_like(dx))      # tokens get no gradient
    return grads["weight"]


@SETTINGS
@given(vocabulary=st.sampled_from([1, 2, 7, 33]), dim=st.sampled_from([1, 5, 16, 17, 40]), batch=st.integers(1, 3),
       shape=st.sampled_from([(1,), (5,), (3, 4)]), padding=st.booleans(), seed=st.integers(0, 2**31))
def test_gpu_matches_reference_and_torch(device, vocabulary, dim, batch, shape, padding, seed):
    rng = np.random.default_rng(seed)
    layer = Embedding(vocabulary, dim, padding_idx=int(rng.integers(vocabulary)) if padding else None)
    check_gpu(device, rng, layer, batch, shape)


def test_repeated_tokens_sum_and_are_bitwise_reproducible(device, rng):
    """Every position holds one of two tokens: long sums per row, the same bits every run."""
    layer = Embedding(4, 3)
    tokens = rng.integers(1, 3, (8, 64))
    first = check_gpu(device, np.random.default_rng(1), layer, 8, (64,), tokens)
    again = check_gpu(device, np.random.default_rng(1), layer, 8, (64,), tokens)
    assert first.tobytes() == again.tobytes()
    assert not first[[0, 3]].any() and first[[1, 2]].all()


@pytest.mark.parametrize("padding", [None, 2])
def test_gradient_by_chains_and_by_rows_gives_the_same_bits(device, rng, monkeypatch, dispatches, padding):
    """Tokens 0-4 of 7 (rows 5 and 6 get none): the gradient by chains (positions linked to the
    next holding their token, each chain walked once) and by rows (each row gathers over every
    position) add the same terms in the same order."""
    layer = Embedding(7, 20, padding_idx=padding)
    tokens = rng.integers(0, 5, (4, 9))
    results = {}
    for chains in (True, False):
        monkeypatch.setattr(Embedding, "_chains_cost_less", lambda self, positions, groups: chains)
        dispatches.clear()
        results[chains] = check_gpu(device, np.random.default_rng(1), layer, 4, (9,), tokens)
        assert ("embedding/backward_chains.comp" in {d.program.path for d in dispatches}) == chains
    assert results[True].tobytes() == results[False].tobytes()
    assert not results[True][[5, 6]].any()


@pytest.mark.parametrize("vocabulary, positions, chains", [(1000, 512, True), (1000, 4000, True), (10, 512, False)])
def test_the_cheaper_gradient_form_is_chosen(vocabulary, positions, chains):
    """Linking costs positions^2 token reads, gathering by rows vocabulary x feature groups x
    positions (64 features: 4 groups)."""
    assert Embedding(vocabulary, 64)._chains_cost_less(positions, 4) == chains


def test_parameters_like_torch():
    layer = Embedding(6, 3, padding_idx=-2)
    assert layer.padding_idx == 4 and repr(layer) == "Embedding(6, 3, padding_idx=4)"
    weight = layer.parameters()["weight"]
    assert weight.shape == (6, 3) and weight.dtype == np.float32 and not weight[4].any()
    assert layer.output_shape((2, 5)) == (2, 5, 3)


@pytest.mark.parametrize("bad", [3.0, -1.0, 0.5, 1e9])
def test_bad_tokens_are_refused_before_gpu_work(device, monkeypatch, bad):
    """A token that is not an integer in [0, num_embeddings): a ValueError on the host naming it;
    on the GPU alone (past the check) it gives NaN rows, so the step raises and writes nothing."""
    model = vb.Sequential(Embedding(3, 2), vb.Flatten(), vb.Linear(8, 1), input_shape=4)
    trainer = vb.Trainer(model, vb.MSELoss(), vb.SGD(lr=0.1), 2, device=device)
    tokens = np.array([[0, 1, 2, 1], [2, bad, 0, 0]], np.float32)
    before = model.state_dict()
    for call in (lambda: trainer.step(tokens, np.zeros((2, 1), np.float32)), lambda: trainer.predict(tokens)):
        with no_gpu_work(), pytest.raises(ValueError, match=r"^x: Embedding\(3, 2\): tokens must be integers in \[0, 2\]"):
            call()
    monkeypatch.setattr(Embedding, "check_input_values", lambda *a: None)
    with pytest.raises(FloatingPointError):
        trainer.step(tokens, np.zeros((2, 1), np.float32))
    assert np.isnan(trainer.predict(tokens)[1]).all() and np.isfinite(trainer.predict(tokens)[0]).all()
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("args, kwargs, words", [
    ((0, 3), {}, ["num_embeddings", "positive int", "0"]),
    ((3, 1.5), {}, ["embedding_dim", "1.5"]),
    ((3, 2), dict(padding_idx=3), ["padding_idx", "[-3, 3)", "3"]),
    ((3, 2), dict(padding_idx=True), ["padding_idx", "True"]),
])
def test_bad_constructor_arguments(args, kwargs, words):
    with no_gpu_work(), pytest.raises(ValueError) as error:
        Embedding(*args, **kwargs)
    assert all(w in str(error.value) for w in words), str(error.value)
