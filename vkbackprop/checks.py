"""Checks of user input, done on the host before any GPU work so a bad call changes nothing."""

from __future__ import annotations

import numpy as np


def float_array(value, name: str, shape: tuple, finite: bool = True) -> np.ndarray:
    """`value` as float32 of exactly `shape` (None in shape = any size), or a ValueError saying why not."""
    array = np.asarray(value)
    if array.dtype.kind != "f":
        raise ValueError(f"{name}: expected a floating-point array, got dtype {array.dtype}")
    if array.ndim != len(shape) or any(want is not None and got != want for got, want in zip(array.shape, shape)):
        raise ValueError(f"{name}: expected shape {_shape(shape)}, got {array.shape}")
    if finite:
        require_finite(array, name)
    converted = to_float32(array)
    if finite and converted is not array:   # only a conversion can overflow
        require_finite(converted, name, "float32")
    return converted


def to_float32(array: np.ndarray) -> np.ndarray:
    """A contiguous float32 copy or view; values beyond float32's range become Inf (checked after)."""
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(array, dtype=np.float32)


def require_finite(array: np.ndarray, name: str, converted_to: str | None = None) -> None:
    """ValueError naming the first NaN/Inf (after conversion: a finite float64 can overflow float32)."""
    if not np.isfinite(array).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        how = f" after conversion to {converted_to}" if converted_to else ""
        raise ValueError(f"{name}: contains NaN or Inf{how} (first at index {bad})")


def label_array(value, name: str, batch: int, classes: int) -> np.ndarray:
    """Integer class labels of shape (batch,), each in [0, classes)."""
    array = np.asarray(value)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected integer class labels, got dtype {array.dtype}")
    if array.shape != (batch,):
        raise ValueError(f"{name}: expected shape ({batch},), got {array.shape}")
    out_of_range = (array < 0) | (array >= classes)
    if out_of_range.any():
        i = int(np.argmax(out_of_range))
        raise ValueError(f"{name}: label {int(array[i])} at index {i} is outside [0, {classes})")
    return array.astype(np.int32)


def _shape(shape: tuple) -> str:
    return "(" + ", ".join("N" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def integers_in(values: np.ndarray, low: int, high: int, where: str, what: str) -> None:
    """Every value an integer in [low, high] (floats holding integers, as model inputs carry them)."""
    bad = (values != np.round(values)) | (values < low) | (values > high)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{where}: {what} must be integers in [{low}, {high}], got {values[index]!r} at {index}")
