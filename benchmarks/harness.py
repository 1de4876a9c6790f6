"""The benchmark runner every suite uses: timing, the environment record, result records, the ratio
table and the JSON report.

A suite module ``benchmarks.<suite>`` exposes ``main(argv: list[str] | None = None) -> int``, builds
its parser with :func:`make_parser` (``--repeats``, ``--warmup``, ``--quick``, ``--out``), measures
each case with :func:`time_fn`, or :func:`time_interleaved` to time the sides of a comparison in
alternation on a shared machine, and ends with :func:`print_table` and :func:`write_json`.

Ratios are always ``peer time / our time``: above 1 we are faster. "Ours" is the way the library
does it (e.g. K seeds as one vmapped program); "peer" is what it is compared with (K sequential
runs, another framework, a Python loop).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import jax

# reports go under the current directory, never inside the installed package
OUT_DIR = Path("runs") / "bench"

# (distribution name for the record, module to import); the optional ones are recorded if present.
_REQUIRED = (("jax", "jax"), ("jaxlib", "jaxlib"), ("flax", "flax"), ("optax", "optax"),
             ("numpy", "numpy"))
_OPTIONAL = (("torch", "torch"), ("equinox", "equinox"), ("dm-haiku", "haiku"))


class Timing(NamedTuple):
    """``median``: the median of ``times``, in seconds; ``times``: every timed call, in order."""

    median: float
    times: tuple[float, ...]


def time_fn(fn: Callable[..., Any], *args, warmup: int = 2, repeats: int = 7) -> Timing:
    """Call ``fn(*args)`` ``warmup`` times untimed (compilation, caches), then ``repeats`` times,
    each timed from the call until ``jax.block_until_ready`` of its result returns.

    The median is robust to the odd slow call on a shared machine; report it, keep ``times``.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return Timing(statistics.median(times), tuple(times))


def matmul_peak(quick: bool = False) -> tuple[Callable[[], Any], float]:
    """A zero-argument large float32 matmul (``[1024, 8192] @ [8192, 1024]``; tiny with ``quick``)
    and its flops: time it beside a suite's cases for the machine's attainable GFLOP/s."""
    import jax.numpy as jnp

    m, k = (128, 512) if quick else (1024, 8192)
    a = jax.random.normal(jax.random.PRNGKey(0), (m, k))
    b = jax.random.normal(jax.random.PRNGKey(1), (k, m))
    f = jax.jit(jnp.matmul)
    return (lambda: f(a, b)), 2.0 * m * k * m


def time_interleaved(fns: dict[str, Callable[[], Any]], *, warmup: int = 2,
                     repeats: int = 7, lead: int = 1) -> dict[str, Timing]:
    """Time several zero-argument functions in rounds, one timed call of each per round, so that a
    burst of load from elsewhere on a shared machine lands on all of them alike rather than on
    whichever ran then. Each call is timed as in :func:`time_fn`.

    ``lead`` untimed calls of the same function come right before each timed one, so that every
    timed call follows a call of its own side, as a step follows a step in a training loop, and
    not a call of another framework whose worker threads may still be spinning (or have gone to
    sleep). Measured on LeNet-5's step (``benchmarks/conv.py``, quiet 2-core CPU): with ``lead=0``
    our step took 12.9 ms after PyTorch's call against 11.7 ms after our trainer's, and
    PyTorch's 8.8 ms; with ``lead=1`` 11.5 and 8.4 ms. The order of the sides also rotates from
    round to round (round r starts with side r mod n), so that no side always follows the same
    one: with a fixed order and ``lead=1`` the side after PyTorch still lost ~10 %."""
    if repeats < 1 or warmup < 0 or lead < 0:
        raise ValueError(f"need repeats >= 1, warmup >= 0 and lead >= 0, got {repeats}, {warmup}, "
                         f"{lead}")
    for fn in fns.values():
        for _ in range(warmup):
            jax.block_until_ready(fn())
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn = fns[name]
            for _ in range(lead):
                jax.block_until_ready(fn())
            t0 = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - t0)
    return {name: Timing(statistics.median(t), tuple(t)) for name, t in times.items()}


class OtherLoad:
    """Context manager: how much CPU other processes used while the block ran, as a fraction of
    the machine (``share``: 0 = none, 1 = every core busy all the time), from ``/proc/stat``'s
    busy time less this process's own (``os.times``, its threads and waited-for children).

    The load average cannot say this: a benchmark that keeps both cores of a 2-core machine busy
    raises it to ~2 by itself. ``share`` is None where ``/proc/stat`` is missing (not Linux)."""

    share: float | None = None

    @staticmethod
    def _machine_busy() -> float | None:
        try:
            with open("/proc/stat") as f:
                fields = f.readline().split()
        except OSError:
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own_busy() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def __enter__(self) -> "OtherLoad":
        self._start = (self._machine_busy(), self._own_busy(), time.perf_counter())
        return self

    def __exit__(self, *exc) -> None:
        machine0, own0, wall0 = self._start
        machine1, own1, wall1 = self._machine_busy(), self._own_busy(), time.perf_counter()
        if machine0 is None or machine1 is None or wall1 <= wall0:
            return
        other = (machine1 - machine0) - (own1 - own0)
        self.share = max(0.0, other) / ((wall1 - wall0) * (os.cpu_count() or 1))


