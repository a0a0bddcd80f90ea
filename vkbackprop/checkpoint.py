"""Checkpoints of a Trainer: `trainer.save(path)` and `trainer.load_state(path)`.

A checkpoint is one safetensors file:

- tensors: the model parameters under their PyTorch names (`"0.weight"`, ...), so
  `safetensors.torch.load_file(path)` filtered to the keys without the optimizer prefix is a
  `torch.nn.Module.load_state_dict` dict; the optimizer state per parameter (read back from its
  device-only buffers) under `"__optimizer__/<param>/<state>"` (PyTorch's state names);
- metadata (safetensors' string metadata): `"vkbackprop.checkpoint"`, a JSON document (format
  version, trainer step count, skipped (non-finite) steps, completed `fit` epochs and their history,
  batch size, parameter and buffer shapes, the Dropout seeds, the optimizer's kind, settings,
  hyper-parameters and schedule description, the state layout), and `"vkbackprop.sha256"`, a SHA-256
  of that JSON and of every tensor (name, dtype, shape, bytes).

The model part holds the buffers too (BatchNorm's running statistics; num_batches_tracked as int64,
like PyTorch). Random state: every random number in a step is a function of a layer's seed (in the
checkpoint) and the step count, and `fit` derives each epoch's shuffle from its seed and the epoch
number, so the step count and the epoch count are the whole random state.

Saving is atomic: the file is written to a temporary file in the same directory, flushed and
fsynced, then renamed over `path` (`os.replace`), so a crash mid-save leaves the previous file intact.

Loading checks everything before changing anything: a damaged file (truncated, bit-flipped: the
checksum) or a mismatched one (other format version, parameter names or shapes, optimizer kind or
its fixed settings, state layout, Dropout seeds) raises a ValueError naming the problem and leaves the
trainer as it was. Loading restores the parameters, the optimizer state (written to the device-only
buffers through staged scratch buffers and a copy dispatch, shaders/optim/copy.comp) and the step
count, which drives the schedule and Adam's bias corrections. The recorded hyper-parameters (lr,
betas, eps, weight_decay, schedule) are a description only: the trainer's own optimizer object keeps
its values, so they may be changed on resume.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from collections import OrderedDict

import numpy as np

FORMAT = "vkbackprop.checkpoint"
FORMAT_VERSION = 2
CHECKSUM_KEY = "vkbackprop.sha256"
OPTIMIZER_PREFIX = "__optimizer__/"


def save(trainer, path) -> None:
    """Write `trainer`'s checkpoint to `path` atomically (see the module docstring)."""
    from safetensors.numpy import save as st_save

    params = trainer.model.state_dict()
    state = trainer.optimizer_state()
    tensors = OrderedDict((name, np.ascontiguousarray(v)) for name, v in params.items())   # float32, int64 counters
    for pname, states in state.items():
        for sname, value in states.items():
            tensors[f"{OPTIMIZER_PREFIX}{pname}/{sname}"] = np.ascontiguousarray(value, dtype=np.float32)
    meta = json.dumps(describe(trainer), sort_keys=True)
    metadata = {FORMAT: meta, CHECKSUM_KEY: _checksum(meta, tensors)}
    data = st_save(dict(tensors), metadata=metadata)
    _write_atomic(os.fspath(path), data)


def load(trainer, path) -> None:
    """Restore `trainer` (parameters, buffers, optimizer state, step, skipped-step and epoch counts,
    fit history) from the checkpoint at `path`;
    a damaged or mismatched checkpoint raises ValueError and changes nothing."""
    path = os.fspath(path)
    meta, tensors = read(path)
    where = f"checkpoint '{path}'"
    want = describe(trainer)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{where}: format version {meta.get('format_version')!r}, this vkbackprop reads "
                         f"version {FORMAT_VERSION}")
    _compare(where, "model parameters (name: shape)", meta.get("parameters"), want["parameters"])
    _compare(where, "Dropout seeds (layer: seed)", meta.get("dropout_seeds"), want["dropout_seeds"])
    saved_opt, opt = meta.get("optimizer") or {}, want["optimizer"]
    if saved_opt.get("kind") != opt["kind"]:
        raise ValueError(f"{where}: optimizer kind {saved_opt.get('kind')!r} in the checkpoint, "
                         f"{opt['kind']!r} in this trainer")
    _compare(where, f"{opt['kind']} fixed settings", saved_opt.get("fixed"), opt["fixed"])
    _compare(where, "optimizer state (param: {state: shape})", saved_opt.get("state"), opt["state"])
    counts = {}
    for key in ("steps", "skipped_steps", "epochs"):
        value = meta.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{where}: '{key}' is {value!r}, not an int >= 0")
        counts[key] = value
    history = meta.get("history")
    if not isinstance(history, dict) or not all(isinstance(v, list) for v in history.values()):
        raise ValueError(f"{where}: 'history' is {history!r}, not a dict of lists")
    expected = list(want["parameters"]) + [f"{OPTIMIZER_PREFIX}{p}/{s}" for p, states in opt["state"].items()
                                           for s in states]
    if sorted(tensors) != sorted(expected):
        raise ValueError(f"{where}: tensors {sorted(tensors)} do not match the description {sorted(expected)}")
    dtypes = trainer.model.bind(trainer.device).host_dtypes
    for name, value in tensors.items():
        if value.dtype != dtypes.get(name, np.float32):
            raise ValueError(f"{where}: tensor '{name}' is {value.dtype}, expected {dtypes.get(name, np.float32)}")
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{where}: tensor '{name}' has non-finite values")
        shape = want["parameters"].get(name) or _state_shape(opt["state"], name)
        if list(value.shape) != list(shape):
            raise ValueError(f"{where}: tensor '{name}' has shape {list(value.shape)}, expected {list(shape)}")

    # Everything checked: now change the trainer.
    trainer.model.load_state_dict({name: tensors[name] for name in want["parameters"]})
    _write_optimizer_state(trainer, {p: {s: tensors[f"{OPTIMIZER_PREFIX}{p}/{s}"] for s in states}
                                     for p, states in opt["state"].items()})
    trainer.steps, trainer.skipped_steps, trainer.epochs = counts["steps"], counts["skipped_steps"], counts["epochs"]
    trainer.history = {k: list(v) for k, v in history.items()}


