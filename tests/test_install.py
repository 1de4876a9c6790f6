"""The clean install: the project installed non-editable into a fresh virtual environment puts only
``dlmodels`` (and its metadata) into site-packages, and its ``dlmodels`` command works from an
empty directory (no repository on the path): ``dlmodels run tour --help`` and
``dlmodels bench rnn --quick``.

The working tree's files (tracked, and untracked ones git does not ignore) are copied first, so the
build leaves nothing in the repository. The venv sees the system site-packages for the
dependencies (jax, optax, ...), as in ``pip install --no-deps --no-build-isolation``.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _sources(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, check=True, capture_output=True).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        src = ROOT / name
        if src.is_file():  # a tracked file deleted in the working tree is skipped
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                    reason="needs the git checkout")
def test_non_editable_install_into_a_fresh_venv(tmp_path):
    src, venv, empty = tmp_path / "src", tmp_path / "venv", tmp_path / "empty"
    src.mkdir()
    empty.mkdir()
    _sources(src)
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-build-isolation", str(src)], check=True, cwd=tmp_path)
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / \
        "site-packages"
    assert sorted(os.listdir(site)) == ["dlmodels", "dlmodels-0.1.0.dist-info"]
    assert {"experiments", "benchmarks"} <= set(os.listdir(site / "dlmodels"))

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(JAX_PLATFORMS="cpu", CI="1")

    def run(*args):
        done = subprocess.run(args, cwd=empty, env=env, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    # the installed copy is the one imported, not the repository
    where = run(str(python), "-c", "import dlmodels.experiments as e; print(e.__file__)")
    assert where.startswith(str(site)), where
    out = run(str(venv / "bin" / "dlmodels"), "run", "tour", "--help")
    assert "--epochs INT" in out and "(default 40)" in out and "--resume RUN_DIR" in out
    out = run(str(venv / "bin" / "dlmodels"), "bench", "rnn", "--quick")
    # the report lands under the current directory, which held nothing before
    assert os.listdir(empty) == ["runs"] and list((empty / "runs" / "bench").iterdir())
