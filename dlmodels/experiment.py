"""Running experiments: config overrides from the command line, run directories, JSON records.

An experiment is a module of the ``experiments`` package that defines a frozen dataclass
``Config`` and ``main(config, run_dir) -> dict``; its docstring's first line describes it, and
each ``Config`` field has a one-line description as a trailing ``# ...`` comment (read by
:func:`field_docs` from the installed source, shown by ``dlmodels run NAME --help``).
``run(name, overrides)`` makes ``runs/<name>/<timestamp>/``, writes ``config.json``, calls
``main`` (which writes ``metrics.jsonl`` and plots there) and writes the returned dict to
``results.json``.

Resuming: ``main`` runs each training phase as ``fit(..., run_dir=os.path.join(run_dir,
"<phase>"), resume=True)`` (with ``checkpoint_every`` in long phases), so calling it again on the
same run directory continues every phase from its newest checkpoint, and a finished phase returns
at once. ``run(name, overrides, run_dir=D, resume=True)`` rebuilds the config from
``D/config.json`` (overrides given again must agree with it) and calls ``main`` on ``D``.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import inspect
import io
import json
import math
import os
import pkgutil
import re
import textwrap
import tokenize
import types
import typing
from typing import Any

import numpy as np


def names() -> list[str]:
    """The experiments' names (modules of ``dlmodels.experiments``), without importing them."""
    from dlmodels import experiments

    return sorted(m.name for m in pkgutil.iter_modules(experiments.__path__)
                  if not m.name.startswith("_"))