#: above this share of the CPUs taken by other processes during the run, no verdict
MAX_OTHER_SHARE = 0.10


def goal_row(name: str, ratio: float, quartiles, target: float, *, above: bool) -> dict:
    """A goal for :func:`print_goals` and the JSON report: ``ratio`` (a median of per-round
    ratios) against ``target``, met when at or ``above`` it (or at or below it)."""
    met = ratio >= target if above else ratio <= target
    return {"goal": name, "ratio": ratio, "q25_q75": list(quartiles or (ratio, ratio)),
            "target": f"{'>=' if above else '<='} {target}", "met": bool(met)}


def print_goals(goals: list[dict], other_share: float | None, *, quick: bool,
                file=None) -> None:
    """One line per goal: the ratio (median of the per-round ratios) with its quartiles, the
    target, and met / MISSED; no verdict on a loaded machine or for a ``--quick`` run."""
    loaded = other_share is not None and other_share > MAX_OTHER_SHARE
    share = "unknown" if other_share is None else f"{other_share:.0%}"
    print(f"goals (other processes took {share} of the CPUs during the run):", file=file)
    for g in goals:
        verdict = ("not judged (--quick)" if quick else
                   f"not judged (machine loaded: more than {MAX_OTHER_SHARE:.0%} of the CPUs "
                   "taken by other processes)" if loaded else "met" if g["met"] else "MISSED")
        q = g["q25_q75"]
        print(f"  {g['goal']}: {g['ratio']:.2f}x [{q[0]:.2f}-{q[1]:.2f}], target {g['target']}: "
              f"{verdict}", file=file)


