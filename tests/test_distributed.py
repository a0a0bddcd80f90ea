"""Data-parallel training over MPI (vkbackprop/distributed.py), run with `mpirun -n 2` on lavapipe."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import vkbackprop as vb
from vkbackprop import distributed
from oracles import rel_err

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = Path(__file__).resolve().parent / "mpi_support"
sys.path.insert(0, str(SUPPORT))
from problem import batches, make_model, make_optimizer   # noqa: E402

def mpirun(*args, ranks=2, timeout=240, env=None):
    """Run a command under `mpirun -n ranks` (Open MPI from scripts/setup.sh; oversubscribed: more
    ranks than cores is fine for lavapipe, and root is allowed in containers)."""
    assert shutil.which("mpirun"), "mpirun is missing: scripts/setup.sh installs openmpi-bin"
    environment = dict(os.environ, PYTHONPATH=str(ROOT), OMPI_ALLOW_RUN_AS_ROOT="1",
                       OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1", **(env or {}))
    return subprocess.run(["mpirun", "-n", str(ranks), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=environment, cwd=str(ROOT))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_two_ranks_match_one_process_on_the_combined_batch(device, tmp_path, optimizer):
    out = tmp_path / "rank0.npz"
    proc = mpirun(sys.executable, SUPPORT / "train_ranks.py", out, optimizer, "ok")
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = np.load(out)
    assert int(got["segments"]) > 1    # several buckets, reduced while backward went on

    single = vb.Trainer(make_model(), vb.CrossEntropyLoss(), make_optimizer(optimizer), batch_size=8, device=device)
    losses = [single.step(x, y) for x, y in batches()]
    assert rel_err(got["losses"], np.array(losses)) <= 1e-5
    for name, value in single.model.state_dict().items():
        assert rel_err(got[f"param/{name}"], value) <= 1e-5, name
    np.testing.assert_allclose(got["predicted"], single.predict(batches()[0][0]), rtol=1e-5, atol=1e-6)


def test_a_batch_that_does_not_divide_is_refused(tmp_path):
    proc = mpirun(sys.executable, SUPPORT / "train_ranks.py", tmp_path / "x.npz", "sgd", "odd-batch", timeout=120)
    assert proc.returncode != 0
    assert "batch_size 7 does not divide over 2 ranks" in proc.stderr


def test_a_dead_rank_stops_the_others(tmp_path):
    start = time.monotonic()
    proc = mpirun(sys.executable, SUPPORT / "train_ranks.py", tmp_path / "x.npz", "sgd", "die", timeout=120,
                  env={distributed.TIMEOUT_ENV: "20"})
    assert proc.returncode != 0 and time.monotonic() - start < 110
    assert "exit" in (proc.stderr + proc.stdout).lower()


def test_a_hung_rank_times_out_with_a_clear_error(tmp_path):
    proc = mpirun(sys.executable, SUPPORT / "train_ranks.py", tmp_path / "x.npz", "sgd", "hang", timeout=120,
                  env={distributed.TIMEOUT_ENV: "5"})
    assert proc.returncode != 0
    assert "did not complete within 5 s" in proc.stderr and "another rank has died or hangs" in proc.stderr


def test_ranks_get_one_gpu_each_and_lavapipe_without_gpus():
    cpu = {"index": 0, "device_type": "Cpu"}
    gpus = [cpu, {"index": 1, "device_type": "DiscreteGpu"}, {"index": 2, "device_type": "DiscreteGpu"}]
    assert distributed.choose_device_index([cpu], 0, 4) is None
    assert [distributed.choose_device_index(gpus, r, 2) for r in range(2)] == [1, 2]
    with pytest.raises(ValueError, match="3 ranks on this machine but only 2 GPU"):
        distributed.choose_device_index(gpus, 0, 3)


def test_cli_train_runs_unchanged_under_mpirun(tmp_path):
    out = tmp_path / "run"
    proc = mpirun(sys.executable, "-m", "vkbackprop", "train", "--dataset", "digits", "--epochs", "2",
                  "--batch-size", "64", "--optimizer", "adam", "--lr", "0.01", "--quiet", "--out", out,
                  "--checkpoint", tmp_path / "ck.safetensors")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("test accuracy") == 1          # rank 0 reports
    import json
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["ranks"] == 2 and metrics["test"]["accuracy"] > 0.8
    assert (tmp_path / "ck.safetensors").is_file()


def test_every_rank_resumes_from_rank_0s_checkpoint_bit_identically(tmp_path):
    common = ["-m", "vkbackprop", "train", "--dataset", "digits", "--batch-size", "64", "--optimizer", "adam",
              "--lr", "0.01", "--quiet"]
    straight = mpirun(sys.executable, *common, "--epochs", "2", "--out", tmp_path / "a")
    first = mpirun(sys.executable, *common, "--epochs", "1", "--checkpoint", tmp_path / "b.ckpt", "--out", tmp_path / "b")
    resumed = mpirun(sys.executable, *common, "--epochs", "2", "--checkpoint", tmp_path / "b.ckpt", "--resume",
                     "--out", tmp_path / "c")
    for proc in (straight, first, resumed):
        assert proc.returncode == 0, proc.stderr[-3000:]
    import json
    a, c = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("a", "c"))
    assert c["history"] == a["history"] and c["test"] == a["test"]


def test_batch_norm_keeps_per_rank_statistics_and_predicts_with_rank_0s():
    proc = mpirun(sys.executable, SUPPORT / "batchnorm_ranks.py")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "batchnorm ok" in proc.stdout
