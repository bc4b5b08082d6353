"""What a run's output folder was made from, so that a rerun or resume never mixes two runs: `<output_dir>/msa_run.json`
records the model, its config flags, the data and the settings that shape the result. A folder holding a run made
from anything else is refused, naming what differs, unless the caller asks to replace it."""

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from dataset_scripts.arrow_cache import file_sha256

RUN_FILE = "msa_run.json"
# What a run writes into its output folder (besides RUN_FILE): a folder holding any of these holds a run.
RUN_OUTPUTS = ("checkpoint-*", "model", "plots", "stage-*", "runs", "trainer_state.json", "test_results.json")


class RunMismatchError(ValueError):
    """An output folder holds a run made from other inputs (or run-like entries of unknown origin)."""


def content_hash(split) -> str:
    """xxh3-128 of every column's values and list lengths, in row order (memory-mapped Arrow is hashed in place, a GB
    in well under a second), and of the SHA-256 of each file its `video_path` column names: other features, labels or
    clips with the same ids give another hash."""
    hasher = xxhash.xxh3_128()
    for name in sorted(split.column_names):
        hasher.update(name.encode())
        for chunk in split.data.column(name).chunks:
            _hash_array(hasher, chunk)
    if split._indices is not None:  # a selection of the table's rows
        for chunk in split._indices.column(0).chunks:
            _hash_array(hasher, chunk)
    if "video_path" in split.column_names:  # each file once: AMI's segments share their meeting's video
        for path in dict.fromkeys(split["video_path"]):
            hasher.update(f"{_file_digest(path)}\0".encode())
    return hasher.hexdigest()


def _hash_array(hasher, array: pa.Array) -> None:
    array = array.storage if isinstance(array, pa.ExtensionArray) else array
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type) or pa.types.is_fixed_size_list(array.type):
        hasher.update(pc.list_value_length(array).to_numpy(zero_copy_only=False).tobytes())
        _hash_array(hasher, array.flatten())
    elif pa.types.is_integer(array.type) or pa.types.is_floating(array.type) or pa.types.is_boolean(array.type):
        hasher.update(np.ascontiguousarray(array.to_numpy(zero_copy_only=False)))  # a missing value hashes as NaN
    else:
        hasher.update(json.dumps(array.to_pylist(), default=str).encode())


def _file_digest(path) -> str:
    try:
        if not Path(path).is_file():  # missing, or a device/FIFO that would be read without end
            return "<not a file>"
        return file_sha256(Path(path))
    except (OSError, TypeError):
        return "<unreadable>"  # the collator leaves such a clip out; it still counts as this input


def dataset_digest(dataset) -> dict:
    """Per split: rows, columns, feature widths and `content_hash`. Another corpus, split or labelling, or features of
    another encoder, give another digest."""
    digest = {}
    for name, split in dataset.items():
        widths = {column: list(getattr(feature, "shape", ())) for column, feature in split.features.items()
                  if column.endswith("_features")}
        digest[name] = {"rows": split.num_rows, "columns": sorted(split.column_names), "widths": widths,
                        "content": content_hash(split)}
    return digest


def run_outputs(folder: Path, patterns: tuple[str, ...] = RUN_OUTPUTS) -> list[str]:
    """The entries of `folder` that a run wrote (checkpoints, model, plots, stages), sorted."""
    return sorted({path.name for pattern in patterns for path in folder.glob(pattern)})


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
                     flag: str = "--overwrite_output_dir", record_file: str = RUN_FILE,
                     patterns: tuple[str, ...] = RUN_OUTPUTS) -> None:
    """Make `folder` this run's: refuse (`RunMismatchError`) a folder holding a run whose record differs from `record`
    unless `overwrite`, which removes that run's checkpoints, stages and plots first (the model folder is replaced when
    this run publishes); refuse run-like entries (`patterns`) without a record in any case. Then write `record` to
    `record_file` (when `write`: the main process)."""
    folder = Path(folder)
    record = json.loads(json.dumps(record, default=str))  # the form it has once written and read back
    path = folder / record_file
    try:
        old = json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        old = {}
    outputs = run_outputs(folder, patterns)
    if old == record or not outputs:  # the same run, or nothing of another run's to lose
        pass
    elif old is None:  # not recorded as a run: it may be anything of the user's (e.g. their own plots/), never deleted
        raise RunMismatchError(f"{folder} holds {', '.join(outputs)} without a record of an msa-hub run "
                               f"({record_file}): it is not replaced, even with {flag}. Pass another --output_dir (or "
                               "move those entries away yourself).")
    elif not overwrite:
        changed = differences(old, record)
        what = (f"a run of model {old.get('model')!r} ({', '.join(outputs)}) made from other "
                f"inputs: {', '.join(changed[:8])}{' ...' if len(changed) > 8 else ''} differ")
        raise RunMismatchError(f"{folder} holds {what}. Resuming or training into it would mix two runs (checkpoints, "
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


__all__ = ["RUN_FILE", "RunMismatchError", "claim_output_dir", "content_hash", "dataset_digest", "differences",
           "run_outputs"]
