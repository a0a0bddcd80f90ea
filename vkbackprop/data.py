"""Data sets for `vkbackprop train`: the IDX format of MNIST (gzipped or not), scikit-learn's 8x8
digits, and .npz files.

IDX (http://yann.lecun.com/exdb/mnist/): two zero bytes, a dtype code (0x08 uint8, 0x09 int8,
0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, then each dimension as
a big-endian uint32, then the values, big-endian, row-major. Anything else is a ValueError.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
MNIST_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
               "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":   # gzip's magic; anything else is read as plain IDX
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: not a valid gzip file ({e})") from None


def read_idx(path) -> np.ndarray:
    """The array in an IDX file (gzipped or plain, detected from the content), in native byte order."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (magic bytes {data[:4].hex()}, expected 0000 + a dtype "
                         f"code in {{{', '.join(f'{c:02x}' for c in IDX_DTYPES)}}} + the number of dimensions)")
    dtype, ndim = IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(data)} bytes, {header} needed for {ndim} dimensions)")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, 4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "size mismatch"
        raise ValueError(f"{path}: {what}: IDX {dtype.name} array of shape {shape} needs {expected} bytes, "
                         f"the file has {len(data)}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path, array) -> None:
    """Write `array` as IDX (gzipped when the name ends in .gz); the inverse of read_idx."""
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise ValueError(f"write_idx: dtype {array.dtype} has no IDX code")
    code = codes[native]
    payload = (bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
               + np.ascontiguousarray(array, IDX_DTYPES[code]).tobytes())
    path = Path(path)
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)


def _find(folder: Path, stem: str) -> Path:
    # The files as published (train-images-idx3-ubyte[.gz]) and as some mirrors rename them (train-images.idx3-ubyte).
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{folder}: no {stem} or {stem}.gz (the MNIST IDX files)")


def load_mnist(folder):
    """(x_train, y_train, x_test, y_test) from the four MNIST IDX files in `folder` (gzipped or not):
    images as float32 (n, rows*cols) scaled to [0, 1], labels as int64 (n,)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder (expected the MNIST IDX files in it)")
    arrays = {key: read_idx(_find(folder, stem)) for key, stem in MNIST_FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 3 or labels.ndim != 1:
            raise ValueError(f"{folder}: {split} images must have 3 dimensions and labels 1, "
                             f"got shapes {images.shape} and {labels.shape}")
        if len(images) != len(labels):
            raise ValueError(f"{folder}: {len(images)} {split} images but {len(labels)} labels")
    return _prepared(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], str(folder))


def load_digits_split(seed: int = 0):
    """scikit-learn's 8x8 digits: the demo's fixed stratified 80/20 split, pixels scaled to [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, digits.target, test_size=0.2, random_state=seed,
                                                        stratify=digits.target)
    return x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64)


def load_npz(path):
    """(x_train, y_train, x_test, y_test) from an .npz with those keys; inputs flattened to 2-D float32
    (uint8 scaled to [0, 1]), labels int64."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in MNIST_FILES if k not in f.files]
            if missing:
                raise ValueError(f"{path}: missing keys {missing} (has {sorted(f.files)})")
            arrays = [f[k] for k in MNIST_FILES]
    except (OSError, zlib.error, EOFError) as e:
        raise ValueError(f"{path}: not a readable .npz file ({e})") from None
    except ValueError as e:
        raise ValueError(str(e) if str(e).startswith(str(path)) else f"{path}: {e}") from None
    return _prepared(*arrays, str(path))


def _prepared(x_train, y_train, x_test, y_test, source: str):
    out = []
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if x.ndim < 2 or len(x) == 0:
            raise ValueError(f"{source}: x_{split} must have a row per sample, got shape {x.shape}")
        if y.shape != (len(x),):
            raise ValueError(f"{source}: y_{split} must have shape ({len(x)},), got {y.shape}")
        if y.dtype.kind not in "iu":
            raise ValueError(f"{source}: y_{split} must hold integer class labels, got dtype {y.dtype}")
        if x.dtype.kind not in "fiu":
            raise ValueError(f"{source}: x_{split} must be numeric, got dtype {x.dtype}")
        x = x.reshape(len(x), -1)
        x = x.astype(np.float32) / np.float32(255.0) if x.dtype == np.uint8 else x.astype(np.float32)
        if (y < 0).any():
            raise ValueError(f"{source}: y_{split} has negative labels")
        out += [x, y.astype(np.int64)]
    if out[0].shape[1] != out[2].shape[1]:
        raise ValueError(f"{source}: x_train has {out[0].shape[1]} features per sample, x_test {out[2].shape[1]}")
    return tuple(out)


def load_dataset(spec: str):
    """(x_train, y_train, x_test, y_test) for 'digits', 'mnist:<folder>' or '<file>.npz'."""
    if spec == "digits":
        return load_digits_split()
    if spec.startswith("mnist:"):
        return load_mnist(spec[len("mnist:"):] or ".")
    if spec.endswith(".npz"):
        if not os.path.isfile(spec):
            raise FileNotFoundError(f"{spec}: no such file")
        return load_npz(spec)
    raise ValueError(f"unknown dataset {spec!r}: expected 'digits', 'mnist:<folder>' or a .npz file")
