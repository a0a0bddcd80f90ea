"""The IDX reader, MNIST folder loading and load_dataset, on small files written here."""

import gzip
import struct

import numpy as np
import pytest

from vkbackprop.data import load_dataset, load_mnist, read_idx, write_idx


def _idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """IDX written by hand (not by write_idx): magic 00 00 <code> <ndim>, big-endian uint32 dims, data."""
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _mnist_folder(folder, rng, gz: bool, n_train=7, n_test=5):
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 4, 3), dtype=np.uint8),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 4, 3), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8)}
    for name, a in arrays.items():
        raw = _idx_bytes(a)
        (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(raw) if gz else raw)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trips_uint8(tmp_path, rng, gz):
    images = rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    labels = rng.integers(0, 10, 6, dtype=np.uint8)
    for name, a in (("images", images), ("labels", labels)):
        path = tmp_path / (name + (".gz" if gz else ""))
        raw = _idx_bytes(a)
        path.write_bytes(gzip.compress(raw) if gz else raw)
        got = read_idx(path)
        assert got.dtype == np.uint8 and got.shape == a.shape
        np.testing.assert_array_equal(got, a)


@pytest.mark.parametrize("dtype, code", [(np.int16, 0x0B), (np.int32, 0x0C), (np.float32, 0x0D), (np.float64, 0x0E)])
def test_read_idx_big_endian_types(tmp_path, rng, dtype, code):
    a = (rng.standard_normal((3, 4)) * 1000).astype(dtype)
    (tmp_path / "a").write_bytes(_idx_bytes(a, code))
    got = read_idx(tmp_path / "a")
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, a)
    write_idx(tmp_path / "b.gz", a)   # and write_idx is its inverse
    np.testing.assert_array_equal(read_idx(tmp_path / "b.gz"), a)


def test_read_idx_rejects_corrupt_files(tmp_path):
    good = _idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    cases = {
        "wrong magic": b"\x00\x01" + good[2:],
        "unknown dtype code": good[:2] + b"\x07" + good[3:],
        "truncated data": good[:-1],
        "truncated header": good[:9],
        "too short": good[:3],
        "trailing bytes": good + b"\x00",
        "empty": b"",
        "not gzip inside": b"\x1f\x8b" + b"garbage",
        "truncated gzip": gzip.compress(good)[:-6],
    }
    for what, data in cases.items():
        (tmp_path / "f").write_bytes(data)
        with pytest.raises(ValueError):
            read_idx(tmp_path / "f")
            pytest.fail(what)
    (tmp_path / "f").write_bytes(good[:-1])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "f")
    (tmp_path / "f").write_bytes(b"\x12\x34\x56\x78" + good[4:])
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "f")
    (tmp_path / "f").write_bytes(good + b"\x00")
    with pytest.raises(ValueError, match="size mismatch"):
        read_idx(tmp_path / "f")


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_folder(tmp_path, rng, gz):
    arrays = _mnist_folder(tmp_path, rng, gz)
    x_train, y_train, x_test, y_test = load_mnist(tmp_path)
    assert x_train.shape == (7, 12) and x_test.shape == (5, 12) and x_train.dtype == np.float32
    np.testing.assert_allclose(x_train, arrays["train-images-idx3-ubyte"].reshape(7, 12) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y_test, arrays["t10k-labels-idx1-ubyte"])
    assert y_train.dtype == np.int64
    same = load_dataset(f"mnist:{tmp_path}")
    for a, b in zip(same, (x_train, y_train, x_test, y_test)):
        np.testing.assert_array_equal(a, b)


def test_load_mnist_errors(tmp_path, rng):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path)
    _mnist_folder(tmp_path, rng, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(4, np.uint8)))   # 5 images, 4 labels
    with pytest.raises(ValueError, match="5 test images but 4 labels"):
        load_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(5, np.uint8))[:-2])
    with pytest.raises(ValueError, match="truncated"):
        load_mnist(tmp_path)


def test_load_dataset_npz_and_digits(tmp_path, rng):
    x = rng.integers(0, 256, (9, 2, 2), dtype=np.uint8)
    path = tmp_path / "d.npz"
    np.savez(path, x_train=x, y_train=np.arange(9) % 3, x_test=x[:4], y_test=np.arange(4) % 3)
    x_train, y_train, x_test, y_test = load_dataset(str(path))
    assert x_train.shape == (9, 4) and x_train.dtype == np.float32 and x_train.max() <= 1.0
    assert y_test.tolist() == [0, 1, 2, 0]
    np.savez(tmp_path / "bad.npz", x_train=x, y_train=np.arange(9))
    with pytest.raises(ValueError, match="missing keys"):
        load_dataset(str(tmp_path / "bad.npz"))
    np.savez(tmp_path / "rows.npz", x_train=x, y_train=np.arange(8), x_test=x, y_test=np.arange(9))
    with pytest.raises(ValueError, match="y_train must have shape"):
        load_dataset(str(tmp_path / "rows.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError):
        load_dataset(str(tmp_path / "junk.npz"))
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("cifar")
    x_train, y_train, x_test, y_test = load_dataset("digits")
    assert x_train.shape == (1437, 64) and x_test.shape == (360, 64) and set(y_train) == set(range(10))
