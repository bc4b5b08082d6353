"""Turn a folder of raw clips into a features dataset with a model's bundled encoders (resumable, multi-process).

    python -m processing_msa.extract_features DATA_DIR OUTPUT_DIR --model MODEL_DIR [--dataset custom] [--batch-size 8]
    torchrun --nproc_per_node 2 -m processing_msa.extract_features ...     # or accelerate launch -m ...

DATA_DIR is read with `load_msa_dataset(--dataset, DATA_DIR)`: "custom"/"sims" (label.csv + Raw/<video>/<clip>.mp4)
or "ami" (meeting videos + headset wavs cut into clips). MODEL_DIR holds a Semi-IIN with bundled encoders and its
processor (a folder written by `processing_msa.publish` / `save_hub_ready(..., processor=...)`).

Every `--shard-size` clips a Parquet shard is written atomically under OUTPUT_DIR/shards; a rerun skips clips
already in a shard (and those listed in OUTPUT_DIR/errors*.jsonl unless --retry-errors). A clip that fails
(corrupt file, no audio...) is logged and skipped. Clips go through the encoders `--batch-size` at a time (padded,
with masks). Under torchrun / accelerate, clip i belongs to rank i mod world size: each rank writes its own shards
(`<split>-r<rank>-<n>.parquet`) and error log (`errors.jsonl` for rank 0, `errors-r<rank>.jsonl` otherwise), so no
clip is extracted twice and any number of processes resumes any earlier run; rank 0 assembles the dataset. At the end OUTPUT_DIR/dataset is a
`save_to_disk` DatasetDict with text/audio/vision_features that `train.py --data_dir OUTPUT_DIR/dataset` reads.
"""

import argparse
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from datasets import Array2D, Dataset, DatasetDict, Features, Value, concatenate_datasets
from transformers import AutoModel, AutoProcessor

from dataset_scripts import load_msa_dataset
from dataset_scripts.atomic_write import atomic_path, staging_folder
from modeling_msa.modeling_encoders import encode_raw_inputs
from modeling_msa.msa_utils import MODALITIES

from .video_io import load_clip

logger = logging.getLogger(__name__)
KEPT_COLUMNS = ("id", "raw_text", "label", "label_T", "label_A", "label_V")


@torch.no_grad()
def encode_clip(model, inputs) -> dict[str, np.ndarray]:
    """Per-modality features [frames, dim] (padding removed) from the model's bundled encoders."""
    return encode_clips(model, inputs)[0]


@torch.no_grad()
def encode_clips(model, inputs) -> list[dict[str, np.ndarray]]:
    """`encode_clip` for a padded batch of clips (processor output for several clips): one dict per clip."""
    features, masks = dict.fromkeys(MODALITIES), {}
    encode_raw_inputs(model.encoders, features, masks, inputs, model.config)
    rows = len(masks[MODALITIES[0]])
    return [{f"{name}_features": features[name][row, masks[name][row].bool()].float().cpu().numpy()
             for name in features} for row in range(rows)]


def output_features(config) -> Features:
    columns = {
        "id": Value("string"), "raw_text": Value("string"), "label": Value("float32"), "label_T": Value("float32"),
        "label_A": Value("float32"), "label_V": Value("float32"),
    }
    for name in MODALITIES:
        columns[f"{name}_features"] = Array2D(shape=(None, getattr(config, f"{name}_feature_size")), dtype="float32")
    return Features(columns)


def _write_atomic(dataset: Dataset, path: Path) -> None:
    with atomic_path(path) as temporary:
        dataset.to_parquet(str(temporary))


def read_error_log(path: Path) -> list[dict]:
    """The records of `errors.jsonl`. A line that is not a JSON record (a write torn by a kill or a full disk) is
    skipped with a warning; a torn last line is cut off the file, so the next append starts on a fresh line."""
    if not path.is_file():
        return []
    content = path.read_bytes()
    records, offset = [], 0
    for line in content.splitlines(keepends=True):
        offset += len(line)
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or "id" not in record or not line.endswith(b"\n"):
                raise ValueError("not a complete record")
        except ValueError:
            logger.warning("%s: ignoring a damaged line at byte %d: %r", path, offset - len(line), line[:80])
            continue
        records.append(record)
    if content and not content.endswith(b"\n"):  # a torn last line: cut it, the file ends on a full line again
        with path.open("r+b") as handle:
            handle.truncate(content.rfind(b"\n") + 1)
    return records


def append_error(path: Path, record: dict) -> None:
    """One record as one line, written with a single write and flushed to disk."""
    with path.open("ab") as handle:
        handle.write((json.dumps(record) + "\n").encode())
        handle.flush()
        os.fsync(handle.fileno())


