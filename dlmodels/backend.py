"""Choices that depend on the device JAX runs on: the XLA:CPU work-arounds, taken only on the CPU.

Each function takes ``backend`` (``jax.default_backend()`` when None: ``"cpu"``, ``"gpu"`` for
CUDA and ROCm, ``"tpu"``), so the same script runs unchanged under ``JAX_PLATFORMS=cpu`` and
``JAX_PLATFORMS=cuda`` and the choice is made in one place. The measurements behind each choice
are in ``benchmarks/RESULTS.md`` ("conv", "Two findings that matter more than the table").
"""

from __future__ import annotations

import jax

BACKENDS = ("cpu", "gpu", "tpu")


def name(backend: str | None = None) -> str:
    """``backend``, or ``jax.default_backend()`` when None; ValueError for an unknown name."""
    backend = jax.default_backend() if backend is None else backend
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    return backend


def conv_steps_per_call(default: int, backend: str | None = None) -> int:
    """``TrainConfig.steps_per_call`` for a network with convolutions: 1 on the CPU, ``default``
    elsewhere.

    XLA:CPU runs convolutions inside a ``while`` loop (the trainer's ``lax.scan`` over steps) up
    to 20x slower than the same step jitted alone (a 16-32 map convnet: 0.87 s vs 0.04 s per
    step; LeNet-5: 3x, 2-core CPU), so on the CPU each call makes one update without a loop.
    Elsewhere the loop saves a host round trip per step, the trainer's default (not yet measured
    on a GPU in this repository).
    """
    if default < 1:
        raise ValueError(f"steps_per_call must be >= 1, got {default}")
    return 1 if name(backend) == "cpu" else default


def vmap_conv_seeds(backend: str | None = None) -> bool:
    """Whether K seeds of a convolutional network should train as one vmapped program
    (``fit(..., seeds=...)``) rather than one run after another: True off the CPU, and on the
    CPU only once ``reuse_freed_memory()`` has been applied in this process.

    jax batches a convolution whose kernels are batched over seeds into a grouped convolution,
    which XLA:CPU runs ~6x slower per member than a single run. On the CPU the library's
    convolutions therefore run the K members as K ordinary convolutions (``dlmodels.nn.conv``'s
    batching rule), which brings the vmapped program close to, but not yet up to, K sequential
    runs (medians of per-round ratios sequential / vmapped, 2-core CPU at load 4-7, training steps
    through ``make_train_step``): LeNet-5, B=128, K=8: 0.85-0.89 (jax's grouped convolution: 0.33-
    0.40); gan_mnist's DCGAN, B=64, K=4: 0.81 (grouped: 0.30). What is left is memory: the vmapped
    step's temporaries (71 MB for LeNet-5 at K=8, 10 MB for one run) are above glibc's mmap
    threshold, so every call maps them afresh (25,000 page faults per step; one run's stay in the
    heap: none); with ``reuse_freed_memory()`` called before JAX starts, 0.99 [0.95-1.19] and
    1.07 [1.02-1.08] (``benchmarks/conv.py --seeds 8 --reuse-freed-memory``; without: 0.86
    [0.72-0.87] in the run beside it, load 5-6). On a
    GPU, cuDNN runs a grouped convolution as one kernel, so the vmapped program is expected to be
    the fast way (not yet measured in this repository).
    """
    return name(backend) != "cpu" or _freed_memory_reused


_freed_memory_reused = False


def reuse_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of giving it back to the system:
    one arena (``M_ARENA_MAX=1``), no ``mmap`` for large blocks (``M_MMAP_MAX=0``), no trimming
    (``M_TRIM_THRESHOLD`` 2^31 - 1). XLA:CPU allocates a program's temporaries on every call;
    blocks above glibc's mmap threshold (at most 32 MB) are mapped and unmapped each time, and the
    page faults of touching them again cost a K-seed vmapped LeNet-5 step ~15 % (see
    ``vmap_conv_seeds``). Process-wide, and effective only when called before JAX's first
    computation (the threads' arenas exist from then on). The price: the process keeps its peak
    heap. Returns False (and does nothing) where the C library is not glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    global _freed_memory_reused
    m_trim_threshold, m_mmap_max, m_arena_max = -1, -4, -8  # <malloc.h>
    _freed_memory_reused = bool(mallopt(m_arena_max, 1) and mallopt(m_mmap_max, 0)
                                and mallopt(m_trim_threshold, 2**31 - 1))
    return _freed_memory_reused


def matmul_rtol(cpu_rtol: float, backend: str | None = None) -> float:
    """The relative tolerance for two float32 computations of the same function to agree:
    ``cpu_rtol`` on the CPU, at least 1e-2 on a GPU and 5e-2 on a TPU.

    On the CPU float32 dots and convolutions round to float32 (unit roundoff 2^-24). JAX's default
    matmul precision lets a GPU (Ampere and later) multiply in TF32 (10-bit mantissa, unit roundoff
    2^-11 ~ 5e-4) and a TPU in one bfloat16 pass (2^-8 ~ 4e-3), as cuDNN and PyTorch's convolutions
    do by default, so two programs that order their sums differently agree only to ~1e-3 or ~1e-2
    there: still far below what a different function gives. (Bounds from the formats, not yet
    measured on a device in this repository.)
    """
    return max(cpu_rtol, {"cpu": 0.0, "gpu": 1e-2, "tpu": 5e-2}[name(backend)])
