"""GEMM tile autotuning: per (device, shader, shape class) the fastest tile of a family, cached on disk.

A GEMM dispatch asks `choose_tile` for its tile. Without a cache entry it gets the family's
default for the device; with `VKBACKPROP_TUNE=1` the first dispatch of a shape class times every
candidate tile on stand-ins for its buffers (same shapes, filled with small values: a plan's own
buffers hold whatever the memory held, and NaNs or denormals there skew the timings; lavapipe ran
one shape 40x slower on such garbage) with GPU timestamps, best of a few runs, keeps the fastest and
writes it to `<cache dir>/gemm_tiles.json` (`VKBACKPROP_CACHE_DIR`, default ~/.cache/vkbackprop),
keyed by the device (name, vendor, device id, driver version). Later plans read the entry and time
nothing, so the choice is deterministic once cached. Every tile computes the same result (each is
tested); a tile only changes speed.

Shape classes: each of m, n, k rounded up to a power of two, so a tile tuned for 128 x 256 x 784
also serves 128 x 256 x 1000.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

TUNE_ENV = "VKBACKPROP_TUNE"
_REPEATS = 3
# A candidate whose first timed run takes this many times the best candidate's time so far is not
# run again: it cannot win. On lavapipe the family's times for one shape spread over 2-10x, so this
# skips most of the repeats. (Not judged by the warm-up run: for a tiny dispatch that one can take
# 20x a later run.)
_HOPELESS = 2.0


def cache_path() -> Path:
    root = os.environ.get("VKBACKPROP_CACHE_DIR") or Path.home() / ".cache" / "vkbackprop"
    return Path(root) / "gemm_tiles.json"


def tuning_enabled() -> bool:
    return os.environ.get(TUNE_ENV, "") not in ("", "0")


def device_key(device) -> str:
    p = device.properties
    return f"{p['device_name']}|vendor {p['vendor_id']}|device {p['device_id']}|driver {p['driver_version']}"


def shape_class(m: int, n: int, k: int) -> str:
    return "x".join(str(1 << max(0, int(v) - 1).bit_length()) for v in (m, n, k))


def _load() -> dict:
    """The cache's contents (a copy), read from disk only when the file changed: a plan asks once
    per GEMM dispatch."""
    path = cache_path()
    try:
        info = path.stat()
    except FileNotFoundError:
        return {}
    stamp = (info.st_mtime_ns, info.st_size)
    if _read.get("key") != (str(path), stamp):
        _read.update(key=(str(path), stamp), data=_read_file(path))
    return copy.deepcopy(_read["data"])   # callers may modify it


_read: dict = {}


def _read_file(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:   # a cache, not a source of truth: start again
        warnings.warn(f"ignoring the unreadable GEMM tile cache {path}: {e}")
        return {}
    return data if isinstance(data, dict) else {}


def _store(data: dict) -> None:
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".gemm_tiles.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)   # atomic: concurrent readers see the old or the new file


def best_gpu_seconds(device, dispatch, repeats: int = _REPEATS, give_up_above: float = float("inf")) -> float:
    """Best GPU time of `dispatch` alone over `repeats` runs after one warm-up run, cut short
    once it exceeds `give_up_above` seconds (a candidate that cannot win)."""
    seq = device.sequence(timestamps=1)
    seq.dispatch(dispatch)
    seq.eval()
    best = float("inf")
    for _ in range(repeats):
        seq.eval()
        best = min(best, seq.op_seconds()[0])
        if best > give_up_above:
            break
    return best


def stand_ins(device, buffers: dict) -> dict:
    """Buffers to time a dispatch on in place of `buffers`: the same shapes and dtypes, filled with
    deterministic values in [-1, 1) (one stand-in per buffer, however many names bind it)."""
    rng = np.random.default_rng(0)
    made = {}
    for b in buffers.values():
        if id(b) not in made:
            made[id(b)] = device.buffer(f"tuning stand-in for {b.name}", b.shape, b.dtype, staged=True)
            device.write(made[id(b)], rng.uniform(-1.0, 1.0, b.shape))
    return {name: made[id(b)] for name, b in buffers.items()}


def planned_tile(check, device, shader: str, mnk: tuple, candidates: list, default: dict, build,
                 buffers: dict | None = None) -> dict:
    """The tile a GEMM dispatch uses. `check(tile)` raises ValueError if a tile cannot plan this
    shape (lavapipe's loop limit), `build(tile, buffers)` makes the dispatch over `buffers`;
    candidates are timed on `stand_ins` for them. The default must plan, so a shape no tile can run
    gets the default's clear error; a cached tile that cannot plan this member of its shape class
    falls back to the default."""
    check(default)
    timing_buffers = functools.cache(lambda: stand_ins(device, buffers or {}))   # made only if timed
    chosen = choose_tile(device, shader, *mnk, candidates, default,
                         lambda tile: (check(tile), build(tile, timing_buffers()))[1])
    try:
        check(chosen)
    except ValueError:
        return default
    return chosen


def choose_tile(device, shader: str, m: int, n: int, k: int, candidates: list, default: dict, make) -> dict:
    """The tile for this dispatch: the cached choice for (device, shader, shape class), else with
    tuning on the fastest candidate (timed with `make(tile)`, which returns the dispatch; a
    candidate whose plan is refused, e.g. by lavapipe's loop limit, is skipped; one far slower
    than the best so far is timed once), else `default`."""
    key = f"{shader}|{shape_class(m, n, k)}"
    cached = _load().get(device_key(device), {}).get(key)
    if cached in candidates:
        return dict(cached)
    if not tuning_enabled():
        return default
    times = {}
    # A bar where stderr is a terminal: on lavapipe a cold candidate compiles for up to seconds at
    # its first dispatch (docs/benchmarks.md), so tuning a shape class can take ~20 s.
    for i, tile in enumerate(tqdm(candidates, desc=f"tuning {key}", unit="tile", leave=False, disable=None)):
        try:
            times[i] = best_gpu_seconds(device, make(tile),
                                        give_up_above=_HOPELESS * min(times.values(), default=float("inf")))
        except ValueError:
            continue
    if not times:
        return default
    best = dict(candidates[min(times, key=times.get)])
    data = _load()
    data.setdefault(device_key(device), {})[key] = best
    _store(data)
    return best