def _version(module: str) -> str | None:
    try:
        return getattr(importlib.import_module(module), "__version__", "unknown")
    except Exception:  # not installed, or broken: either way not part of this record
        return None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def environment() -> dict:
    """Where the numbers were taken: device, platform, CPU count, library versions, date (UTC)."""
    devices = jax.devices()
    versions = {name: _version(module) for name, module in _REQUIRED}
    for name, module in _OPTIONAL:
        v = _version(module)
        if v is not None:
            versions[name] = v
    return {
        "backend": jax.default_backend(),
        "devices": [f"{d.platform}:{d.device_kind}" for d in devices],
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "platform": platform.platform(),
        "processor": _cpu_model() or platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "versions": versions,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmarked configuration: ``name`` and the ``shapes`` it runs at (layer sizes, batch,
    steps, ...), plus anything else needed to read it in ``details``."""

    name: str
    shapes: dict
    details: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Measurement:
    """How one side of a comparison ran (``label``) and its :class:`Timing`."""

    label: str
    timing: Timing


@dataclasses.dataclass(frozen=True)
class Result:
    """``ours`` against ``peer`` on ``case``; ``ratio = peer / ours`` (> 1: we are faster), the
    median of the per-round ratios (calls timed in the same round, :func:`time_interleaved`), so
    the headline always lies within its own quartiles; ``ratio_of_medians`` is the other reading.

    ``checks`` holds anything verified on the side, e.g. that both sides computed the same thing.
    """

    case: Case
    ours: Measurement
    peer: Measurement
    checks: dict = dataclasses.field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """The headline: :attr:`median_round_ratio`."""
        return self.median_round_ratio

    @property
    def ratio_of_medians(self) -> float:
        """``median(peer times) / median(our times)``: may fall outside the per-round quartiles
        when the machine's load drifts between rounds."""
        return self.peer.timing.median / self.ours.timing.median

    @property
    def round_ratios(self) -> tuple[float, ...]:
        """``peer / ours`` of the i-th calls, paired (empty if the counts differ). Meaningful when
        both were timed in the same rounds (:func:`time_interleaved`): their spread is the noise."""
        p, o = self.peer.timing.times, self.ours.timing.times
        return tuple(a / b for a, b in zip(p, o)) if len(p) == len(o) else ()

    def ratio_quartiles(self) -> tuple[float, float] | None:
        """The 25th and 75th percentiles of :attr:`round_ratios` (None without rounds)."""
        r = self.round_ratios
        if len(r) < 2:
            return (r[0], r[0]) if r else None
        q = statistics.quantiles(r, n=4, method="inclusive")
        return q[0], q[2]

    @property
    def median_round_ratio(self) -> float:
        """The headline: the median of :attr:`round_ratios` (the ratio of medians without rounds)."""
        r = self.round_ratios
        return statistics.median(r) if r else self.ratio_of_medians

    def summary(self) -> dict:
        """The headline numbers: median round ratio, its quartiles, the ratio of medians."""
        q = self.ratio_quartiles()
        return {"median_round_ratio": self.median_round_ratio,
                "round_ratio_q25_q75": list(q) if q else None,
                "ratio_of_medians": self.ratio_of_medians}

    def to_json(self) -> dict:
        return {"case": self.case.name, "shapes": self.case.shapes, "details": self.case.details,
                "ours": {"label": self.ours.label, "median_s": self.ours.timing.median,
                         "times_s": list(self.ours.timing.times)},
                "peer": {"label": self.peer.label, "median_s": self.peer.timing.median,
                         "times_s": list(self.peer.timing.times)},
                "ratio_peer_over_ours": self.ratio, "ratio_of_medians": self.ratio_of_medians,
                "round_ratios": list(self.round_ratios),
                "round_ratio_quartiles": self.ratio_quartiles(), "checks": self.checks}


def torch_device() -> str:
    """Where the PyTorch peers run: ``"cuda"`` when JAX runs on a GPU and PyTorch sees CUDA (so
    both sides use the same kind of device), else ``"cpu"``. Raises ImportError without torch."""
    import torch

    return "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"


def torch_environment() -> dict:
    """PyTorch's device and threading as the peers run them (device, threads, OMP wait policy,
    oneDNN), or ``{}`` without torch."""
    try:
        import torch
    except ImportError:
        return {}
    return {"device": torch_device(), "num_threads": os.cpu_count(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "mkldnn": bool(torch.backends.mkldnn.is_available())}


def format_shapes(shapes: dict) -> str:
    """``{"layers": (64, 32, 10), "batch": 32}`` -> ``"layers=64-32-10 batch=32"``."""
    def one(v):
        return "-".join(str(x) for x in v) if isinstance(v, (list, tuple)) else str(v)
    return " ".join(f"{k}={one(v)}" for k, v in shapes.items())


def format_table(title: str, results: Sequence[Result]) -> str:
    """A plain-text table: case, shapes, peer and our median times, ``peer / ours`` (the median
    of the per-round ratios) and its quartiles."""
    if not results:
        return f"{title}: no results"
    peer_label = results[0].peer.label
    ours_label = results[0].ours.label
    header = ["case", "shapes", f"{peer_label} (s)", f"{ours_label} (s)",
              f"ratio {peer_label}/{ours_label}", "per-round q25-q75"]

    def spread(r):
        q = r.ratio_quartiles()
        return f"{q[0]:.2f}-{q[1]:.2f}" if q else "-"

    rows = [[r.case.name, format_shapes(r.case.shapes), f"{r.peer.timing.median:.4f}",
             f"{r.ours.timing.median:.4f}", f"{r.ratio:.2f}x", spread(r)] for r in results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    line = "  ".join("-" * w for w in widths)
    out = [f"{title}: ratio = peer time / our time ({peer_label} / {ours_label}); "
           f"> 1 means ours ({ours_label}) is faster. Times are medians; the ratio is the median "
           f"of the per-round ratios (calls timed in the same round), its quartiles showing the "
           f"noise.",
           "  ".join(h.ljust(w) for h, w in zip(header, widths)), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(out)


def print_table(title: str, results: Sequence[Result], file=None) -> None:
    print(format_table(title, results), file=file or sys.stdout, flush=True)


def make_parser(suite: str, description: str) -> argparse.ArgumentParser:
    """The arguments every suite takes; a suite adds its own after."""
    p = argparse.ArgumentParser(prog=f"dlmodels bench {suite}", description=description)
    p.add_argument("--repeats", type=int, default=7, help="timed calls per measurement (median)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls first (compilation)")
    p.add_argument("--quick", action="store_true",
                   help="tiny shapes and 1 repeat: a smoke test of the suite, not a measurement")
    p.add_argument("--out", type=Path, default=None,
                   help=f"JSON report path (default ./{OUT_DIR}/{suite}.json)")
    return p


def write_json(suite: str, results: Sequence[Result], *, out: str | os.PathLike | None = None,
               config: dict | None = None, extra: dict | None = None) -> Path:
    """Write ``{"suite", "environment", "config", "results", ...extra}`` to ``out`` (default
    ``runs/bench/<suite>.json`` under the current directory) and return the path."""
    path = Path(out) if out is not None else OUT_DIR / f"{suite}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"suite": suite, "environment": environment(), "config": config or {},
               "ratio": "peer time / our time; > 1 means ours is faster",
               "results": [r.to_json() for r in results]}
    payload.update(extra or {})
    path.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    return path


def finish(suite: str, results: Sequence[Result], *, out: str | os.PathLike | None = None,
           config: dict | None = None, extra: dict | None = None,
           markdown: str | None = None) -> int:
    """`write_json` (and ``markdown``, a table, beside it as ``.md``), print where, and return
    the suite's exit status: 1 (with the failures on stderr) when ``extra["failed_checks"]`` is
    not empty, else 0."""
    path = write_json(suite, results, out=out, config=config, extra=extra)
    if markdown is not None:
        path.with_suffix(".md").write_text(markdown + "\n")
        print(f"wrote {path} and {path.with_suffix('.md')}")
    else:
        print(f"wrote {path}")
    failed = (extra or {}).get("failed_checks")
    if failed:
        print(f"FAILED: {failed}", file=sys.stderr)
        return 1
    return 0


def _json_default(x):
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