def _done_ids(shards: Path, output: Path, retry_errors: bool) -> set[str]:
    done = set()
    for shard in shards.glob("*.parquet"):
        done.update(pq.read_table(shard, columns=["id"]).column("id").to_pylist())
    for errors_file in sorted(output.glob("errors*.jsonl")):
        errors = read_error_log(errors_file)  # read (and repaired) even with retry_errors
        if not retry_errors:
            done.update(record["id"] for record in errors)
    return done


def _rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (torchrun / accelerate launch set RANK and WORLD_SIZE)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _barrier(world: int) -> None:
    """Wait for every rank (a gloo/NCCL group started here when launched with several processes)."""
    if world == 1:
        return
    import torch.distributed as dist

    started_here = not dist.is_initialized()
    if started_here:
        dist.init_process_group("gloo" if not torch.cuda.is_available() else "nccl")
    dist.barrier()
    if started_here:
        dist.destroy_process_group()  # a clean exit on every rank


RECORD_FILE = "extraction.json"


def _file_sha256(path: Path) -> str | None:
    """`file_sha256` of `path`, or None when there is no such file."""
    from dataset_scripts.arrow_cache import file_sha256

    return file_sha256(path) if path.is_file() else None


def extraction_record(model_dir: str, data_dir: str, dataset: str, source: DatasetDict) -> dict:
    """What an extraction is made from: the encoders' weights and config, label.csv's content and the clip index."""
    from training_msa.run_fingerprint import dataset_digest

    folder = Path(model_dir)
    return {"model": {name: _file_sha256(folder / name) for name in ("model.safetensors", "config.json",
                                                                      "processor_config.json")},
            "dataset": dataset, "label_csv": _file_sha256(Path(data_dir) / "label.csv"),
            "clips": dataset_digest(source)}


def claim_extraction(output: Path, record: dict, write: bool = True) -> None:
    """Refuse to resume into OUTPUT_DIR an extraction made with another model folder or another label.csv (its
    features would be mixed with these); a first run records what it is made from."""
    from training_msa.run_fingerprint import differences

    path = output / RECORD_FILE
    started = (output / "dataset").exists() or ((output / "shards").is_dir() and any((output / "shards").iterdir()))
    old = json.loads(path.read_text()) if path.is_file() else None
    if started and old != record:
        what = "an extraction without a record" if old is None else (
            "an extraction of other inputs (" + ", ".join(differences(old, record)[:6]) + " differ)")
        raise SystemExit(f"{output} holds {what}: resuming would mix features of two encoders or label sets. Pass a "
                         "new OUTPUT_DIR, or delete this one to start fresh.")
    if write:
        from dataset_scripts.atomic_write import write_text_atomic

        output.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def extract_features(
    data_dir: str, output_dir: str, model_dir: str, dataset: str = "custom", shard_size: int = 64,
    retry_errors: bool = False, progress: bool = True, batch_size: int = 8, trust_remote_code: bool = False,
) -> DatasetDict | None:
    """Extract every clip of DATA_DIR not extracted yet; returns the assembled dataset (None on ranks > 0)."""
    if batch_size < 1 or shard_size < 1:
        raise SystemExit(f"--batch-size ({batch_size}) and --shard-size ({shard_size}) must be at least 1.")
    rank, world = _rank_and_world()
    output, shards = Path(output_dir), Path(output_dir) / "shards"
    errors_file = output / ("errors.jsonl" if rank == 0 else f"errors-r{rank}.jsonl")
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu"
    import modeling_msa  # noqa: F401  (registers the models: the installed code reads the folder)

    model = AutoModel.from_pretrained(model_dir, trust_remote_code=trust_remote_code).eval().to(device)
    if set(getattr(model.config, "encoder_modalities", ())) != set(MODALITIES):
        raise SystemExit(f"{model_dir}: the model must bundle text, audio and vision encoders to extract features.")
    processor = AutoProcessor.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    features = output_features(model.config)
    source = load_msa_dataset(dataset, data_dir)
    claim_extraction(output, extraction_record(model_dir, data_dir, dataset, source))  # every rank, before its shards
    shards.mkdir(parents=True, exist_ok=True)
    done = _done_ids(shards, output, retry_errors)
    mine = {name: [row for index, row in enumerate(split) if index % world == rank and row["id"] not in done]
            for name, split in source.items()}  # by position in the corpus: the same split on every rank
    logger.info("rank %d/%d: %d clips to extract (%d already done in all)", rank, world,
                sum(len(rows) for rows in mine.values()), len(done))

    from tqdm.auto import tqdm

    bar = tqdm(total=sum(len(rows) for rows in mine.values()), disable=not progress or rank != 0,
               desc="extracting features", unit="clip")
    for split_name, rows in mine.items():
        buffer = []
        shard_index = len(list(shards.glob(f"{split_name}-r{rank:03d}-*.parquet")))

        def flush():
            nonlocal buffer, shard_index
            if buffer:
                _write_atomic(Dataset.from_list(buffer, features=features),
                              shards / f"{split_name}-r{rank:03d}-{shard_index:05d}.parquet")
                buffer, shard_index = [], shard_index + 1

        for start in range(0, len(rows), batch_size):
            decoded = []
            for row in rows[start:start + batch_size]:
                try:
                    decoded.append((row, load_clip(row, processor.fps, processor.sampling_rate)))
                except (ValueError, OSError, RuntimeError) as error:
                    _log_failure(errors_file, row, split_name, error)
            for row, encoded in _encode_batch(model, processor, decoded, errors_file, split_name, device):
                buffer.append({**{key: row.get(key) for key in KEPT_COLUMNS}, **encoded})
                if len(buffer) >= shard_size:
                    flush()
            bar.update(len(rows[start:start + batch_size]))
        flush()
    bar.close()
    _barrier(world)
    if rank != 0:
        return None
    return _assemble(output, shards, features)