def available() -> dict[str, str]:
    """``{name: one-line description}`` of every experiment."""
    out = {}
    for name in names():
        module = importlib.import_module(f"dlmodels.experiments.{name}")
        if hasattr(module, "Config") and hasattr(module, "main"):
            out[name] = (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else ""
    return out


def load(name: str) -> types.ModuleType:
    """The experiment module called ``name`` (only it is imported); an unknown name raises
    ``ValueError`` listing the valid ones."""
    if name not in names():
        raise ValueError(f"unknown experiment {name!r}; available: {', '.join(names())}")
    return importlib.import_module(f"dlmodels.experiments.{name}")


# ---------------------------------------------------------------------------------------------
# Field documentation: the trailing comment of each field of a Config dataclass.

def field_docs(config_cls: type) -> dict[str, str]:
    """``{field: description}`` from the trailing ``# ...`` comment(s) on each field's line(s) of
    ``config_cls``'s source (``inspect.getsource``, so it works from an installed package).
    Comments on lines of their own (section headings) are not field docs."""
    source = textwrap.dedent(inspect.getsource(config_cls))
    docs: dict[str, str] = {}
    depth, field, start_of_line, comments = 0, None, True, []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.INDENT:
            depth += 1
        elif tok.type == tokenize.DEDENT:
            depth -= 1
        elif tok.type == tokenize.NEWLINE:  # the end of a statement (a field and its default)
            if field is not None and comments:
                docs[field] = " ".join(comments)
            field, start_of_line, comments = None, True, []
        elif tok.type == tokenize.COMMENT:
            if field is not None:
                comments.append(tok.string.lstrip("#").strip())
        elif tok.type != tokenize.NL:
            if start_of_line and depth == 1 and tok.type == tokenize.NAME:
                field = tok.string
            start_of_line = False
    names = {f.name for f in dataclasses.fields(config_cls)}
    return {k: v for k, v in docs.items() if k in names}


def type_name(kind: Any) -> str:
    """How a field's type reads in ``--help``: ``int``, ``float,...``, ``int|none``."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return "|".join("none" if a is type(None) else type_name(a) for a in typing.get_args(kind))
    if origin is tuple:
        args = typing.get_args(kind)
        return f"{type_name(args[0]) if args else 'str'},..."
    if origin is typing.Literal:
        return "{" + ",".join(map(str, typing.get_args(kind))) + "}"
    return getattr(kind, "__name__", str(kind))


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) if value else "(empty)"
    if isinstance(value, str):
        return value if value else "''"
    return str(value)


def options_help(config_cls: type) -> list[str]:
    """One line per field of ``config_cls``: ``--name TYPE (default ...)  description``."""
    hints = typing.get_type_hints(config_cls)
    docs = field_docs(config_cls)
    defaults = config_cls()
    rows = [(f"--{f.name} {type_name(hints[f.name]).upper()}",
             f"(default {_show(getattr(defaults, f.name))})", docs.get(f.name, ""))
            for f in dataclasses.fields(config_cls)]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return [f"  {a:<{w0}}  {b:<{w1}}  {c}".rstrip() for a, b, c in rows]


# ---------------------------------------------------------------------------------------------
# Overrides and the checks made before any work.

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


# Checks by what a field's name means, made for every experiment before any work (each Config's
# __post_init__ adds its own). (pattern on the field name, test on each number, what it needs).
_AT_LEAST_ONE = (r"(.+_)?epochs|(.+_)?steps|(.+_)?batch_size|n_seeds|(.+_)?hidden(_size)?"
                 r"|channels|(eval|record)_every")
_RULES: tuple[tuple[str, Any, str], ...] = (
    (_AT_LEAST_ONE, lambda v: v >= 1, ">= 1"),
    (r"(.+_)?learning_rates?", lambda v: math.isfinite(v) and v > 0, "finite and > 0"),
    (r"n_.+|(.+_)?seeds?|weight_decay|(.+_)?clip_norms?|checkpoint_every", lambda v: v >= 0,
     ">= 0"),
    (r"dropout|momentum", lambda v: 0 <= v < 1, "in [0, 1)"),
)


def check_config(config: Any) -> None:
    """Refuse values no experiment can run with, by the field's name, before any work:
    epochs, steps, batch sizes, seed counts, layer sizes and ``*_every`` >= 1; learning rates
    finite and > 0; counts ``n_*``, seeds, weight decay, clip norms >= 0; dropout and momentum in
    [0, 1); every float finite; a ``dataset`` field names one of ``dlmodels.data.DATASETS``.
    Raises ``ValueError`` naming the option."""
    from dlmodels.data import DATASETS

    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        items = value if isinstance(value, tuple) else (value,)
        if f.name == "dataset" or f.name.endswith("_dataset"):
            if value not in DATASETS:
                raise ValueError(f"--{f.name} must name a data set, one of {', '.join(DATASETS)}; "
                                 f"got {value!r}")
        numbers = [v for v in items if isinstance(v, (int, float)) and not isinstance(v, bool)]
        for v in numbers:
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"--{f.name} must be finite, got {_show(value)}")
        for pattern, ok, need in _RULES:
            if re.fullmatch(pattern, f.name) and not all(ok(v) for v in numbers):
                raise ValueError(f"--{f.name} must be {need}, got {_show(value)}")


def _from_json(value: Any, kind: Any) -> Any:
    """A value read back from config.json as the field's type (lists -> tuples, ints -> floats)."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
        origin = typing.get_origin(kind)
    if origin is tuple and isinstance(value, list):
        args = typing.get_args(kind)
        return tuple(_from_json(v, args[0] if args else Any) for v in value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def make_config(module: types.ModuleType, changes: dict[str, Any]) -> Any:
    """``module.Config`` with ``changes``, its own checks and :func:`check_config` passed."""
    config = dataclasses.replace(module.Config(), **changes)
    check_config(config)
    return config


def saved_config(module: types.ModuleType, name: str, run_dir: str | os.PathLike,
                 changes: dict[str, Any] | None = None) -> Any:
    """The config saved in ``run_dir/config.json`` by a run of experiment ``name``; options in
    ``changes`` must agree with it. Raises ``ValueError`` saying what disagrees."""
    path = os.path.join(run_dir, "config.json")
    try:
        with open(path) as f:
            saved = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"--resume {run_dir}: no config.json there (not a run directory, or "
                         f"the run was killed before it started)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"--resume {run_dir}: config.json is not valid JSON ({e})") from None
    ran = saved.pop("experiment", name)
    saved.pop("mesh", None)  # the devices of that run; a resume may use another mesh
    if ran != name:
        raise ValueError(f"--resume {run_dir}: that is a run of {ran!r}, not {name!r}")
    hints = typing.get_type_hints(module.Config)
    unknown = set(saved) - set(hints)
    if unknown:
        raise ValueError(f"--resume {run_dir}: config.json has options this version of {name} "
                         f"does not know: {', '.join(sorted(unknown))}")
    config = make_config(module, {k: _from_json(v, hints[k]) for k, v in saved.items()})
    for key, value in (changes or {}).items():
        if getattr(config, key) != value:
            raise ValueError(f"--{key} {_show(value)} disagrees with the run being resumed "
                             f"({key}={_show(getattr(config, key))} in {path}); drop the option "
                             f"or start a new run")
    return config


# ---------------------------------------------------------------------------------------------
# JSON records and run directories.

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
    """Write ``obj`` as indented JSON, atomically (temporary file, then rename); with several
    processes only process 0 writes (the others compute the same)."""
    from dlmodels import distributed

    if not distributed.is_main():
        return
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(to_jsonable(obj), f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically; with several processes only process 0 writes."""
    from dlmodels import distributed

    if not distributed.is_main():
        return
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class MetricsLog:
    """``log(**record)`` appends ``record`` as one JSON line to ``run_dir/metrics.jsonl``, flushed
    at once so that a run that dies keeps what it logged (arrays and numpy scalars as plain values);
    ``close()``, or use it as a context manager.

    The file is rewritten from the start: a resumed run (``main`` called again on the same run
    directory) logs every record again, so its records must be a deterministic function of the
    config and seeds (no wall-clock times) for the resumed file to equal an uninterrupted run's.
    With several processes only process 0 writes the file; the others' records go nowhere."""

    def __init__(self, run_dir: str | os.PathLike, name: str = "metrics.jsonl"):
        from dlmodels import distributed

        self.path = os.path.join(run_dir, name)
        self._file = open(self.path if distributed.is_main() else os.devnull, "w")

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


def check_new_run_dir(run_dir: str | os.PathLike | None) -> None:
    """Refuse (``ValueError``) a run directory that already holds a run: the phases would resume
    from its checkpoints under another config."""
    if run_dir is not None and os.path.exists(os.path.join(run_dir, "config.json")):
        raise ValueError(f"{run_dir} already holds a run; continue it with --resume {run_dir} "
                         f"or choose a new run directory")


def run(name: str, overrides: list[str] | dict | None = None, *, root: str = "runs",
        run_dir: str | None = None, resume: bool = False) -> tuple[str, dict]:
    """Run experiment ``name`` with ``overrides``; returns ``(run_dir, results)``.

    ``resume=True`` continues the run in ``run_dir`` with the config saved there (``overrides``
    must agree with it). Otherwise ``run_dir`` (default: a new one under ``root``) must not hold
    a run already. Invalid options raise ``ValueError`` before anything is written.

    Training goes to the mesh of ``dlmodels.train.sharding.use_mesh`` around the call, if any;
    ``config.json`` records its shape as ``"mesh": {"data": 8}`` (``null`` for none). With several
    processes every process calls ``run`` with the same ``run_dir`` and process 0 writes.
    """
    from dlmodels import distributed
    from dlmodels.train import sharding

    module = load(name)
    changes = overrides if isinstance(overrides, dict) else \
        parse_overrides(module.Config, list(overrides or []))
    if resume:
        if run_dir is None:
            raise ValueError("resume=True needs the run_dir of the run to continue")
        config = saved_config(module, name, run_dir, changes)
    else:
        config = make_config(module, changes)
        check_new_run_dir(run_dir)
        if run_dir is None:  # process 0 names it for all
            run_dir = distributed.broadcast_str(new_run_dir(name, root)
                                                if distributed.is_main() else "")
        os.makedirs(run_dir, exist_ok=True)
        distributed.barrier("dlmodels run: run directory checked")  # before process 0 writes
        write_json(os.path.join(run_dir, "config.json"),
                   {"experiment": name, **dataclasses.asdict(config),
                    "mesh": sharding.describe(sharding.current_mesh())})
        distributed.barrier("dlmodels run: config.json written")
    results = module.main(config, run_dir)
    write_json(os.path.join(run_dir, "results.json"), results)
    return run_dir, results
