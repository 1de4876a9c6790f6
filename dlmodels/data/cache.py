"""The local data cache: where it is, checksums, and writes that never leave half a file behind."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


class DataError(RuntimeError):
    """A data set is missing, corrupted, fails its checksum, or was asked for by a wrong name."""


def data_dir() -> Path:
    """The cache directory: ``$DLMODELS_DATA`` if set, else ``~/.cache/dlmodels`` (not created)."""
    env = os.environ.get("DLMODELS_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dlmodels"


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | os.PathLike, expected: str) -> None:
    """Raise `DataError` naming the path and both hashes unless the file's sha256 is ``expected``."""
    actual = sha256_file(path)
    if actual != expected:
        raise DataError(f"checksum mismatch for {path}: expected sha256 {expected}, got {actual}. "
                        "The file is corrupted or is not the expected one; delete it and fetch again.")


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; on success it is renamed onto ``dest``.

    ``os.replace`` within one directory is atomic, so ``dest`` is either absent, the old file, or
    the complete new one; on an exception the temporary file is removed.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a cache file is meant to be shared
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
