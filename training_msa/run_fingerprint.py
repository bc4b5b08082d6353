"""What a run's output folder was made from, so that a rerun or resume never mixes two runs: `<output_dir>/msa_run.json`
records the model, its config flags, the data and the settings that shape the result. A folder holding a run made
from anything else is refused, naming what differs, unless the caller asks to replace it."""

import hashlib
import json
import shutil
from pathlib import Path

RUN_FILE = "msa_run.json"
# What a run writes into its output folder (besides RUN_FILE): a folder holding any of these holds a run.
RUN_OUTPUTS = ("checkpoint-*", "model", "plots", "stage-*", "runs", "trainer_state.json", "test_results.json")


def dataset_digest(dataset) -> dict:
    """Per split: rows, columns and a SHA-256 of the ids and labels (cheap: two Arrow columns), plus the feature
    widths. Another corpus, split or labelling, or features of another encoder, give another digest."""
    digest = {}
    for name, split in dataset.items():
        hasher = hashlib.sha256()
        for column in ("id", "label", "video_path"):
            if column in split.column_names:
                hasher.update(json.dumps(split.data.column(column).to_pylist(), default=str).encode())
        widths = {column: list(getattr(feature, "shape", ())) for column, feature in split.features.items()
                  if column.endswith("_features")}
        digest[name] = {"rows": split.num_rows, "columns": sorted(split.column_names), "widths": widths,
                        "sha256": hasher.hexdigest()}
    return digest


def run_outputs(folder: Path) -> list[str]:
    """The entries of `folder` that a run wrote (checkpoints, model, plots, stages), sorted."""
    return sorted({path.name for pattern in RUN_OUTPUTS for path in folder.glob(pattern)})


def differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two records."""
    keys = sorted(set(old) | set(new))
    found = []
    for key in keys:
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            found.append(f"{prefix}{key}")
    return found


def claim_output_dir(folder: str | Path, record: dict, overwrite: bool = False, write: bool = True,
                     flag: str = "--overwrite_output_dir") -> None:
    """Make `folder` this run's: refuse (SystemExit) a folder holding a run whose record differs from `record` unless
    `overwrite`, which removes that run's checkpoints, stages and plots first (the model folder is replaced when this
    run publishes); refuse run-like entries without a record in any case. Then write `record` (when `write`: the
    main process)."""
    folder = Path(folder)
    record = json.loads(json.dumps(record, default=str))  # the form it has once written and read back
    path = folder / RUN_FILE
    try:
        old = json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        old = {}
    outputs = run_outputs(folder)
    if old == record or not outputs:  # the same run, or nothing of another run's to lose
        pass
    elif old is None:  # not recorded as a run: it may be anything of the user's (e.g. their own plots/), never deleted
        raise SystemExit(f"{folder} holds {', '.join(outputs)} without a record of an msa-hub run ({RUN_FILE}): it is "
                         "not replaced, even with --overwrite_output_dir. Pass another --output_dir (or move those "
                         "entries away yourself).")
    elif not overwrite:
        changed = differences(old, record)
        what = (f"a run of model {old.get('model')!r} ({', '.join(outputs)}) made from other "
                f"inputs: {', '.join(changed[:8])}{' ...' if len(changed) > 8 else ''} differ")
        raise SystemExit(f"{folder} holds {what}. Resuming or training into it would mix two runs (checkpoints, "
                         f"model, metrics). Pass another --output_dir, or {flag} to replace that run.")
    elif write:
        for name in outputs:
            target = folder / name
            if name != "model" and target.is_dir():
                shutil.rmtree(target)
            elif name != "model":
                target.unlink()
    if write:
        folder.mkdir(parents=True, exist_ok=True)
        from dataset_scripts.atomic_write import write_text_atomic

        write_text_atomic(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


__all__ = ["RUN_FILE", "claim_output_dir", "dataset_digest", "differences", "run_outputs"]