def _log_failure(errors_file: Path, row: dict, split_name: str, error: Exception) -> None:
    append_error(errors_file, {"id": row["id"], "split": split_name, "error": str(error)})
    logger.warning("skipped %s: %s", row["id"], error)


def _encode_batch(model, processor, decoded: list, errors_file: Path, split_name: str, device: str):
    """(row, features) of the decoded clips, encoded together; when the batch fails, clip by clip, so that one
    clip the encoders refuse is logged and the others are kept."""
    if not decoded:
        return []

    def inputs_of(clips):
        batch = processor(text=[c["text"] for _, c in clips], audio=[c["audio"] for _, c in clips],
                          frames=[c["frames"] for _, c in clips])
        return {key: value.to(device) if hasattr(value, "to") else value for key, value in batch.items()}

    if len(decoded) > 1:
        try:
            return list(zip((row for row, _ in decoded), encode_clips(model, inputs_of(decoded))))
        except (ValueError, RuntimeError) as error:
            logger.warning("a batch of %d clips failed (%s): encoding them one by one", len(decoded), error)
    results = []
    for row, clip in decoded:
        try:
            results.append((row, encode_clip(model, inputs_of([(row, clip)]))))
        except (ValueError, OSError, RuntimeError) as error:
            _log_failure(errors_file, row, split_name, error)
    return results


def _assemble(output: Path, shards: Path, features: Features) -> DatasetDict:
    """OUTPUT/dataset (save_to_disk) from the shards; written next to it and renamed into place."""
    splits = {}
    for shard in sorted(shards.glob("*.parquet")):
        name = shard.name.split("-")[0]  # <split>-r<rank>-<n>.parquet (and <split>-<n>.parquet of earlier runs)
        splits.setdefault(name, []).append(str(shard))
    result = DatasetDict()
    for name, files in splits.items():
        split = concatenate_datasets([Dataset.from_parquet(f, features=features) for f in files])
        first = {}
        for index, clip_id in enumerate(split["id"]):
            first.setdefault(clip_id, index)
        if len(first) < len(split):  # a clip in two shards (e.g. copied folders): keep one
            logger.warning("%s: %d duplicate clip(s) dropped", name, len(split) - len(first))
            split = split.select(sorted(first.values()))
        result[name] = split
    staging = staging_folder(output, prefix=".dataset.")
    try:
        result.save_to_disk(staging)
        target = output / "dataset"
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return DatasetDict.load_from_disk(output / "dataset")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir")
    parser.add_argument("output_dir")
    parser.add_argument("--model", required=True, help="folder/Hub id of a Semi-IIN with encoders + processor")
    parser.add_argument("--dataset", default="custom", choices=("custom", "sims", "ami"))
    parser.add_argument("--shard-size", type=int, default=64, help="clips per Parquet shard")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per encoder forward pass")
    parser.add_argument("--retry-errors", action="store_true", help="extract clips that failed before again")
    parser.add_argument("--trust_remote_code", action="store_true",
                        help="run the model folder's own Python files (default: the installed msa-hub's code)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    result = extract_features(args.data_dir, args.output_dir, args.model, args.dataset, args.shard_size,
                              args.retry_errors, batch_size=args.batch_size, trust_remote_code=args.trust_remote_code)
    if result is not None:
        print(f"{Path(args.output_dir) / 'dataset'}: " + ", ".join(f"{k}={len(v)}" for k, v in result.items()))


if __name__ == "__main__":
    main()
