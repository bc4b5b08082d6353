"""The whole default job (`train.py` on the embedded synthetic dataset, same seed) with and without the CPU speed
path that `train.py` applies outside the model, `--cpu_word_dropout` (training_msa/cpu_dropout.py). Variants alternate
within each round (fresh processes), so a drift of the machine's speed hits them alike; the table gives the median
train_runtime per variant, its ratio to "none", and the test MAE. (Issue #32 also measured glibc allocator tuning
this way, with the checkout of commit a30f5a6: no gain on this job, so it was removed; benchmarks/RESULTS.md.)

    python benchmarks/cpu_plugins_default_job.py --rounds 2
"""

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"none": ["--cpu_word_dropout", "false"], "word dropout": ["--cpu_word_dropout", "true"]}


def run(flags: list[str], extra: list[str]) -> dict[str, float]:
    """One `train.py` process; its train_runtime (s), wall time (s) and test MAE."""
    with tempfile.TemporaryDirectory() as output_dir:
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "train.py", "--output_dir", output_dir, "--disable_tqdm", "true",
                                 *flags, *extra], cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
    log = result.stdout + result.stderr
    if result.returncode != 0:
        raise SystemExit(f"train.py {' '.join(flags)} failed:\n{log[-3000:]}")
    runtime = float(re.findall(r"'train_runtime': '?([0-9.]+)", log)[-1])
    mae = float(re.findall(r"^\s*MAE\s+([0-9.]+)", log, re.MULTILINE)[-1])
    return {"train_runtime": runtime, "wall": wall, "mae": mae}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--train_args", nargs=argparse.REMAINDER, default=[],
                        help="further train.py flags for every run (e.g. --max_steps 5 for a dry run)")
    args = parser.parse_args(argv)
    results = {name: [] for name in args.variants}
    for round_index in range(args.rounds):
        order = args.variants if round_index % 2 == 0 else args.variants[::-1]
        for name in order:
            results[name].append(run(VARIANTS[name], args.train_args))
            print(f"round {round_index + 1} {name}: {results[name][-1]}", flush=True)
    baseline = statistics.median(r["train_runtime"] for r in results.get("none", results[args.variants[0]]))
    rows = []
    print("\n| variant | train_runtime (median, s) | runs | speed-up vs none | test MAE |")
    print("|---|---|---|---|---|")
    for name, runs in results.items():
        runtime = statistics.median(r["train_runtime"] for r in runs)
        rows.append({"variant": name, "train_runtime": runtime, "speedup": baseline / runtime,
                     "mae": [r["mae"] for r in runs]})
        runtimes = ", ".join(f"{r['train_runtime']:.1f}" for r in runs)
        maes = ", ".join(f"{r['mae']:.4f}" for r in runs)
        print(f"| {name} | {runtime:.1f} | {runtimes} | {baseline / runtime:.2f}x | {maes} |")
    return rows


if __name__ == "__main__":
    main()
