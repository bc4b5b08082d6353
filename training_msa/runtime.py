"""Process-level settings for training on CPU."""

import logging
import os

import torch

logger = logging.getLogger(__name__)


def use_all_cpu_threads_when_alone() -> None:
    """`accelerate launch` (without `--cpu`) sets OMP_NUM_THREADS=1 in every process. A single process on a
    machine without an accelerator then uses one core; give it every core this process may run on."""
    launched_by_accelerate = "ACCELERATE_DYNAMO_BACKEND" in os.environ or "ACCELERATE_MIXED_PRECISION" in os.environ
    alone = int(os.environ.get("WORLD_SIZE", "1")) == 1
    if launched_by_accelerate and alone and os.environ.get("OMP_NUM_THREADS") == "1" and not torch.accelerator.is_available():
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if cores > 1:
            torch.set_num_threads(cores)
            logger.info("Single CPU process under accelerate: using %d threads instead of OMP_NUM_THREADS=1", cores)
