"""Trainer.fit / Trainer.evaluate and `vkbackprop train`."""

import json
import subprocess
import sys

import numpy as np
import pytest

import vkbackprop as vb
from vkbackprop.fitting import batch_order
from vkbackprop.reference import cross_entropy_forward, mse_forward


def _problem(rng, n=50, features=6, classes=3):
    """A separable synthetic classification problem: the label is the argmax of a fixed projection."""
    x = rng.standard_normal((n, features)).astype(np.float32)
    y = (x @ rng.standard_normal((features, classes))).argmax(axis=1).astype(np.int64)
    return x, y


def _trainer(device, batch=16, features=6, classes=3, seed=3, loss=None, opt=None):
    vb.manual_seed(seed)
    model = vb.Sequential(vb.Linear(features, 16), vb.ReLU(), vb.Linear(16, classes))
    return vb.Trainer(model, loss=loss or vb.CrossEntropyLoss(), optimizer=opt or vb.SGD(lr=0.2, momentum=0.5),
                      batch_size=batch, device=device)


def test_fit_reduces_loss_and_matches_manual_steps(device, rng):
    x, y = _problem(rng)   # 50 rows, batch 16: the last batch of each epoch wraps around
    fitted = _trainer(device)
    history = fitted.fit(x, y, epochs=4, seed=11, verbose=False)
    assert history["loss"][-1] < history["loss"][0]

    manual = _trainer(device)
    epochs = batch_order(len(x), 16, 4, shuffle=True, seed=11)
    assert [len(e) for e in epochs] == [4] * 4 and all(len(b) == 16 for e in epochs for b in e)
    for batches in epochs:
        assert set(np.concatenate(batches)) == set(range(len(x)))   # every row at least once
    losses = [[manual.step(x[idx], y[idx]) for idx in batches] for batches in epochs]
    assert history["loss"] == [float(np.mean(e)) for e in losses]   # identical, not close
    assert manual.steps == fitted.steps == 16
    for (k, a), (_, b) in zip(fitted.model.state_dict().items(), manual.model.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=k)


def test_fit_is_deterministic_for_a_seed(device, rng):
    x, y = _problem(rng)
    runs = [_trainer(device).fit(x, y, epochs=2, seed=5, verbose=False) for _ in range(2)]
    assert runs[0] == runs[1]
    other = _trainer(device).fit(x, y, epochs=2, seed=6, verbose=False)
    assert other["loss"] != runs[0]["loss"]


def test_batch_order_without_shuffle_wraps_to_the_start():
    (batches,) = batch_order(10, 4, 1, shuffle=False)
    assert [b.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 1]]
    (batches,) = batch_order(3, 4, 1, shuffle=False)   # fewer rows than a batch
    assert [b.tolist() for b in batches] == [[0, 1, 2, 0]]


def test_history_shape(device, rng):
    x, y = _problem(rng)
    xv, yv = _problem(rng, n=21)
    trainer = _trainer(device)
    history = trainer.fit(x, y, epochs=3, validation_data=(xv, yv), verbose=False)
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 and all(isinstance(f, float) for f in v) for v in history.values())
    assert all(0.0 <= a <= 1.0 for a in history["accuracy"] + history["val_accuracy"])
    assert history["val_loss"][-1] == trainer.evaluate(xv, yv)["loss"]
    assert set(_trainer(device).fit(x, y, epochs=2, verbose=False)) == {"loss", "accuracy"}


def test_history_of_a_regression_has_no_accuracy(device, rng):
    x = rng.standard_normal((40, 6)).astype(np.float32)
    y = (x[:, :2] * 0.5).astype(np.float32)
    trainer = _trainer(device, classes=2, loss=vb.MSELoss(), opt=vb.SGD(lr=0.05))
    history = trainer.fit(x, y, epochs=5, validation_data=(x, y), verbose=False)
    assert set(history) == {"loss", "val_loss"}
    assert history["loss"][-1] < history["loss"][0]
    result = trainer.evaluate(x, y)
    assert set(result) == {"loss"}
    assert result["loss"] == pytest.approx(mse_forward(trainer.predict(x), y), rel=1e-12)


def test_evaluate_counts_every_row(device, rng):
    x, y = _problem(rng, n=37)   # not a multiple of the batch size 16
    trainer = _trainer(device)
    trainer.fit(x, y, epochs=2, verbose=False)
    logits = trainer.predict(x).astype(np.float64)
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    result = trainer.evaluate(x, y)
    assert result["loss"] == pytest.approx(-logp[np.arange(37), y].mean(), rel=1e-12)
    assert result["loss"] == pytest.approx(cross_entropy_forward(logits, y), rel=1e-12)
    assert result["accuracy"] == np.mean(logits.argmax(axis=1) == y)
    # The last row counts: make it the only wrong prediction.
    yy = logits.argmax(axis=1)
    yy[-1] = (yy[-1] + 1) % 3
    assert trainer.evaluate(x, yy)["accuracy"] == 36 / 37


