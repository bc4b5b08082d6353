"""Run `train.py` once per seed and report mean ± std of every test metric (MMSA reports seeds 1111-1115).

    python -m training_msa.multiseed --seeds 1111 1112 1113 1114 1115 -- --model self_mm --output_dir runs/self-mm

Each seed trains into `<output_dir>/seed-<seed>`; a seed whose `model/test_results.json` already exists is
not run again, so an interrupted sweep resumes where it stopped. `multiseed_run.json` records the train.py arguments,
and each seed's `msa_run.json` what it was made from (data content included): a rerun with other arguments, or on data
whose content changed, into the same folder is refused. The summary is printed and written to
`<output_dir>/multiseed_results.json`.
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from dataset_scripts.atomic_write import write_text_atomic

TRAIN_SCRIPT = Path(__file__).resolve().parents[1] / "train.py"


def _option(arguments: list[str], name: str) -> str | None:
    for index, argument in enumerate(arguments):
        if argument == f"--{name}" and index + 1 < len(arguments):
            return arguments[index + 1]
        if argument.startswith(f"--{name}="):
            return argument.split("=", 1)[1]
    return None


def summarize(results: dict[int, dict[str, float]]) -> dict[str, dict[str, float]]:
    """{metric: {"mean", "std"}} over seeds (sample std; 0 for a single seed)."""
    metrics = sorted(set().union(*(r.keys() for r in results.values())))
    summary = {}
    for metric in metrics:
        values = [r[metric] for r in results.values() if isinstance(r.get(metric), (int, float))]
        if values:
            summary[metric] = {"mean": statistics.mean(values),
                               "std": statistics.stdev(values) if len(values) > 1 else 0.0}
    return summary


def _read_results(path: Path) -> dict | None:
    """A finished seed's metrics; None when the file is missing or unreadable (then the seed runs again)."""
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        print(f"[multiseed] {path} is unreadable ({error}): running that seed again", flush=True)
        return None
    return metrics if isinstance(metrics, dict) else None


def expected_run_record(train_arguments: list[str]) -> dict:
    """The run record (`training_msa.run_fingerprint`) that train.py makes of these arguments: the data is loaded and
    hashed, nothing is trained or written."""
    spec = importlib.util.spec_from_file_location("msa_hub_train_script", TRAIN_SCRIPT)
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    return json.loads(json.dumps(train.load_run(train_arguments)[2], default=str))  # as written and read back


def refuse_other_inputs(seed_dir: Path, expected: dict) -> None:
    """A finished seed is reused only when its run record is this sweep's (same model, config and data content)."""
    from .run_fingerprint import RUN_FILE, differences

    try:
        recorded = json.loads((seed_dir / RUN_FILE).read_text())
    except (OSError, ValueError):
        recorded = None
    changed = [f"{RUN_FILE} (missing or unreadable)"] if not isinstance(recorded, dict) else differences(recorded,
                                                                                                           expected)
    if changed:
        raise ValueError(f"{seed_dir} was trained from other inputs than this sweep's ({', '.join(changed[:8])} "
                         "differ): its results would be mixed with these. Pass another --output_dir.")


def run_in_subprocess(arguments: list[str], launcher: list[str] | None = None) -> int:
    """One seed's train.py in a fresh interpreter (its own seeds, threads and memory); returns the exit code."""
    command = [*(launcher or [sys.executable]), str(TRAIN_SCRIPT), *arguments]
    print(f"[multiseed] {' '.join(command)}", flush=True)
    return subprocess.run(command, env=os.environ.copy()).returncode


def run_seeds(seeds: list[int], train_arguments: list[str], launcher: list[str] | None = None,
              runner: Callable[[list[str]], int] | None = None) -> dict:
    """Every seed not finished yet, through `runner(train.py arguments) -> exit code` (default: a subprocess
    per seed, `launcher` e.g. ["accelerate", "launch"]); a failed seed is reported and the sweep goes on."""
    if _option(train_arguments, "seed") is not None:
        raise ValueError("Give seeds with --seeds, not --seed in the train.py arguments.")
    output_dir = Path(_option(train_arguments, "output_dir") or "outputs/multiseed")
    base = [a for i, a in enumerate(train_arguments)
            if not (a.startswith("--output_dir") or (i > 0 and train_arguments[i - 1] == "--output_dir"))]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {seeds}: a seed appears twice (each seed is one run).")
    from .model_card import redact_arguments

    # the arguments as recorded: no credential is written (a --hub_token's value is not a setting)
    record_file, record = output_dir / "multiseed_run.json", {"train_arguments": redact_arguments(base)}
    earlier = _read_results(record_file)
    if earlier is not None and earlier != record and any(output_dir.glob("seed-*")):
        raise ValueError(f"{output_dir} holds seeds trained with other train.py arguments ({earlier['train_arguments']}"
                         f" vs {record['train_arguments']}): their results would be mixed with these. Pass another "
                         "--output_dir.")
    write_text_atomic(record_file, json.dumps(record, indent=2))
    results, failures, expected = {}, {}, None
    for seed in seeds:
        seed_dir = output_dir / f"seed-{seed}"
        result_file = seed_dir / "model" / "test_results.json"
        previous = _read_results(result_file)
        if previous is not None:
            expected = expected or expected_run_record(base)  # once, when a finished seed is found
            refuse_other_inputs(seed_dir, expected)
            results[seed] = previous
            continue
        arguments = [*base, "--seed", str(seed), "--output_dir", str(seed_dir)]
        print(f"[multiseed] seed {seed}", flush=True)
        returncode = runner(arguments) if runner is not None else run_in_subprocess(arguments, launcher)
        finished = _read_results(result_file)
        if returncode != 0 or finished is None:
            failures[seed] = f"exit code {returncode}"  # reported, the sweep goes on
            continue
        results[seed] = finished
    report = {"seeds": seeds, "results": results, "failures": failures, "summary": summarize(results)}
    write_text_atomic(output_dir / "multiseed_results.json", json.dumps(report, indent=2))
    return report


def main(argv: list[str] | None = None, runner: Callable[[list[str]], int] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     usage="python -m training_msa.multiseed --seeds S [S ...] -- TRAIN_ARGS")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1111, 1112, 1113, 1114, 1115])
    arguments = sys.argv[1:] if argv is None else argv
    split = arguments.index("--") if "--" in arguments else len(arguments)
    options = parser.parse_args(arguments[:split])
    report = run_seeds(options.seeds, arguments[split + 1:], runner=runner)
    print(f"\nTest metrics over seeds {sorted(report['results'])} (mean ± std)")
    for metric, value in report["summary"].items():
        print(f"{metric:<16} {value['mean']:.4f} ± {value['std']:.4f}")
    if report["failures"]:
        print(f"failed seeds: {report['failures']}")
        sys.exit(1)


if __name__ == "__main__":
    main()
