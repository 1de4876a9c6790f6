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
    """Whether the experiments that train K seeds of a convolutional network one run after another
    on the CPU (gan_mnist's DCGAN, translation_invariance) should instead call ``fit(...,
    seeds=...)``: True off the CPU, and on the CPU only once ``reuse_freed_memory()`` has been
    applied in this process. They keep their per-seed runs on the CPU so that reruns reproduce
    their committed reference runs (each seed with its own data order).

    ``fit(..., seeds=...)`` itself is no longer slower there: on the CPU the trainer runs a
    convolutional step's K members one after another inside the one program
    (``make_vmapped_train_steps(members="auto")``). Quiet 2-core CPU, sequential / one program,
    medians of per-round ratios: 8 LeNet-5 seeds (B = 128) 1.03x [1.00-1.06]; 4 DCGAN seeds of
    gan_mnist (B = 64) 1.01x [0.99-1.02]; 2 seeds of the dropout experiment's convnet 1.02-1.23x.
    Vmapped instead (with ``dlmodels.nn.conv``'s seed rule) they were 0.70-0.89x, and jax's
    grouped convolution 0.2-0.4x. ``reuse_freed_memory()`` had seemed to close the vmapped gap
    (1.06-1.08x), but it did so by slowing the single runs: with one malloc arena 4 single DCGAN
    steps took 121 ms instead of 96 ms.
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
    heap, and threads share one arena. Measured on a quiet 2-core CPU (training steps, every side
    in the same process): the reduced AlexNet's step 148 -> 127 ms (its 4096x4096 dense layers'
    buffers; one arena is what helps, no-mmap alone does not), but LeNet-5's 10.6 -> 11.6 ms and
    a single DCGAN step 24 -> 30 ms. Hence opt-in. Returns False (and does nothing) where the C
    library is not glibc."""
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
