"""Checkpoints: trainer.save / trainer.load_state (vkbackprop/checkpoint.py)."""

import json
import os
import random
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import vkbackprop as vb
from vkbackprop import checkpoint

ROOT = Path(__file__).resolve().parents[1]

# Shared by this process and the child processes: the model, optimizer and data of the resume test.
SETUP = textwrap.dedent("""
    import numpy as np
    import vkbackprop as vb

    def make_trainer(device=None, hidden=16, optimizer=None, seed=7):
        vb.manual_seed(0)
        model = vb.Sequential(vb.Linear(6, hidden), vb.ReLU(), vb.Dropout(0.25, seed=seed), vb.Linear(hidden, 3))
        opt = optimizer or vb.Adam(lr=0.05, weight_decay=0.01, schedule=vb.StepLR(step_size=3, gamma=0.5))
        return vb.Trainer(model, vb.CrossEntropyLoss(), opt, batch_size=8, device=device)

    def batch(k):
        rng = np.random.default_rng(1000 + k)
        return rng.standard_normal((8, 6)).astype(np.float32), rng.integers(0, 3, 8)
""")
namespace = {}
exec(SETUP, namespace)
make_trainer, batch = namespace["make_trainer"], namespace["batch"]
N = 5


def child_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def snapshot(trainer):
    return (trainer.steps, trainer.model.state_dict(), trainer.optimizer_state())


def assert_same(a, b):
    assert a[0] == b[0]
    assert a[1].keys() == b[1].keys()
    for k in a[1]:
        np.testing.assert_array_equal(a[1][k], b[1][k])
    assert a[2].keys() == b[2].keys()
    for k in a[2]:
        assert a[2][k].keys() == b[2][k].keys()
        for s in a[2][k]:
            np.testing.assert_array_equal(a[2][k][s], b[2][k][s])


@pytest.fixture
def saved(device, tmp_path):
    trainer = make_trainer(device)
    for k in range(N):
        trainer.step(*batch(k))
    path = tmp_path / "ckpt.safetensors"
    trainer.save(path)
    return trainer, path


def test_resume_in_new_process_is_bit_identical(device, tmp_path):
    straight = make_trainer(device)
    losses = [straight.step(*batch(k)) for k in range(2 * N)]

    first = make_trainer(device)
    assert [first.step(*batch(k)) for k in range(N)] == losses[:N]
    path = tmp_path / "half.safetensors"
    first.save(path)

    script = tmp_path / "resume.py"
    script.write_text(SETUP + textwrap.dedent(f"""
        import json, sys
        trainer = make_trainer()
        trainer.load_state(sys.argv[1])
        assert trainer.steps == {N}, trainer.steps
        print(json.dumps([trainer.step(*batch(k)).hex() for k in range({N}, {2 * N})]))
    """))
    out = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True,
                         env=child_env(), cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    resumed = [float.fromhex(h) for h in json.loads(out.stdout.strip().splitlines()[-1])]
    assert resumed == losses[N:]
    # The schedule and the state mattered: a fresh trainer at the same parameters differs.
    fresh = make_trainer(device)
    fresh.model.load_state_dict(first.model.state_dict())
    assert [fresh.step(*batch(k)) for k in range(N, 2 * N)] != losses[N:]


def test_load_restores_everything_in_process(device, saved):
    trainer, path = saved
    other = make_trainer(device)
    other.load_state(path)
    assert_same(snapshot(other), snapshot(trainer))
    assert other.optimizer_state()["0.weight"]["exp_avg"].any()
    assert [other.step(*batch(k)) for k in range(N, N + 2)] == [trainer.step(*batch(k)) for k in range(N, N + 2)]


def test_counts_and_history_round_trip(device, tmp_path):
    """skipped_steps (non-finite steps skipped), fit's epoch count and history survive a checkpoint;
    Trainer(resume=path) is load_state at construction."""
    trainer = make_trainer(device)
    trainer.fit(*batch(0), epochs=2, verbose=False)
    trainer.skipped_steps = 3          # as if three steps had been skipped with on_nonfinite='skip'
    path = tmp_path / "counts.safetensors"
    trainer.save(path)
    fresh = make_trainer(device)
    other = type(fresh)(fresh.model, fresh.loss, fresh.optimizer, fresh.batch_size, device=device, resume=path)
    assert (other.steps, other.skipped_steps, other.epochs) == (2, 3, 2)
    assert other.history == trainer.history and len(other.history["loss"]) == 2
    assert_same(snapshot(other), snapshot(trainer))


def test_metadata_describes_the_trainer(saved):
    trainer, path = saved
    meta, tensors = checkpoint.read(path)
    assert meta["format_version"] == checkpoint.FORMAT_VERSION
    assert meta["steps"] == N
    assert meta["optimizer"]["kind"] == "Adam"
    assert meta["optimizer"]["hyper"]["lr"] == 0.05 and meta["optimizer"]["hyper"]["betas"] == [0.9, 0.999]
    assert meta["optimizer"]["schedule"] == "StepLR(step_size=3, gamma=0.5)"
    assert meta["dropout_seeds"] == {"2": "7"}
    assert sorted(tensors) == sorted(["0.weight", "0.bias", "3.weight", "3.bias"] +
                                     [f"__optimizer__/{p}/{s}" for p in ("0.weight", "0.bias", "3.weight", "3.bias")
                                      for s in ("exp_avg", "exp_avg_sq")])


