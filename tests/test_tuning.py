"""GEMM tile autotuning (vkbackprop/tuning.py): every tile of the families is correct, tuning picks
one per shape class and caches it, and a cached choice is used without timing anything."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import vkbackprop as vb
from vkbackprop import reference as ref
from vkbackprop import tuning
from vkbackprop.device import LLVMPIPE_LOOP_LIMIT, Sequence
from vkbackprop.gradcheck import run_layer
from vkbackprop.layers import gemm, gemm_shuffle
from oracles import assert_close
from test_conv import assert_sum_close
from test_recurrent import check_gpu, make


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VKBACKPROP_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(tuning.TUNE_ENV, raising=False)
    monkeypatch.delenv(gemm_shuffle.KERNEL_ENV, raising=False)   # the tests set gemm_shuffle.KERNEL
    return tmp_path / "gemm_tiles.json"


@pytest.fixture
def quick_families(monkeypatch):
    """The families cut to their small tiles (at most 32 vec4 or 64 float accumulators per
    invocation), for tests of how tuning works rather than of every tile (those are below): on
    lavapipe a pipeline compiles at its first dispatch, up to 7 s for the bigger tiles with a cold
    Mesa shader cache."""
    monkeypatch.setattr(gemm_shuffle, "TILES", [t for t in gemm_shuffle.TILES if t["TM"] * t["NC"] <= 32])
    monkeypatch.setattr(gemm, "TILES", [t for t in gemm.PLAIN_TILES if t["TM"] * t["TN"] <= 64])
    assert len(gemm_shuffle.TILES) >= 3 and len(gemm.TILES) >= 3


def _forced(monkeypatch, tile):
    monkeypatch.setattr(tuning, "choose_tile", lambda *args, **kw: dict(tile))


def _check_linear(device, rng, batch, fan_in, fan_out):
    layer = vb.Linear(fan_in, fan_out)
    params = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in layer.parameters().items()}
    x = rng.standard_normal((batch, fan_in)).astype(np.float32)
    dy = rng.standard_normal((batch, fan_out)).astype(np.float32)
    y, dx, grads = run_layer(device, layer, x, params, dy)
    rdx, rdw, _ = ref.linear_backward(x, params["weight"], dy, has_bias=True)
    assert_close(y, ref.linear_forward(x, params["weight"], params["bias"]), 1e-4, "y")
    assert_close(dx, rdx, 1e-4, "dx")
    assert_close(grads["weight"], rdw, 1e-4, "dweight")


@pytest.mark.parametrize("texel_reads", ["0", "1"])
@pytest.mark.parametrize("shape", [(13, 36, 8), (32, 20, 44), (5, 64, 40), (1, 4, 4)], ids=str)
def test_shuffle_core_reads_storage_or_texel_buffers_alike(device, rng, monkeypatch, cache, dispatches, shape,
                                                          texel_reads):
    # The GPU path reads storage buffers, lavapipe texel buffers (common/vec4_input.glsl): both against
    # the float64 reference, on the plain, transposed (<= 32 outputs) and few-row shapes.
    monkeypatch.setattr(gemm_shuffle, "KERNEL", "shuffle")
    monkeypatch.setenv("VKBACKPROP_TEXEL_READS", texel_reads)
    _check_linear(device, rng, *shape)
    shuffled = [dict(d.program.defines) for d in dispatches if gemm_shuffle.tile_of(d.constants)]
    assert {d.get("TEXEL_READS") for d in shuffled} == {int(texel_reads)}


def _check_conv(device, rng, batch, shape, channels_out, **args):
    layer = vb.Conv2d(shape[0], channels_out, 3, **args)
    params = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in layer.parameters().items()}
    x = rng.standard_normal((batch, int(np.prod(shape)))).astype(np.float32)
    x4 = x.reshape(batch, *shape)
    y4 = ref.conv2d_forward(x4, params["weight"], params["bias"], **args)
    dy = rng.standard_normal(y4.shape).astype(np.float32)
    y, dx, grads = run_layer(device, layer, x, params, dy.reshape(batch, -1), shapes=[shape])
    rdx, rdw, rdb = ref.conv2d_backward(x4, params["weight"], dy, **args)
    taps, groups = 9, args.get("groups", 1)
    assert_sum_close(y, y4.reshape(batch, -1), shape[0] // groups * taps, "y")
    assert_sum_close(dx, rdx.reshape(batch, -1), channels_out // groups * taps, "dx")
    assert_sum_close(grads["weight"], rdw, batch * dy[0, 0].size, "dweight")


@pytest.mark.parametrize("tile", gemm.TILES, ids=str)
def test_every_scalar_tile_is_correct(device, rng, monkeypatch, cache, tile):
    monkeypatch.setattr(gemm_shuffle, "KERNEL", "scalar")
    _forced(monkeypatch, tile)
    _check_linear(device, rng, 13, 7, 29)
    _check_conv(device, rng, 3, (4, 9, 7), 6, stride=2, padding=1, groups=2)


@pytest.mark.parametrize("tile", gemm.SHARED_TILES, ids=str)
def test_every_shared_memory_tile_is_correct_across_blocks_and_steps(device, rng, monkeypatch, cache, tile):
    """The shared-memory core (common/gemm_tiled.glsl) with every includer: products spanning several
    blocks in both directions with partial last blocks, reductions of many BK steps with a partial
    last one, a convolution's weight gradient split into slices (K_FIRST > 0, the last slice short)
    and grouped (z), and recurrent layers (A read [k][m] with skipped rows, B gathered per step)."""
    monkeypatch.setattr(gemm_shuffle, "KERNEL", "scalar")
    _forced(monkeypatch, tile)
    blocks = (tile["WG_Y"] * tile["TM"], tile["WG_X"] * tile["TN"])
    # forward 150 x 140 x 45, dW 140 x 45 x 150, dx 150 x 45 x 140: every product crosses a block edge.
    assert 150 > blocks[0] and 140 > blocks[1]
    _check_linear(device, rng, 150, 45, 140)
    _check_conv(device, rng, 1, (4, 65, 65), 6, padding=1, groups=2)   # 4225 terms: 2 slices
    check_gpu(device, rng, make(vb.LSTM, 5, 9, 2, return_state=True), 3, 7, True, True)


POWERS = st.sampled_from([1, 2, 4, 8, 16, 32, 64])
SHAPES = st.tuples(st.integers(1, 40), st.integers(1, 50), st.integers(1, 40))   # batch, in, out
FUZZ = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def scalar_tiles(draw):
    """Any tile the scalar cores accept: register-blocked, or shared-memory (then TM, TN quads)."""
    if draw(st.booleans()):
        tile = {"TM": draw(st.integers(1, 12)), "TN": draw(st.integers(1, 8)), "WG_X": draw(POWERS),
                "WG_Y": draw(st.sampled_from([1, 2, 4]))}
    else:
        tile = {"TM": draw(st.sampled_from([4, 8])), "TN": draw(st.sampled_from([4, 8])),
                "WG_X": draw(st.sampled_from([4, 8, 16])), "WG_Y": draw(st.sampled_from([4, 8, 16])),
                "BK": draw(st.sampled_from([2, 4, 8, 12, 16]))}
    try:
        gemm.check_shape(tile, "drawn")
    except ValueError:
        assume(False)
    return tile


@FUZZ
@given(tile=scalar_tiles(), shape=SHAPES, seed=st.integers(0, 2**31))
def test_any_tile_the_scalar_cores_accept_computes_right(device, monkeypatch, cache, tile, shape, seed):
    """Tiles are specialization constants: any values check_shape and the device accept (not only
    the family's) give Linear's forward and both gradients right, on either core."""
    assume(tile["WG_X"] * tile["WG_Y"] <= device.properties["max_work_group_invocations"]
           and gemm.shared_memory_bytes(tile) <= device.properties["max_shared_memory_size"])
    with monkeypatch.context() as patch:
        patch.setattr(gemm_shuffle, "KERNEL", "scalar")
        _forced(patch, tile)
        _check_linear(device, np.random.default_rng(seed), *shape)


@FUZZ
@given(share=st.sampled_from([4, 8, 16]), rows=st.sampled_from([1, 2, 4]), nc=st.integers(1, 3),
       wg_x=st.sampled_from([4, 8, 16, 32]), shape=SHAPES.map(lambda s: tuple(4 * -(-v // 4) for v in s)),
       seed=st.integers(0, 2**31))
def test_any_tile_the_shuffle_core_accepts_computes_right(device, monkeypatch, cache, share, rows, nc, wg_x, shape,
                                                         seed):
    """The same for the vec4 subgroup-shuffle core (SHARE above lavapipe's 8 lanes takes its path
    without shuffles), on shapes of whole quads, where it runs every pass. At most 64 vec4
    accumulators (the family's 128-accumulator tiles are tested above): with a cold Mesa shader
    cache lavapipe compiles a 128-accumulator pass for ~7 s, a 256 one for ~30 s."""
    assume(share * rows * nc <= 64)
    tile = {"TM": share * rows, "NC": nc, "WG_X": wg_x, "SHARE": share}
    with monkeypatch.context() as patch:
        patch.setattr(gemm_shuffle, "KERNEL", "shuffle")
        _forced(patch, tile)
        _check_linear(device, np.random.default_rng(seed), *shape)


def test_the_shared_memory_core_runs_right_up_to_the_loop_limit(device, rng, monkeypatch, cache, dispatches):
    """Its loop estimate (gemm.loop_iterations) bounds lavapipe's count from above: the longest
    reduction a shared-memory tile accepts there computes right, one term more is refused (lavapipe
    would stop the loop early and write a wrong sum)."""
    monkeypatch.setattr(gemm_shuffle, "KERNEL", "scalar")
    tile = gemm.SHARED_TILES[0]
    _forced(monkeypatch, tile)
    limit = device.loop_limit or LLVMPIPE_LOOP_LIMIT
    k = limit - 1
    while gemm.loop_iterations(k, tile) > limit:
        k -= 1
    layer = vb.Linear(k, 4)
    params = {n: rng.standard_normal(v.shape).astype(np.float32) for n, v in layer.parameters().items()}
    x = rng.standard_normal((3, k)).astype(np.float32)
    y, _, _ = run_layer(device, layer, x, params, rng.standard_normal((3, 4)).astype(np.float32))
    assert_sum_close(y, ref.linear_forward(x, params["weight"], params["bias"]), k, f"y over {k} terms")
    forward = [d for d in dispatches if d.program.path == "linear/forward.comp"]
    assert [gemm.tile_of(d.constants) for d in forward] == [tile]   # the forward ran on it
    assert [dict(d.program.defines) for d in forward] == [{"SHARED_MEMORY": 1}]
    if device.loop_limit is not None:   # (a plan then falls back to the default tile)
        with pytest.raises(ValueError, match=f"reduction length {k + 1}.*stops loops after {limit}"):
            gemm.check_tile(device, "linear/forward.comp", k + 1, tile)


def test_a_tile_the_device_cannot_hold_is_refused_and_not_tuned(device, rng, monkeypatch, cache, dispatches):
    monkeypatch.setattr(gemm_shuffle, "KERNEL", "scalar")
    big = gemm.SHARED_TILES[0]
    monkeypatch.setitem(device.properties, "max_shared_memory_size", gemm.shared_memory_bytes(big) - 4)
    with pytest.raises(ValueError, match=r"needs 16896 bytes of shared memory; .* has 16892"):
        gemm.fits(device, big, "linear/forward.comp")
    monkeypatch.setitem(device.properties, "max_work_group_invocations", 128)
    with pytest.raises(ValueError, match="has 256 invocations per workgroup; .* allows 128"):
        gemm.fits(device, gemm.SHARED_TILES[1], "linear/forward.comp")
    monkeypatch.setenv(tuning.TUNE_ENV, "1")
    timed = []
    monkeypatch.setattr(tuning, "best_gpu_seconds", lambda dev, d, **kw: timed.append(d.name) or 1.0)
    _check_linear(device, rng, 13, 7, 29)
    assert timed
    held = [t for t in gemm.TILES if t["WG_X"] * t["WG_Y"] <= 128 and gemm.shared_memory_bytes(t) < 16896]
    tried = [gemm.tile_of(d.constants) for d in dispatches if gemm.tile_of(d.constants)]
    assert tried and all(t in held for t in tried)
    assert gemm.SHARED_TILES[2] in tried   # 128 invocations, 8.25 KiB: tuned


def test_a_tile_the_cores_cannot_compute_with_is_refused_before_any_gpu_work(device):
    """Tiles are specialization constants, so nothing checks them at compile time: gemm.check_shape
    and gemm_shuffle.check_shape do, for every tile a dispatch is planned with."""
    for tile in gemm.TILES:
        gemm.check_shape(tile, "family")
    for tile in gemm_shuffle.TILES:
        gemm_shuffle.check_shape(tile, "family", a_m_contiguous=True)
    bad = {"missing WG_Y": ({"TM": 8, "TN": 4, "WG_X": 64}, "positive integers TM, TN, WG_X, WG_Y"),
           "zero": ({"TM": 0, "TN": 4, "WG_X": 64, "WG_Y": 1}, "positive integers"),
           "quads": ({"TM": 6, "TN": 8, "WG_X": 16, "WG_Y": 16, "BK": 8}, "TM and TN must be multiples of 4"),
           "shares": ({"TM": 4, "TN": 4, "WG_X": 16, "WG_Y": 16, "BK": 2}, "multiples of WG_X\\*WG_Y = 256")}
    for what, (tile, message) in bad.items():
        with pytest.raises(ValueError, match=message):
            gemm.check_tile(device, "linear/forward.comp", 64, tile)
    with pytest.raises(ValueError, match="linear/forward.comp: TM must be a multiple of SHARE"):
        gemm_shuffle.check_shape({"TM": 12, "NC": 1, "WG_X": 16, "SHARE": 8}, "linear/forward.comp")
    with pytest.raises(ValueError, match="A stored \\[k\\]\\[m\\] needs SHARE % 4 == 0"):
        gemm_shuffle.check_shape({"TM": 12, "NC": 1, "WG_X": 16, "SHARE": 6}, "s", a_m_contiguous=True)


@pytest.mark.parametrize("tile", gemm_shuffle.TILES, ids=str)
def test_every_shuffle_tile_is_correct(device, rng, monkeypatch, cache, tile):
    monkeypatch.setattr(gemm_shuffle, "KERNEL", "shuffle")
    _forced(monkeypatch, tile)
    _check_linear(device, rng, 36, 40, 44)


@pytest.mark.parametrize("out", [44, 42], ids=["dy in place", "dy copied"])
@pytest.mark.parametrize("tile", gemm_shuffle.TILES, ids=str)
def test_every_shuffle_tile_sums_the_gradient_squares(device, rng, monkeypatch, cache, tile, out):
    """The weight-gradient GEMM's partial sums of squares (one per invocation of its grid; several
    workgroups along x and y for most tiles, the last ones partial) add up to the squared norms of
    the gradients it stored, weight and bias."""
    monkeypatch.setattr(gemm_shuffle, "KERNEL", "shuffle")
    _forced(monkeypatch, tile)
    trainer = vb.Trainer(vb.Sequential(vb.Linear(136, out)), vb.MSELoss(), vb.SGD(lr=0.0), 12, device=device)
    assert set(trainer.plan.grad_squares) == {"0.weight", "0.bias"}
    trainer.step(rng.standard_normal((12, 136)).astype(np.float32), rng.standard_normal((12, out)).astype(np.float32))
    grads = trainer.gradients()
    for name, partials in trainer.plan.grad_squares.items():
        want = float((grads[name].astype(np.float64) ** 2).sum())
        got = float(device.read(partials).astype(np.float64).sum())
        assert abs(got - want) <= 1e-5 * want, f"{name}: partial sums {got}, squares of the gradient {want}"


def test_tuning_caches_a_choice_per_shape_class_and_later_plans_reuse_it(device, monkeypatch, cache, quick_families,
                                                                          dispatches):
    monkeypatch.setattr(gemm_shuffle, "KERNEL", "auto")
    monkeypatch.setenv(tuning.TUNE_ENV, "1")
    timed = []
    real_time = tuning.best_gpu_seconds
    monkeypatch.setattr(tuning, "best_gpu_seconds", lambda dev, d, **kw: timed.append(d.name) or real_time(dev, d, **kw))
    model = vb.Sequential(vb.Linear(8, 12), vb.ReLU(), vb.Linear(12, 5))
    vb.Trainer(model, vb.CrossEntropyLoss(), vb.SGD(lr=0.1), 16, device=device)
    entries = json.loads(cache.read_text())[tuning.device_key(device)]
    families = [gemm.TILES, gemm_shuffle.TILES]
    assert entries and all(any(tile in f for f in families) for tile in entries.values())
    # 12 outputs: the forward runs transposed (m = out_features, n = batch).
    variant = gemm_shuffle.TEXEL_SUFFIX if device.prefers_texel_reads else ""
    assert f"linear/forward_shuffle_t.comp{variant}|{tuning.shape_class(12, 16, 8)}" in entries
    assert timed   # candidates were timed

    # Tuning off, the cache read: the same tiles, nothing timed, every plan alike.
    monkeypatch.delenv(tuning.TUNE_ENV)
    timed.clear()
    dispatches.clear()
    vb.Trainer(vb.Sequential(vb.Linear(8, 12), vb.ReLU(), vb.Linear(12, 5)), vb.CrossEntropyLoss(), vb.SGD(lr=0.1),
               16, device=device)
    assert not timed
    linear = [d for d in dispatches if d.program.path.startswith("linear/") and "TM" in d.constants]
    assert linear
    for d in linear:   # each is the tile cached for its shader (and one of its shape classes)
        tile = gemm_shuffle.tile_of(d.constants) or gemm.tile_of(d.constants)
        key = gemm_shuffle.tuning_name(d.program.path, dict(d.program.defines)) + "|"
        assert tile in [t for k, t in entries.items() if k.startswith(key)], d.program.path


def test_candidates_are_timed_on_stand_ins_not_on_the_plans_buffers(device, monkeypatch, cache, quick_families):
    """A plan's buffers hold whatever the memory held (NaNs and denormals skew timings): tuning
    times each candidate on stand-ins of the same shapes filled with values in [-1, 1)."""
    monkeypatch.setattr(gemm_shuffle, "KERNEL", "auto")
    monkeypatch.setenv(tuning.TUNE_ENV, "1")
    timed = []
    real_time = tuning.best_gpu_seconds
    monkeypatch.setattr(tuning, "best_gpu_seconds", lambda dev, d, **kw: timed.append(d) or real_time(dev, d, **kw))
    model = vb.Sequential(vb.Linear(8, 12), vb.ReLU(), vb.Linear(12, 5, bias=False))
    trainer = vb.Trainer(model, vb.CrossEntropyLoss(), vb.SGD(lr=0.1), 16, device=device)
    planned = set().union(*(d.reads | d.writes for kind, d in trainer.plan.train.log if kind == "dispatch"))
    assert timed
    for d in timed:
        assert not (d.reads | d.writes) & planned, d.name
        for b in d.reads - d.writes:
            assert b.name.startswith("tuning stand-in for "), (d.name, b.name)
            values = device.read(b)
            assert np.isfinite(values).all() and np.abs(values).max() <= 1.0, (d.name, b.name)


def test_a_candidate_far_slower_than_the_best_so_far_is_timed_once(device, monkeypatch, cache):
    """Tuning stays quick: each candidate gets a warm-up run and a timed one, and only one no
    slower than twice the best time so far is run the repeats that decide between close ones."""
    monkeypatch.setenv(tuning.TUNE_ENV, "1")
    scripted = {"a": 3.0, "b": 1.0, "c": 5.0, "d": 1.5}
    bounds, best_gpu_seconds = [], tuning.best_gpu_seconds
    monkeypatch.setattr(tuning, "best_gpu_seconds",
                        lambda dev, d, give_up_above: bounds.append(give_up_above) or scripted[d])
    bars = []   # the progress bar over the candidates (shown where stderr is a terminal)
    monkeypatch.setattr(tuning, "tqdm", lambda items, **kw: bars.append((list(items), kw)) or items)
    candidates = [{"T": t} for t in scripted]
    chosen = tuning.choose_tile(device, "s.comp", 8, 8, 8, candidates, {"T": "a"}, lambda tile: tile["T"])
    assert chosen == {"T": "b"} and bounds == [float("inf"), 6.0, 2.0, 2.0]
    assert [(items, kw["desc"], kw["disable"]) for items, kw in bars] == [(candidates, "tuning s.comp|8x8x8", None)]
    assert tuning.choose_tile(device, "s.comp", 7, 8, 8, candidates, {"T": "a"}, None) == {"T": "b"}
    assert len(bars) == 1   # cached for the class: nothing timed, no bar

    copy = device.dispatch("bench/copy.comp", {"src": device.buffer("src", (64,)), "dst": device.buffer("dst", (64,))},
                           (1, 1, 1), {"NUMEL": 16})
    runs = []
    monkeypatch.setattr(Sequence, "eval", lambda seq, eval_=Sequence.eval: runs.append(seq) or eval_(seq))
    assert best_gpu_seconds(device, copy, repeats=3) > 0 and len(runs) == 4
    runs.clear()
    assert best_gpu_seconds(device, copy, repeats=3, give_up_above=0.0) > 0 and len(runs) == 2


def test_cached_tile_that_cannot_plan_falls_back_to_the_default(device, cache):
    def check(tile):
        if tile["TM"] == 16:
            raise ValueError("loop limit")
    cache.write_text(json.dumps({tuning.device_key(device): {
        f"s.comp|{tuning.shape_class(5, 5, 5)}": gemm.CPU_TILE}}))
    assert tuning.planned_tile(check, device, "s.comp", (5, 5, 5), gemm.TILES, gemm.TILE, None) == gemm.TILE
    assert tuning.planned_tile(lambda t: None, device, "s.comp", (5, 5, 5), gemm.TILES, gemm.TILE, None) == gemm.CPU_TILE


def test_an_unreadable_cache_is_ignored(device, cache):
    cache.write_text("{not json")
    with pytest.warns(UserWarning, match="ignoring the unreadable GEMM tile cache"):
        assert tuning.choose_tile(device, "s.comp", 4, 4, 4, gemm.TILES, gemm.TILE, None) == gemm.TILE


def test_shape_classes_round_up_to_powers_of_two():
    assert tuning.shape_class(128, 256, 784) == "128x256x1024"
    assert tuning.shape_class(1, 3, 4) == "1x4x4"
