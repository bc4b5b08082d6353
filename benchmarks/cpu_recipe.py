"""Training-step time of the embedded default job's Semi-IIN on CPU: attention dropout 0.1 (a math path with a
B×H×T×T dropout mask) vs 0 (SDPA's fused kernel), dropout masks from random words (`fast_cpu_dropout`) vs
PyTorch's `bernoulli_`, each at 1 and 2 threads, interleaved in one process so that the machine's load hits every
configuration alike. Prints a table of medians and ratios.

    python benchmarks/cpu_recipe.py [--rounds 5] [--batch 32] [--profile]
"""

import argparse
import itertools
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import mfu  # noqa: E402
from mfu import train_step as step  # noqa: E402

SHAPES = mfu.SHAPES["default_job"]


def batch(size: int, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    inputs = {}
    for name, (frames, dim) in SHAPES.items():
        inputs[f"{name}_features"] = torch.randn(size, frames, dim, generator=generator)
        mask = torch.ones(size, frames, dtype=torch.long)
        mask[size // 2:, frames // 2:] = 0  # as the synthetic data: lengths from half to full
        inputs[f"{name}_attention_mask"] = mask
    inputs["labels"] = torch.empty(size).uniform_(-3, 3, generator=generator)
    return inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--profile", action="store_true",
                        help="instead: torch.profiler table of two steps of the default recipe, 2 threads")
    args = parser.parse_args()
    from training_msa.runtime import keep_freed_cpu_memory_for_reuse

    keep_freed_cpu_memory_for_reuse()  # as train.py does on CPU
    inputs = batch(args.batch)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        torch.set_num_threads(2)
        model, optimizer = mfu.build(SHAPES, "cpu", 0.1)
        step(model, optimizer, inputs)
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            for _ in range(2):
                step(model, optimizer, inputs)
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
        return
    configurations = list(itertools.product((0.1, 0.0), (False, True), (1, 2)))
    models = {(dropout, fast): mfu.build(SHAPES, "cpu", dropout, fast_cpu_dropout=fast)
              for dropout, fast in itertools.product((0.1, 0.0), (False, True))}
    times = {configuration: [] for configuration in configurations}
    for dropout, fast, threads in configurations:  # warm-up
        torch.set_num_threads(threads)
        step(*models[(dropout, fast)], inputs)
    for _ in range(args.rounds):
        for dropout, fast, threads in configurations:
            torch.set_num_threads(threads)
            times[(dropout, fast, threads)].append(step(*models[(dropout, fast)], inputs))
    baseline = statistics.median(times[(0.1, False, 2)])
    print(f"Semi-IIN default-job shapes {SHAPES}, batch {args.batch}, median of {args.rounds} interleaved steps\n")
    print("| attention dropout | fast CPU dropout | threads | step (s) | samples/s | speed vs 0.1, PyTorch dropout, 2 threads |")
    print("|---|---|---|---|---|---|")
    for dropout, fast, threads in configurations:
        median = statistics.median(times[(dropout, fast, threads)])
        print(f"| {dropout} | {str(fast).lower()} | {threads} | {median:.3f} | {args.batch / median:.1f} | "
              f"{baseline / median:.2f}x |")


if __name__ == "__main__":
    main()