def test_model_part_loads_into_torch(saved):
    import torch
    from safetensors.torch import load_file

    trainer, path = saved
    state = {k: v for k, v in load_file(str(path)).items() if not k.startswith(checkpoint.OPTIMIZER_PREFIX)}
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Dropout(0.25), torch.nn.Linear(16, 3))
    net.load_state_dict(state)   # strict: exactly the model's keys and shapes
    net.eval()
    x, _ = batch(99)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(trainer.predict(x), want, rtol=1e-5, atol=1e-5)


def damage(path: Path, how: str, rng) -> Path:
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", bytes(data[:8]))
    if how == "truncated":
        data = data[: rng.integers(1, len(data))]
    elif how == "truncated_tail":
        data = data[:-1]
    elif how == "empty":
        data = bytearray()
    elif how == "flip_data":
        i = int(rng.integers(8 + n, len(data)))
        data[i] ^= 1 << int(rng.integers(0, 8))
    elif how == "flip_header":
        start = data.index(b'\\"steps\\": ', 8) + 2   # the step count in the description: still valid JSON
        assert data[start + 9:start + 10] == b"5"
        data[start + 9] ^= 0x01
    elif how == "garbage":
        data = bytearray(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    out = path.with_name(f"{how}.safetensors")
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("how", ["truncated", "truncated_tail", "empty", "flip_data", "flip_header", "garbage"])
def test_damaged_checkpoint_raises_and_changes_nothing(device, saved, how, rng):
    trainer, path = saved
    bad = damage(path, how, rng)
    other = make_trainer(device)
    other.step(*batch(0))
    before = snapshot(other)
    with pytest.raises(ValueError, match="damaged"):
        other.load_state(bad)
    assert_same(snapshot(other), before)


def test_missing_file_raises(device, tmp_path):
    with pytest.raises(ValueError, match="cannot be read"):
        make_trainer(device).load_state(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("kind, match", [
    ("shapes", "model parameters.*0.weight"),
    ("optimizer", "optimizer kind 'Adam' in the checkpoint, 'SGD'"),
    ("amsgrad", "Adam fixed settings.*amsgrad"),
    ("seed", "Dropout seeds"),
])
def test_mismatched_checkpoint_raises_and_changes_nothing(device, saved, kind, match):
    _, path = saved
    other = {
        "shapes": lambda: make_trainer(device, hidden=17),
        "optimizer": lambda: make_trainer(device, optimizer=vb.SGD(lr=0.1, momentum=0.9)),
        "amsgrad": lambda: make_trainer(device, optimizer=vb.Adam(amsgrad=True)),
        "seed": lambda: make_trainer(device, seed=8),
    }[kind]()
    other.step(*batch(0))
    before = snapshot(other)
    with pytest.raises(ValueError, match=match):
        other.load_state(path)
    assert_same(snapshot(other), before)


def test_sgd_without_state_round_trips(device, tmp_path):
    trainer = make_trainer(device, optimizer=vb.SGD(lr=0.1))
    trainer.step(*batch(0))
    trainer.save(tmp_path / "sgd.safetensors")
    other = make_trainer(device, optimizer=vb.SGD(lr=0.1))
    other.load_state(tmp_path / "sgd.safetensors")
    assert_same(snapshot(other), snapshot(trainer))


KILL_SETUP = textwrap.dedent("""
    import vkbackprop as vb

    def make_big(device=None):
        vb.manual_seed(1)
        model = vb.Sequential(vb.Linear(512, 2048), vb.ReLU(), vb.Linear(2048, 512))
        return vb.Trainer(model, vb.MSELoss(), vb.Adam(), batch_size=4, device=device)
""")


def test_sigkill_mid_save_keeps_previous_checkpoint(device, tmp_path):
    script = tmp_path / "saver.py"
    script.write_text(KILL_SETUP + textwrap.dedent("""
        import sys
        trainer = make_big()
        k = 0
        while True:
            print("saving", k, flush=True)
            trainer.steps = k            # each save differs
            trainer.save(sys.argv[1])
            print("saved", k, flush=True)
            k += 1
    """))
    path = tmp_path / "big.safetensors"
    chooser = random.Random(1234)
    landed = 0
    for attempt in range(12):
        child = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=child_env(), cwd=tmp_path)
        try:
            lines = []
            while True:   # wait for a complete save, then for the start of the next one
                line = child.stdout.readline()
                assert line, f"saver exited early: {child.stderr.read()}"
                lines.append(line.split())
                if lines[-1][0] == "saving" and any(w[0] == "saved" for w in lines):
                    break
            time.sleep(chooser.uniform(0.0, 0.15))
            os.kill(child.pid, signal.SIGKILL)
            rest, _ = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                os.kill(child.pid, signal.SIGKILL)
                child.wait()
        lines += [line.split() for line in rest.splitlines()]
        assert child.returncode == -signal.SIGKILL
        last_saved = max(int(w[1]) for w in lines if w[0] == "saved")
        mid_save = lines[-1][0] == "saving"
        landed += mid_save
        meta, _ = checkpoint.read(path)     # complete and its checksum valid
        # The last finished save, or the interrupted one if its rename had already happened.
        assert meta["steps"] in (last_saved, last_saved + 1), (meta["steps"], last_saved)
        if landed >= 2:
            break
    assert landed >= 1, "no SIGKILL landed during a save"
    print(f"attempts {attempt + 1}, kills mid-save {landed}")
    namespace = {}
    exec(KILL_SETUP, namespace)
    trainer = namespace["make_big"](device)
    trainer.load_state(path)
    assert trainer.steps == meta["steps"]
