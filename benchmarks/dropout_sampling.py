"""Two CPU fast paths of Semi-IIN training, measured on their own:
1. one dropout call (forward, plus backward where the tensor needs a gradient), PyTorch's `F.dropout` vs
   `word_dropout`, at the tensor sizes of a Semi-IIN step, interleaved in one process;
2. minor page faults per default-job training step with and without `keep_freed_cpu_memory_for_reuse`, each in a
   fresh interpreter (the allocator setting is process-wide).

    python benchmarks/dropout_sampling.py [--rounds 6]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from modeling_msa.msa_utils import word_dropout  # noqa: E402

# (shape, rate, needs a gradient): official audio input dropout, feed-forward and residual dropouts, MOSI text input
CALLS = [((32, 800, 1024), 0.5, False), ((32, 252, 512), 0.2, True), ((32, 252, 128), 0.2, True),
         ((32, 50, 768), 0.5, False)]

FAULTS_CHILD = r"""
import resource, sys
sys.path[:0] = [sys.argv[2], sys.argv[2] + "/benchmarks"]
import torch
from training_msa.runtime import keep_freed_cpu_memory_for_reuse
applied = sys.argv[1] == "1" and keep_freed_cpu_memory_for_reuse()
import mfu
model, optimizer = mfu.build(mfu.SHAPES["default_job"], "cpu", 0.1)
inputs = mfu.random_batch(mfu.SHAPES["default_job"], 32, "cpu")
for _ in range(3):
    mfu.train_step(model, optimizer, inputs)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
seconds = [mfu.train_step(model, optimizer, inputs) for _ in range(5)]
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5
print(applied, faults, sorted(seconds)[2])
"""


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
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "LD_PRELOAD"}
    print("\n| allocator | minor page faults per step | step (s, median of 5) |")
    print("|---|---|---|")
    for tuned in ("0", "1", "0", "1"):
        result = subprocess.run([sys.executable, "-c", FAULTS_CHILD, tuned, str(ROOT)], capture_output=True,
                                text=True, env=environment, check=True)
        applied, faults, step = result.stdout.split()
        label = "kept for reuse" if applied == "True" else "glibc defaults"
        print(f"| {label} | {float(faults):,.0f} | {float(step):.3f} |")


if __name__ == "__main__":
    main()
