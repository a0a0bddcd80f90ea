"""The benchmark runner (`vkbackprop bench`): GPU timestamps map to the commands that ran, the
isolated ops compute what NumPy computes (so the runner times real work), FLOP and byte counts,
the CLI's outputs and errors. No timing assertions: timing lives in bench/ and the runner."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

import vkbackprop as vb
from vkbackprop.device import Device
from vkbackprop.bench import cli, ops, steps
from vkbackprop.bench.isolated import IsolatedLayer
from vkbackprop.bench.layer_bench import host_inputs, measure_op, relative_errors
from vkbackprop.bench.timing import TimedRecorder
from vkbackprop.device import Sequence
from vkbackprop.layers.recurrent import LSTM
from oracles import no_gpu_work

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fma_dispatch(device, iterations: int, name: str):
    seed = device.buffer(f"{name}.seed", (2,), staged=True)
    device.write(seed, np.array([0.5, 0.5], np.float32))
    out = device.buffer(name, (64 * 8,))
    return device.dispatch("bench/peak_fma.comp", {"seed": seed, "result": out}, (8, 1, 1),
                           {"ITERATIONS": iterations}, name=name)


@pytest.mark.parametrize("big_at", [0, 1, 2])
def test_timestamps_map_to_the_commands_that_ran(device, big_at):
    """Three dispatches, one doing 64x the work of the others: it is the longest wherever it is
    recorded (a shifted timestamp -> command mapping would credit its time to a neighbour)."""
    seq = device.sequence(timestamps=3)
    for i in range(3):
        seq.dispatch(fma_dispatch(device, 64 * 64 if i == big_at else 64, f"out{i}"))
    runs = []
    for _ in range(3):               # the fastest of 3: robust to a busy machine
        seq.eval()
        runs.append(seq.op_seconds())
    assert all(len(r) == 3 for r in runs)
    fastest = np.min(runs, axis=0)
    assert np.argmax(fastest) == big_at and np.all(fastest > 0)


def test_timestamps_are_ticks_times_the_period():
    class FakeKpSequence:
        def get_timestamps(self):
            return [1000, 1010, 1050]
    seq = Sequence(FakeKpSequence(), timestamps=2, timestamp_period_ns=2.5)
    assert seq.op_seconds() == pytest.approx([25e-9, 100e-9])


def test_timestamp_capacity_and_absence_are_errors(device):
    seq = device.sequence(timestamps=1)
    seq.dispatch(fma_dispatch(device, 1, "a"))
    with pytest.raises(ValueError, match="timestamps for 1 commands"):
        seq.dispatch(fma_dispatch(device, 1, "b"))
    with pytest.raises(ValueError, match="no timestamps"):
        device.sequence().op_seconds()


def test_timed_recorder_times_each_shader_and_the_whole_pass(device):
    rec = TimedRecorder(device, 2)
    rec.dispatch(fma_dispatch(device, 64, "first"))
    rec.dispatch(fma_dispatch(device, 64, "second"))
    total, per_shader = rec.gpu_times(repeats=2, warmup=1)
    assert set(per_shader) == {"first", "second"} and len(total.seconds) == 2
    assert total.min <= total.median <= total.max
    assert all(total.seconds[i] >= per_shader["first"].seconds[i] for i in range(2))


def test_a_replayed_training_step_records_the_same_commands_each_timed(device, rng):
    trainer = vb.Trainer(vb.Sequential(vb.Linear(12, 8), vb.ReLU(), vb.Linear(8, 3)), vb.CrossEntropyLoss(),
                         vb.SGD(lr=0.1), 4, device=device)
    trainer.step(rng.standard_normal((4, 12)).astype(np.float32), rng.integers(0, 3, 4))
    timed = TimedRecorder.replay(trainer.plan.train)
    assert timed.log == trainer.plan.train.log            # same commands, same barriers, same order
    times = timed.command_times(repeats=2, warmup=1)
    log = trainer.plan.train.log
    assert [k for k, _, _ in times] == [k for k, _ in log]
    assert [w for k, w, _ in times if k == "dispatch"] == [d.name for k, d in log if k == "dispatch"]
    assert all(len(t.seconds) == 2 and t.min >= 0 for _, _, t in times)


SMALL_SHAPES = {"linear": [(8, 16, 4), (5, 7, 3)], "relu": [(4, 33)], "leaky_relu": [(4, 33)],
                "sigmoid": [(4, 33)], "tanh": [(4, 33)], "gelu": [(4, 33)], "softmax": [(3, 17)],
                "log_softmax": [(3, 17)], "conv2d": [(2, 3, 5, 6, 4, 3), (3, 2, 4, 4, 5, 1), (2, 4, 8, 8, 8, 3, 2)],
                "maxpool2d": [(2, 3, 6, 7, 2)], "avgpool2d": [(2, 3, 6, 6, 3)],
                "adaptive_avgpool2d": [(2, 3, 5, 7, 2)], "batchnorm2d": [(3, 4, 5, 5)], "layernorm": [(4, 33)],
                "rnn": [(3, 5, 4, 6)], "lstm": [(3, 5, 4, 6)], "gru": [(3, 5, 4, 6)],
                "embedding": [(3, 5, 11, 4)]}


def test_every_op_has_a_test_shape():
    assert set(SMALL_SHAPES) == set(ops.OPS)


def host_pass(op, layer, library, pass_, arrays) -> dict:
    return {k: np.asarray(v) for k, v in op.math.prepare(library, pass_, layer, arrays)().items()}


@pytest.mark.parametrize("name,shape", [(n, s) for n, shapes in SMALL_SHAPES.items() for s in shapes])
def test_isolated_passes_compute_the_numpy_math(device, rng, name, shape):
    """The sequences the runner times produce NumPy's results (every output and gradient the layer
    writes), and PyTorch computes the same."""
    op = ops.OPS[name]
    layer, in_shapes = op.make(shape)
    arrays = ops.host_arrays(layer, shape[0], in_shapes, rng, op.draw_x)
    isolated = IsolatedLayer(device, layer, shape[0], in_shapes)
    isolated.load(arrays)
    inputs = host_inputs(op, layer, arrays, "cpu")
    for pass_ in ops.PASSES:
        isolated.record(pass_).sequence.eval()
        want = host_pass(op, layer, "numpy", pass_, inputs["numpy"])
        written = {"forward": {"y"}, "backward": set(isolated.outputs) - {"y"}}[pass_]
        assert set(want) == written
        errors = relative_errors(isolated.read(want), want)
        assert max(errors.values()) < 1e-5, errors
        torch_result = host_pass(op, layer, "torch", pass_, inputs["torch"])
        assert set(torch_result) == written
        torch_errors = relative_errors(torch_result, want)
        assert max(torch_errors.values()) < 1e-5, torch_errors


@pytest.mark.parametrize("name", ["lstm", "embedding", "maxpool2d"])
def test_measure_op_times_reference_math_ops_and_checks_them(device, rng, name):
    """The runner's own path for ops whose PyTorch backward is autograd's (timed repeatedly on one graph)."""
    shape = SMALL_SHAPES[name][0]
    results = measure_op(device, ops.OPS[name], shape, repeats=2, warmup=1, rng=rng, torch_device="cpu")
    assert [r.pass_ for r in results] == list(ops.PASSES)
    for r in results:
        assert r.max_rel_error < 1e-5 and (r.flops is None) == (name != "lstm")
        assert len(r.numpy.seconds) == len(r.torch.seconds) == len(r.gpu.seconds) == 2


def test_a_result_unlike_numpys_is_flagged_and_fails_the_run(monkeypatch, capsys):
    """Host math that disagrees with the shaders (here: y + 1) prints WRONG and exits 1."""
    relu = ops.OPS["relu"]
    off_by_one = dataclasses.replace(relu.math, forward=lambda xp, a: {"y": a["x"] * (a["x"] > 0) + 1})
    monkeypatch.setitem(ops.OPS, "relu", dataclasses.replace(relu, math=off_by_one))
    assert cli.main(["--layer", "relu", "--shape", "4,8", "--repeats", "1", "--warmup", "0", "--quiet"]) == 1
    assert "WRONG" in capsys.readouterr().out


def test_flops_and_bytes_of_linear(device):
    layer, in_shapes = ops.OPS["linear"].make((8, 16, 4))
    assert ops.pass_flops(layer, 8, (4,), "forward") == 2 * 8 * 16 * 4
    assert ops.pass_flops(layer, 8, (4,), "backward") == 4 * 8 * 16 * 4
    isolated = IsolatedLayer(device, layer, 8, in_shapes)
    x, w, b, y = 8 * 16, 4 * 16, 4, 8 * 4
    assert ops.pass_bytes(isolated.dispatches("forward"), device.placeholder) == 4 * (x + w + b + y)
    # reads dy, x, W; writes dW, db, dx; on the vec4 core also writes and reads dy's transposed copy.
    # The input gradient's `partials` (read where it adds to earlier ones) is the placeholder here.
    backward = isolated.dispatches("backward")
    scratch = 2 * y if any(d.name.startswith("linear/transpose_dy") for d in backward) else 0
    assert ops.pass_bytes(backward, device.placeholder) == 4 * (y + x + w + w + b + x + scratch)
    assert ops.pass_bytes(backward) == 4 * (y + x + w + w + b + x + scratch + 4)
    relu, _ = ops.OPS["relu"].make((4, 8))
    assert ops.pass_flops(relu, 4, (8,), "forward") is None


@pytest.mark.parametrize("name,shape,forward_flops", [
    ("conv2d", (2, 3, 5, 6, 4, 3), 2 * 2 * (4 * 5 * 6) * (3 * 3 * 3)),   # per output: in x kh x kw
    ("lstm", (3, 5, 4, 6), 2 * 3 * 5 * (4 * 6) * (4 + 6)),               # per step: W_ih and W_hh
    ("gru", (3, 5, 4, 6), 2 * 3 * 5 * (3 * 6) * (4 + 6)),
    ("rnn", (3, 5, 4, 6), 2 * 3 * 5 * 6 * (4 + 6)),
    ("embedding", (3, 5, 11, 4), None), ("layernorm", (4, 33), None), ("batchnorm2d", (3, 4, 5, 5), None),
    ("maxpool2d", (2, 3, 6, 7, 2), None), ("gelu", (4, 33), None)])
def test_flops_count_weight_gemms_only(name, shape, forward_flops):
    """Backward is twice forward (dx and dW); lookups and elementwise weights count nothing."""
    layer, in_shapes = ops.OPS[name].make(shape)
    out_shape = layer.output_shape(*in_shapes)
    assert ops.pass_flops(layer, shape[0], out_shape, "forward") == forward_flops
    assert ops.pass_flops(layer, shape[0], out_shape, "backward") == (forward_flops and 2 * forward_flops)


def test_recurrent_flops_leave_out_the_final_state_rows():
    plain, with_state = LSTM(4, 6), LSTM(4, 6, num_layers=2, return_state=True)
    assert ops.weight_macs(plain, plain.output_shape((5, 4))) == 5 * 4 * 6 * (4 + 6)
    assert ops.weight_macs(with_state, with_state.output_shape((5, 4))) == 5 * 4 * 6 * (4 + 6 + 6 + 6)


def test_step_flops_count_every_linear():
    model = steps.mlp_config((784, 256, 10), 2).vkbackprop_model()
    assert steps.step_flops(model, 2) == 6 * 2 * (784 * 256 + 256 * 10)


@pytest.mark.parametrize("name,shape,message", [
    ("linear", "8,16", "expected 3 numbers"), ("linear", "8,x,4", "expected integers"), ("linear", "8,0,4", ">= 1"),
    ("conv2d", "8,3,32,32,16", r"expected 6 to 7 numbers batch,channels,height,width,out_channels,kernel\[,stride\]"),
    ("conv2d", "8,3,32,32,16,3,2,1", "expected 6 to 7 numbers .* got 8"),
    ("maxpool2d", "2,3,4,4,5", "empty"), ("lstm", "16,64,32", "expected 4 numbers batch,steps,input_size,hidden_size"),
    ("embedding", "4,8,1.5,2", "expected integers batch,tokens,vocabulary,dim"),
    ("batchnorm2d", "8,0,4,4", ">= 1")])
def test_malformed_shapes_are_named(name, shape, message):
    with pytest.raises(ValueError, match=message):
        ops.OPS[name].parse_shape(shape)


def test_cli_writes_table_json_and_plots(tmp_path, capsys):
    out, plots = tmp_path / "out.json", tmp_path / "plots"
    assert cli.main(["--layer", "linear", "--shape", "8,16,4", "--repeats", "3", "--json", str(out),
                     "--plots", str(plots), "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "linear  8x16x4" in table and "GFLOP/s" in table
    data = json.loads(out.read_text())
    assert data["schema"] == 1 and data["device"]["timestamp_period_ns"] > 0
    assert data["peak"]["gflops"] > 0 and data["peak"]["gbps"] > 0
    assert [(r["op"], r["shape"], r["pass"]) for r in data["ops"]] == [
        ("linear", [8, 16, 4], "forward"), ("linear", [8, 16, 4], "backward")]
    for r in data["ops"]:
        assert r["ok"] and r["flops"] > 0 and r["bytes"] > 0 and r["gflops"] > 0 and r["pct_peak_flops"] > 0
        for who in ("vkbackprop", "numpy", "torch"):
            assert r[who]["repeats"] == 3 and r[who]["min_ms"] <= r[who]["median_ms"] <= r[who]["max_ms"]
    pngs = sorted(plots.glob("*.png"))
    assert [p.name for p in pngs] == ["gemm_gflops.png"]
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in pngs)


def test_step_suite_over_budget_reports_skips_and_runs_nothing(tmp_path, capsys):
    out = tmp_path / "steps.json"
    assert cli.main(["--suite", "steps", "--max-seconds", "1e-9", "--repeats", "1", "--json", str(out),
                     "--quiet"]) == 0
    assert "skipped: ~" in capsys.readouterr().out
    data = json.loads(out.read_text())
    entries = data["steps"] + [e for axis in data["sweeps"].values() for e in axis]
    assert len(data["steps"]) == 4 and data["sweeps"]["batch"] and data["sweeps"]["hidden_layers"]
    for e in entries:
        assert e["status"] in ("skipped", "not available") and e["vkbackprop"] is None and e["torch"] is None
        assert e["reason"].startswith(e["status"])
        assert e["status"] == "not available" or e["estimated_s"] > 0


@pytest.mark.parametrize("args,message", [
    (["--layer", "nope"], "unknown layer 'nope'"),
    (["--layer", "linear", "--shape", "8,16"], "expected 3 numbers"),
    (["--layer", "relu", "--shape", "8,a"], "expected integers"),
    (["--layer", "conv2d", "--shape", "8,3,32,32,16"], "expected 6 to 7 numbers"),
    (["--layer", "avgpool2d", "--shape", "2,3,4,4,5"], "empty"),
    ([], "name a --layer"),
    (["--suite", "ops", "--shape", "1,2"], "--shape goes with --layer"),
])
def test_bad_arguments_exit_2_with_a_message(args, message):
    for entry in (["-m", "vkbackprop.bench"], ["-m", "vkbackprop", "bench"]):
        proc = subprocess.run([sys.executable, *entry, *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_a_shape_the_device_cannot_plan_exits_2_naming_op_and_shape(monkeypatch, capsys):
    """Plan-time refusals from layers (lavapipe's loop limit here, made small so that every device
    refuses; 5001 values a row: no quads) are reported like bad arguments, not as a traceback."""
    monkeypatch.setattr(Device, "loop_limit", property(lambda self: 10000))
    assert cli.main(["--layer", "softmax", "--shape", "2,5001", "--repeats", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--layer softmax --shape 2,5001:" in err and "Softmax over 5001 features" in err and "after 10000" in err


def test_without_pytorch_the_runner_says_so_and_touches_no_device(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)   # `import torch` raises ImportError
    with no_gpu_work():
        assert cli.main(["--layer", "relu", "--shape", "2,8", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "against PyTorch" in err and "pip install torch" in err
