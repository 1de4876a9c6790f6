"""Running experiments: config overrides from the command line, run directories, JSON records.

An experiment is a module of the ``experiments`` package that defines a frozen dataclass
``Config`` and ``main(config, run_dir) -> dict``; its docstring's first line describes it.
``run(name, overrides)`` makes ``runs/<name>/<timestamp>/``, writes ``config.json``, calls
``main`` (which writes ``metrics.jsonl`` and plots there) and writes the returned dict to
``results.json``.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import json
import os
import pkgutil
import types
import typing
from typing import Any

import numpy as np


def available() -> dict[str, str]:
    """``{name: one-line description}`` of every experiment."""
    from dlmodels import experiments

    out = {}
    for info in sorted(pkgutil.iter_modules(experiments.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"dlmodels.experiments.{info.name}")
        if hasattr(module, "Config") and hasattr(module, "main"):
            out[info.name] = (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else ""
    return out


def load(name: str) -> types.ModuleType:
    """The experiment module called ``name``; an unknown name lists the valid ones."""
    names = available()
    if name not in names:
        raise SystemExit(f"unknown experiment {name!r}; available: {', '.join(names)}")
    return importlib.import_module(f"dlmodels.experiments.{name}")


def _convert(text: str, kind: Any, name: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if text.lower() in ("none", "null") and len(options) < len(typing.get_args(kind)):
            return None
        errors = []
        for option in options:
            try:
                return _convert(text, option, name)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError("; ".join(errors))
    if origin is tuple:
        args = typing.get_args(kind)
        item = args[0] if args else str
        parts = [p for p in text.replace("(", "").replace(")", "").split(",") if p.strip()]
        return tuple(_convert(p.strip(), item, name) for p in parts)
    if origin is typing.Literal:
        if text not in typing.get_args(kind):
            raise ValueError(f"--{name} must be one of {typing.get_args(kind)}, got {text!r}")
        return text
    if kind is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"--{name} expects true/false, got {text!r}")
    if kind in (int, float, str):
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"--{name} expects {kind.__name__}, got {text!r}") from None
    raise ValueError(f"--{name}: cannot parse a value of type {kind}")


def parse_overrides(config_cls: type, args: list[str]) -> dict[str, Any]:
    """``["--epochs", "3", "--hidden=256,128"]`` -> ``{"epochs": 3, "hidden": (256, 128)}``,
    type-checked against ``config_cls``'s fields. Unknown keys raise ``ValueError`` listing the
    valid ones."""
    hints = typing.get_type_hints(config_cls)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ValueError(f"expected --key value, got {arg!r}")
        key, _, value = arg[2:].partition("=")
        if not _:
            if i + 1 >= len(args):
                raise ValueError(f"--{key} needs a value")
            value, i = args[i + 1], i + 1
        key = key.replace("-", "_")
        if key not in fields:
            raise ValueError(f"unknown option --{key} for {config_cls.__module__}; valid: "
                             + ", ".join(f"--{f}" for f in sorted(fields)))
        out[key] = _convert(value, hints[key], key)
        i += 1
    return out


def to_jsonable(x: Any) -> Any:
    """Numbers, arrays, tuples and dataclasses as plain JSON values."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return to_jsonable(dataclasses.asdict(x))
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, (np.ndarray, np.generic)) or hasattr(x, "__array__"):
        a = np.asarray(x)
        return a.item() if a.ndim == 0 else a.tolist()
    return x


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically (temporary file, then rename)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(to_jsonable(obj), f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


class MetricsLog:
    """``log(**record)`` appends ``record`` as one JSON line to ``run_dir/metrics.jsonl``, flushed at
    once so that a run that dies keeps what it logged (arrays and numpy scalars as plain values);
    ``close()``, or use it as a context manager."""

    def __init__(self, run_dir: str | os.PathLike, name: str = "metrics.jsonl"):
        self.path = os.path.join(run_dir, name)
        self._file = open(self.path, "w")

    def __call__(self, **record: Any) -> None:
        self._file.write(json.dumps(to_jsonable(record)) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "MetricsLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def new_run_dir(name: str, root: str | os.PathLike = "runs") -> str:
    """``<root>/<name>/<YYYYmmdd-HHMMSS>`` (suffixed if taken), created."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join(root, name, stamp)
    k = 1
    while os.path.exists(path):
        path, k = os.path.join(root, name, f"{stamp}-{k}"), k + 1
    os.makedirs(path)
    return path


def run(name: str, overrides: list[str] | dict | None = None, *, root: str = "runs",
        run_dir: str | None = None) -> tuple[str, dict]:
    """Run experiment ``name`` with ``overrides``; returns ``(run_dir, results)``."""
    module = load(name)
    if isinstance(overrides, dict):
        changes = overrides
    else:
        changes = parse_overrides(module.Config, list(overrides or []))
    config = dataclasses.replace(module.Config(), **changes)
    run_dir = run_dir or new_run_dir(name, root)
    os.makedirs(run_dir, exist_ok=True)
    write_json(os.path.join(run_dir, "config.json"), {"experiment": name, **dataclasses.asdict(config)})
    results = module.main(config, run_dir)
    write_json(os.path.join(run_dir, "results.json"), results)
    return run_dir, results
