"""Two CPU fast paths of Semi-IIN training, measured on their own:
1. one dropout call (forward, plus backward where the tensor needs a gradient), PyTorch's `F.dropout` vs
   `word_dropout`, at the tensor sizes of a Semi-IIN step, interleaved in one process;
2. minor page faults per default-job training step with and without `keep_freed_cpu_memory_for_reuse`, each in a
   fresh interpreter (the allocator setting is process-wide; `cpu_allocator.py`'s child, which compares more
   settings and shapes).

    python benchmarks/dropout_sampling.py [--rounds 6]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
import cpu_allocator  # noqa: E402
from modeling_msa.msa_utils import word_dropout  # noqa: E402

# (shape, rate, needs a gradient): official audio input dropout, feed-forward and residual dropouts, MOSI text input
CALLS = [((32, 800, 1024), 0.5, False), ((32, 252, 512), 0.2, True), ((32, 252, 128), 0.2, True),
         ((32, 50, 768), 0.5, False)]


def time_call(function, shape, rate, needs_grad) -> float:
    hidden = torch.randn(*shape, requires_grad=needs_grad)
    started = time.perf_counter()
    output = function(hidden, rate)
    if needs_grad:
        output.backward(torch.ones_like(output))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    samplers = {"PyTorch": lambda h, p: F.dropout(h, p, True), "words": word_dropout}
    print(f"{torch.get_num_threads()} threads, median of {args.rounds} interleaved calls after a warm-up\n")
    print("| tensor | rate | backward | PyTorch (ms) | words (ms) | speed-up |")
    print("|---|---|---|---|---|---|")
    for shape, rate, needs_grad in CALLS:
        times = {name: [] for name in samplers}
        for index in range(args.rounds + 1):
            for name, function in samplers.items():
                seconds = time_call(function, shape, rate, needs_grad)
                if index:
                    times[name].append(seconds)
        slow, fast = (statistics.median(times[name]) * 1e3 for name in samplers)
        print(f"| {'x'.join(map(str, shape))} | {rate} | {'yes' if needs_grad else 'no'} | {slow:.1f} | {fast:.1f} | "
              f"{slow / fast:.2f}x |")
    print("\n| allocator | minor page faults per step | step (s, median of 5) |")
    print("|---|---|---|")
    for setting in ("glibc", "tuned", "glibc", "tuned"):
        measured = cpu_allocator.run_child(setting, "default_job", warm_up=3, steps=5)
        label = "kept for reuse" if measured["applied"] else "glibc defaults"
        print(f"| {label} | {measured['faults']:,.0f} | {statistics.median(measured['seconds']):.3f} |")


if __name__ == "__main__":
    main()