def test_fit_and_evaluate_validate_inputs(device, rng):
    x, y = _problem(rng, n=20)
    trainer = _trainer(device)
    before = trainer.model.state_dict()
    with pytest.raises(ValueError, match="labels: label 7 at index 3"):
        bad = y.copy(); bad[3] = 7
        trainer.fit(x, bad, epochs=1, verbose=False)
    with pytest.raises(ValueError, match=r"labels: expected shape \(20,\)"):
        trainer.evaluate(x, y[:-1])
    with pytest.raises(ValueError, match="x: expected a floating-point array"):
        trainer.evaluate(x.astype(np.int32), y)
    with pytest.raises(ValueError, match="NaN"):
        bad = x.copy(); bad[2, 1] = np.nan
        trainer.fit(bad, y, epochs=1, verbose=False)
    with pytest.raises(ValueError, match="validation_data"):
        trainer.fit(x, y, epochs=1, validation_data=(x, y[:-1]), verbose=False)
    with pytest.raises(ValueError, match="epochs"):
        trainer.fit(x, y, epochs=-1, verbose=False)
    assert trainer.steps == 0
    for k, v in trainer.model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_cli_train_digits(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "vkbackprop", "train", "--model", "mlp", "--dataset", "digits",
                           "--epochs", "2", "--batch-size", "64", "--optimizer", "adam", "--lr", "0.01",
                           "--schedule", "cosine", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"history", "test", "device", "epochs", "dataset"} <= set(metrics)
    assert set(metrics["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 2 for v in metrics["history"].values())
    assert set(metrics["test"]) == {"loss", "accuracy"} and metrics["test"]["accuracy"] > 0.5
    assert metrics["device"]["name"]
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "test accuracy" in proc.stdout


def test_fit_gathers_the_next_batch_while_the_gpu_runs_the_step(device, rng, monkeypatch):
    """The input pipeline: batch k+1 is gathered between submitting step k and waiting for it."""
    from vkbackprop import fitting
    x, y = _problem(rng)
    trainer = _trainer(device)
    events = []
    gather, submit, collect = fitting._gather, trainer._submit, trainer._collect
    monkeypatch.setattr(fitting, "_gather", lambda *a: events.append("gather") or gather(*a))
    monkeypatch.setattr(trainer, "_submit", lambda *a: events.append("submit") or submit(*a))
    monkeypatch.setattr(trainer, "_collect", lambda: events.append("collect") or collect())
    trainer.fit(x, y, epochs=1, verbose=False)
    assert events == ["gather"] + ["submit", "gather", "collect"] * 3 + ["submit", "collect"]


def test_fit_resumes_from_a_checkpoint_bit_identically(device, rng, tmp_path):
    x, y = _problem(rng)
    straight = _trainer(device, opt=vb.Adam(lr=0.01))
    full = straight.fit(x, y, epochs=3, seed=4, verbose=False)

    path = tmp_path / "fit.safetensors"
    first = _trainer(device, opt=vb.Adam(lr=0.01))
    first.fit(x, y, epochs=1, seed=4, verbose=False, checkpoint=path)   # saved after the epoch
    resumed = _trainer(device, seed=99, opt=vb.Adam(lr=0.01))          # other initial weights: all overwritten
    resumed = vb.Trainer(resumed.model, resumed.loss, resumed.optimizer, 16, device=device, resume=path)
    assert (resumed.epochs, resumed.steps) == (1, 4)
    rest = resumed.fit(x, y, epochs=2, seed=4, verbose=False)
    assert rest == {k: v[1:] for k, v in full.items()}          # identical floats, not close
    assert resumed.history == straight.history == full
    for (k, a), (_, b) in zip(resumed.model.state_dict().items(), straight.model.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=k)


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "vkbackprop", "train", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def test_cli_resume_continues_a_run_bit_identically(tmp_path):
    # No schedule: a schedule is laid out over --epochs, which the shortened first run changes (an
    # interrupted real run is resumed with its own --epochs, and its schedule continues exactly).
    common = ["--dataset", "digits", "--batch-size", "128", "--optimizer", "adam", "--lr", "0.01", "--quiet"]
    straight = _cli(*common, "--epochs", "3", "--checkpoint", tmp_path / "a.ckpt", "--out", tmp_path / "a")
    assert straight.returncode == 0, straight.stderr
    part = _cli(*common, "--epochs", "1", "--checkpoint", tmp_path / "b.ckpt", "--out", tmp_path / "b")
    assert part.returncode == 0, part.stderr
    resumed = _cli(*common, "--epochs", "3", "--checkpoint", tmp_path / "b.ckpt", "--resume", "--out", tmp_path / "c")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())
    c = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert c["resumed"] and len(c["history"]["loss"]) == 3
    assert c["history"] == a["history"] and c["test"] == a["test"]


def test_cli_resume_needs_a_checkpoint(tmp_path):
    proc = _cli("--resume", "--out", tmp_path)
    assert proc.returncode == 2 and "--resume needs --checkpoint" in proc.stderr
    proc = _cli("--resume", "--checkpoint", tmp_path / "missing.ckpt", "--out", tmp_path)
    assert proc.returncode == 2 and "no checkpoint at" in proc.stderr