def read(path) -> "tuple[dict, OrderedDict[str, np.ndarray]]":
    """(metadata, tensors) of a checkpoint file, its checksum verified; ValueError if it is damaged."""
    from safetensors.numpy import load as st_load

    path = os.fspath(path)
    where = f"checkpoint '{path}'"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ValueError(f"{where}: cannot be read: {e}") from None
    try:
        if len(data) < 8:
            raise ValueError(f"{len(data)} bytes, shorter than a safetensors header")
        (n,) = struct.unpack("<Q", data[:8])
        if n > len(data) - 8:
            raise ValueError(f"header of {n} bytes but only {len(data) - 8} bytes follow")
        header = json.loads(data[8:8 + n].decode("utf-8"))
        metadata = header.get("__metadata__") or {}
        if FORMAT not in metadata or CHECKSUM_KEY not in metadata:
            raise ValueError("no vkbackprop checkpoint metadata")
        tensors = OrderedDict(sorted(st_load(data).items()))
        meta_json = metadata[FORMAT]
        meta = json.loads(meta_json)
        if not isinstance(meta, dict):
            raise ValueError("the checkpoint description is not a JSON object")
    except Exception as e:   # truncated or corrupted: any parse error of the header or the tensors
        raise ValueError(f"{where} is damaged or not a vkbackprop checkpoint: {e}") from None
    if _checksum(meta_json, tensors) != metadata[CHECKSUM_KEY]:
        raise ValueError(f"{where} is damaged: its SHA-256 checksum does not match the contents")
    return meta, tensors


def describe(trainer) -> dict:
    """The JSON description a checkpoint of `trainer` records (also what loading compares)."""
    model, opt = trainer.model, trainer.optimizer
    store = model.bind(trainer.device)
    seeds = {model.layer_names[id(layer)]: str(layer.seed) for layer in model.layers
             if type(layer).__name__ == "Dropout"}
    fixed, hyper = _optimizer_settings(opt)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "steps": int(trainer.steps),
        "skipped_steps": int(trainer.skipped_steps),
        "epochs": int(trainer.epochs),
        "history": trainer.history,
        "batch_size": int(trainer.batch_size),
        "parameters": {name: list(buf.shape) for name, buf in {**store.params, **store.states}.items()},
        "dropout_seeds": seeds,
        "optimizer": {
            "kind": type(opt).__name__,
            "fixed": fixed,
            "hyper": hyper,
            "schedule": None if opt.schedule is None else repr(opt.schedule),
            "repr": repr(opt),
            "state": {p: {s: list(b.shape) for s, b in states.items()}
                      for p, states in trainer.plan.optimizer_state.items()},
        },
    }


def _optimizer_settings(opt) -> tuple:
    """(settings fixed at construction, which must match to load; changeable hyper-parameters)."""
    fixed = {k: getattr(opt, k) for k in ("amsgrad", "momentum", "dampening", "nesterov") if hasattr(opt, k)}
    hyper = {"lr": opt.lr}
    for k in ("betas", "eps", "weight_decay"):
        if hasattr(opt, k):
            v = getattr(opt, k)
            hyper[k] = list(v) if isinstance(v, tuple) else v
    return fixed, hyper


def _state_shape(state: dict, name: str):
    p, s = name[len(OPTIMIZER_PREFIX):].rsplit("/", 1)
    return state[p][s]


def _compare(where: str, what: str, saved, current) -> None:
    if saved != current:
        if isinstance(saved, dict) and isinstance(current, dict):
            diff = {k: (saved.get(k, "<absent>"), current.get(k, "<absent>"))
                    for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)}
            detail = "; ".join(f"{k}: checkpoint {a}, trainer {b}" for k, (a, b) in diff.items())
        else:
            detail = f"checkpoint {saved!r}, trainer {current!r}"
        raise ValueError(f"{where} does not match this trainer's {what}: {detail}")


def _checksum(meta_json: str, tensors: dict) -> str:
    h = hashlib.sha256()
    h.update(meta_json.encode("utf-8"))
    for name in sorted(tensors):
        value = np.ascontiguousarray(tensors[name])
        h.update(f"\0{name}\0{value.dtype.str}\0{list(value.shape)}\0".encode("utf-8"))
        h.update(value.tobytes())
    return h.hexdigest()


def _write_atomic(path: str, data: bytes) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:   # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _write_optimizer_state(trainer, values: dict) -> None:
    """Device-only buffers cannot be written from the host: upload into staged scratch buffers, then
    copy on the GPU (one sequence: the upload is ordered before the copy dispatches)."""
    from .optim.base import copy
    from .schedule import Recorder

    device = trainer.device
    pairs = []
    for pname, states in trainer.plan.optimizer_state.items():
        for sname, buf in states.items():
            scratch = device.buffer(f"{buf.name}.load", buf.shape, staged=True)
            scratch.host_view()[...] = values[pname][sname]
            pairs.append((scratch, buf))
    if not pairs:
        return
    recorder = Recorder(device)
    recorder.upload([s for s, _ in pairs])
    for scratch, buf in pairs:
        recorder.dispatch(copy(device, scratch, buf))
    recorder.sequence.eval()
