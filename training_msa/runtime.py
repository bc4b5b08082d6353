"""Process-level settings for training on CPU."""

import logging
import os
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
