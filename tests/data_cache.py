"""Shared by the data tests: an empty data cache for every test, the real one kept aside, and
helpers for faked downloads."""

import hashlib

import pytest

from dlmodels.data.cache import data_dir

REAL_CACHE = data_dir()  # imported before the fixture below points DLMODELS_DATA elsewhere


def sha(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Every test of a module importing this starts with an empty ``DLMODELS_DATA``."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("DLMODELS_DATA", str(folder))
    return folder


def fail_if_run(*args, **kwargs):
    raise AssertionError(f"unexpected subprocess.run({args})")
