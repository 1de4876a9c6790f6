"""Fashion-MNIST (Xiao et al. 2017): 28x28 grey clothing images, 10 classes, 60k train / 10k test.

Source: the Debian package ``dataset-fashion-mnist``, whose four IDX ``.gz`` files are looked for,
in order, in ``$DLMODELS_DATA/fashion-mnist/``, ``/usr/share/datasets/fashion-mnist/`` (where
``apt-get install`` puts them) and ``<data_dir>/fashion-mnist/`` (where `fetch` puts them). Each
file's sha256 is checked before it is read.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from dlmodels.data.cache import DataError, atomic_path, data_dir, verify_sha256
from dlmodels.data.idx import read_idx

PACKAGE = "dataset-fashion-mnist"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
SUBDIR = "fashion-mnist"
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
SPLIT_SIZES = {"train": 60_000, "test": 10_000}
IMAGE_SHAPE = (28, 28)
N_CLASSES = 10
SPLITS = ("train", "test")
FETCH_COMMAND = "dlmodels data fetch fashion_mnist"


def search_dirs() -> list[Path]:
    """The directories looked in, in order, without repeats."""
    dirs = []
    if os.environ.get("DLMODELS_DATA"):
        dirs.append(Path(os.environ["DLMODELS_DATA"]).expanduser() / SUBDIR)
    dirs += [SYSTEM_DIR, data_dir() / SUBDIR]
    return list(dict.fromkeys(dirs))


def find(split: str) -> Path:
    """The first search directory that holds both files of ``split``."""
    for d in search_dirs():
        if all((d / name).is_file() for name in FILES[split]):
            return d
    raise DataError(f"Fashion-MNIST {split} files {list(FILES[split])} not found in any of "
                    f"{[str(d) for d in search_dirs()]}. Run `{FETCH_COMMAND}` "
                    f"(or, as root, `apt-get install -y {PACKAGE}`).")


def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``: x float32 ``[N, 784]`` = uint8 pixels / 255, y int32 ``[N]`` in 0..9."""
    d = find(split)
    images_name, labels_name = FILES[split]
    for name in FILES[split]:
        verify_sha256(d / name, SHA256[name])
    images, labels = read_idx(d / images_name), read_idx(d / labels_name)
    n = SPLIT_SIZES[split]
    if images.shape != (n, *IMAGE_SHAPE) or images.dtype != np.uint8:
        raise DataError(f"{d / images_name}: {images.dtype} {images.shape}, "
                        f"expected uint8 {(n, *IMAGE_SHAPE)}")
    if labels.shape != (n,) or labels.dtype != np.uint8 or (n and labels.max() >= N_CLASSES):
        raise DataError(f"{d / labels_name}: {labels.dtype} {labels.shape}, expected uint8 "
                        f"{(n,)} in 0..{N_CLASSES - 1}")
    x = images.reshape(n, -1).astype(np.float32) / np.float32(255)
    return x, labels.astype(np.int32)


def _run(cmd: list[str], cwd: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError as e:
        raise DataError(f"`{cmd[0]}` is not available ({e}); Fashion-MNIST comes from the Debian "
                        f"package {PACKAGE}, which needs apt and dpkg") from e


def _failed(cmd: list[str], proc: subprocess.CompletedProcess) -> str:
    return f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-2000:]}"


def _download_deb(tmp: str) -> str:
    cmd = ["apt-get", "download", PACKAGE]
    proc = _run(cmd, tmp)
    if proc.returncode != 0:
        if os.geteuid() != 0:
            raise DataError(_failed(cmd, proc) + "\nRun `sudo apt-get update` once, then retry.")
        update = _run(["apt-get", "update"], tmp)
        if update.returncode != 0:
            raise DataError(_failed(["apt-get", "update"], update))
        proc = _run(cmd, tmp)
        if proc.returncode != 0:
            raise DataError(_failed(cmd, proc))
    debs = glob.glob(os.path.join(tmp, "*.deb"))
    if len(debs) != 1:
        raise DataError(f"`{' '.join(cmd)}` left {debs or 'no .deb'} in {tmp}, expected one")
    return debs[0]


def fetch() -> Path:
    """Get the package's four files into ``<data_dir>/fashion-mnist/`` with ``apt-get download``
    and ``dpkg -x`` (no root needed); returns the directory `load` will read, which is the system
    one if the package is installed. Does nothing if verified files are already found."""
    try:
        d = find("train")
        if d == find("test"):
            for name in SHA256:
                verify_sha256(d / name, SHA256[name])
            return d
    except DataError:
        pass
    dest = data_dir() / SUBDIR
    with tempfile.TemporaryDirectory(prefix="dlmodels-fashion-mnist-") as tmp:
        deb = _download_deb(tmp)
        extracted = os.path.join(tmp, "extracted")
        cmd = ["dpkg", "-x", deb, extracted]
        proc = _run(cmd, tmp)
        if proc.returncode != 0:
            raise DataError(_failed(cmd, proc))
        for name, sha in SHA256.items():
            found = glob.glob(os.path.join(extracted, "**", name), recursive=True)
            if len(found) != 1:
                raise DataError(f"{os.path.basename(deb)} holds {len(found)} copies of {name}, "
                                "expected one")
            verify_sha256(found[0], sha)
            with atomic_path(dest / name) as out:
                shutil.copyfile(found[0], out)
    return dest
