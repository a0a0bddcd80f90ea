"""Checks of layer constructor arguments, shared by the layers: each returns the normalised value
or raises a ValueError naming the layer, the argument, what it must be and what it got."""

from __future__ import annotations

import math
import numbers

import numpy as np


def is_int(value) -> bool:
    """An integer that is not a bool (True is an int to Python, never a size to a layer)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def positive_int(layer: str, what: str, value) -> int:
    if not is_int(value) or value < 1:
        raise ValueError(f"{layer}: {what} must be a positive int, got {value!r}")
    return int(value)


def pair(layer: str, what: str, value, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each >= minimum, as an (H, W) pair."""
    items = (value, value) if is_int(value) else tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(items) != 2 or not all(is_int(v) and v >= minimum for v in items):
        raise ValueError(f"{layer}: {what} must be an int >= {minimum} or a pair of them, got {value!r}")
    return int(items[0]), int(items[1])


def flag(layer: str, what: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{layer}: {what} must be a bool, got {value!r}")
    return bool(value)


def number(layer: str, what: str, value, ok, requirement: str):
    """A real number, finite also in float32 (the shaders get it so), for which ok(value) holds; kept
    as given (an int stays an int, so the repr reads like PyTorch's)."""
    valid = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)
    if not (valid and abs(float(value)) <= float(np.finfo(np.float32).max) and ok(value)):
        raise ValueError(f"{layer}: {what} must be {requirement}, got {value!r}")
    return int(value) if is_int(value) else float(value)
