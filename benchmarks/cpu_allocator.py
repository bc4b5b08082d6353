"""Semi-IIN CPU training steps under three glibc malloc settings, each in fresh interpreters (the setting is
process-wide), the settings alternating round by round so that the machine's drift hits them alike:

- `glibc`: glibc's defaults (blocks above a dynamic 128 KiB-32 MiB threshold are fresh mappings, freed memory
  beyond 128 KiB at the heap's top goes back to the system);
- `32MiB`: the mmap threshold at its 32 MiB maximum and a 1 GiB trim threshold, set through glibc's own
  MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ (what `keep_freed_cpu_memory_for_reuse` did before blocks above
  32 MiB were served from the heap too);
- `tuned`: `training_msa.runtime.keep_freed_cpu_memory_for_reuse` as train.py applies it.

Per shapes and setting: the median step (forward, loss, backward, Adam) over every round's steps, the minor page
faults per step and the process's peak resident memory (median over rounds).

    python benchmarks/cpu_allocator.py [--shapes default_job official mosi mosei] [--rounds 2] [--steps 6]
                                       [--warm_up 4] [--attention_dropout 0.1] [--batch 32]
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from training_msa.runtime import environment_without_allocator_choice  # noqa: E402

SETTINGS = {
    "glibc": {},
    "32MiB": {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)},
    "tuned": {},
}

CHILD = r"""
import json, resource, sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/benchmarks"]
setting, shapes, attention_dropout, batch, warm_up, steps = sys.argv[2:]
from training_msa.runtime import keep_freed_cpu_memory_for_reuse
applied = setting == "tuned" and keep_freed_cpu_memory_for_reuse()
import mfu
model, optimizer = mfu.build(mfu.SHAPES[shapes], "cpu", float(attention_dropout))
inputs = mfu.random_batch(mfu.SHAPES[shapes], int(batch), "cpu")
for _ in range(int(warm_up)):  # the heap grows to its working size
    mfu.train_step(model, optimizer, inputs)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
seconds = [mfu.train_step(model, optimizer, inputs) for _ in range(int(steps))]
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"applied": applied, "seconds": seconds, "faults": (usage.ru_minflt - before) / int(steps),
                  "peak_mb": usage.ru_maxrss / 1024}))
"""


def run_child(setting: str, shapes: str, attention_dropout: float = 0.1, batch: int = 32, warm_up: int = 4,
              steps: int = 6) -> dict:
    """One fresh interpreter under `setting`: {"applied", "seconds" (per timed step), "faults" (minor page faults
    per step), "peak_mb"}."""
    environment = {**environment_without_allocator_choice(), **SETTINGS[setting]}
    command = [sys.executable, "-c", CHILD, str(ROOT), setting, shapes, str(attention_dropout), str(batch),
               str(warm_up), str(steps)]
    result = subprocess.run(command, capture_output=True, text=True, env=environment, check=True)
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    if measured["applied"] != (setting == "tuned"):
        raise RuntimeError(f"setting {setting}: keep_freed_cpu_memory_for_reuse applied={measured['applied']}")
    return measured


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=["default_job", "official", "mosi", "mosei"])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warm_up", type=int, default=4)
    parser.add_argument("--attention_dropout", type=float, default=0.1)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args(argv)
    rows = []
    print(f"batch {args.batch}, attention dropout {args.attention_dropout}, {args.rounds} rounds of fresh processes, "
          f"{args.steps} timed steps each after {args.warm_up}\n")
    print("| shapes | malloc setting | step (s, median) | step vs glibc | minor page faults per step | peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    for shapes in args.shapes:
        runs = {setting: [] for setting in args.settings}
        for _ in range(args.rounds):
            for setting in args.settings:
                runs[setting].append(run_child(setting, shapes, args.attention_dropout, args.batch, args.warm_up,
                                               args.steps))
        baseline = None  # the glibc row's step, when it is measured (it comes first)
        for setting in args.settings:
            step = statistics.median(s for run in runs[setting] for s in run["seconds"])
            faults = statistics.median(run["faults"] for run in runs[setting])
            peak = statistics.median(run["peak_mb"] for run in runs[setting])
            baseline = step if setting == "glibc" else baseline
            ratio = f"{baseline / step:.2f}x" if baseline else "-"
            rows.append({"shapes": shapes, "setting": setting, "step": step, "faults": faults, "peak_mb": peak})
            print(f"| {shapes} | {setting} | {step:.3f} | {ratio} | {faults:.0f} | {peak:.0f} |", flush=True)
    return rows


if __name__ == "__main__":
    main()
