"""Process-level settings for training on CPU."""

import ctypes
import logging
import os
import sys
from pathlib import Path

import torch

logger = logging.getLogger(__name__)


def threads_set_by_the_launching_user() -> bool:
    """Whether OMP_NUM_THREADS was already set in the environment of the process that launched this one (the
    user's shell for `accelerate launch`), rather than written by accelerate's launcher (Linux: /proc)."""
    try:
        environment = Path(f"/proc/{os.getppid()}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(entry.startswith(b"OMP_NUM_THREADS=") for entry in environment)


def use_all_cpu_threads_when_alone() -> None:
    """`accelerate launch` (without `--cpu`) sets OMP_NUM_THREADS=1 in every process when the user set nothing. A
    single process on a machine without an accelerator then uses one core; give it every core this process may
    run on. A thread count the user chose (OMP_NUM_THREADS in the launching shell, or `python train.py` under any
    setting) is kept: on an idle 2-core machine 2 threads are 1.43x faster than 1 (benchmarks/RESULTS.md), but on a
    loaded one fewer threads can be faster."""
    launched_by_accelerate = "ACCELERATE_DYNAMO_BACKEND" in os.environ or "ACCELERATE_MIXED_PRECISION" in os.environ
    alone = int(os.environ.get("WORLD_SIZE", "1")) == 1
    if not (launched_by_accelerate and alone and os.environ.get("OMP_NUM_THREADS") == "1"):
        return
    if torch.accelerator.is_available() or threads_set_by_the_launching_user():
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cores > 1:
        torch.set_num_threads(cores)
        logger.info("Single CPU process under accelerate: using %d threads instead of OMP_NUM_THREADS=1 (set "
                    "OMP_NUM_THREADS before `accelerate launch` to choose)", cores)


def cpu_has_amx_bf16() -> bool:
    """Whether this CPU has AMX bf16 tile units (Intel Xeon 4th generation and later), where oneDNN's bf16 matmuls
    run several times faster than fp32 ones, and the OS lets this process use them."""
    capabilities = getattr(torch.cpu, "get_capabilities", None)  # torch >= 2.8
    if capabilities is not None:
        has_amx = bool(capabilities().get("amx_bf16", False))
    else:
        has_amx = bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())
    init_amx = getattr(torch.cpu, "_init_amx", None)  # asks Linux for the tile state (arch_prctl)
    return has_amx and (init_amx is None or bool(init_amx()))


# glibc's mallopt parameter numbers (malloc.h), and the trim threshold that turns trimming off (mallopt(3))
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_NEVER_TRIM = -1


def environment_without_allocator_choice(environment: dict[str, str] | None = None) -> dict[str, str]:
    """`environment` (default: this process's) without the variables that choose a malloc or its settings:
    LD_PRELOAD (jemalloc, tcmalloc, ...), MALLOC_* (MALLOC_MMAP_THRESHOLD_, MALLOC_ARENA_MAX, ...) and a
    GLIBC_TUNABLES that sets a glibc.malloc tunable. Benchmarks and tests start their children with it."""
    environment = os.environ if environment is None else environment
    return {name: value for name, value in environment.items()
            if not (name == "LD_PRELOAD" or name.startswith("MALLOC_")
                    or name == "GLIBC_TUNABLES" and "glibc.malloc." in value)}


def allocator_chosen_by_the_user(environment: dict[str, str] | None = None) -> bool:
    """Whether `environment` (default: this process's) chooses a malloc or its settings (the variables
    [`environment_without_allocator_choice`] drops)."""
    environment = os.environ if environment is None else environment
    return len(environment_without_allocator_choice(environment)) != len(environment)


def keep_freed_cpu_memory_for_reuse() -> bool:
    """glibc's malloc serves blocks above its mmap threshold (dynamic, 128 KiB to at most 32 MiB) with fresh
    mappings and returns freed memory at the top of the heap beyond its trim threshold to the system, so a CPU
    training step that allocates and frees the same activation tensors every step page-faults them in anew each
    time: 20,000-40,000 page faults per step of the default job, about 300,000 at MMSA's MOSI/MOSEI shapes, whose
    [32, 4, 500, 502] attention weights (128 MiB) are above any mmap threshold. Serving every block from the heap
    (no mmap) and never trimming it keeps the memory a step used in the process for the next one, as PyTorch's GPU
    caching allocator does. Against glibc's defaults: 30-120x fewer faults per step; at MOSI/MOSEI shapes a step
    1.55-1.6x as fast (1.35x against serving only blocks up to 32 MiB from the heap) for a 10-25% higher peak
    resident memory, flat over a run (`benchmarks/cpu_allocator.py`, benchmarks/RESULTS.md). The process keeps its
    peak memory until it ends. Skipped on non-glibc systems, with an accelerator, and when the user chose an
    allocator ([`allocator_chosen_by_the_user`]). Returns whether it applied."""
    if not sys.platform.startswith("linux") or torch.accelerator.is_available():
        return False
    if allocator_chosen_by_the_user():
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only (musl has no mallopt tuning)
    except (OSError, AttributeError):
        return False
    applied = libc.mallopt(_M_MMAP_MAX, 0) == 1
    applied &= libc.mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM) == 1
    return applied
