"""Turn a folder of raw clips into a features dataset with a model's bundled encoders (resumable).

    python -m processing_msa.extract_features DATA_DIR OUTPUT_DIR --model MODEL_DIR [--dataset custom]

DATA_DIR is read with `load_msa_dataset(--dataset, DATA_DIR)`: "custom"/"sims" (label.csv + Raw/<video>/<clip>.mp4)
or "ami" (meeting videos + headset wavs cut into clips). MODEL_DIR holds a Semi-IIN with bundled encoders and its
processor (a folder written by `processing_msa.publish` / `save_hub_ready(..., processor=...)`).

Every `--shard-size` clips a Parquet shard is written atomically under OUTPUT_DIR/shards; a rerun skips clips
already in a shard (and those listed in OUTPUT_DIR/errors.jsonl unless --retry-errors). A clip that fails
(corrupt file, no audio...) is logged to errors.jsonl and skipped. At the end OUTPUT_DIR/dataset is a
`save_to_disk` DatasetDict with text/audio/vision_features that `train.py --data_dir OUTPUT_DIR/dataset` reads.
"""

import argparse
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from datasets import Array2D, Dataset, DatasetDict, Features, Value, concatenate_datasets
from transformers import AutoModel, AutoProcessor

from dataset_scripts import load_msa_dataset
from modeling_msa.modeling_encoders import encode_raw_inputs
from modeling_msa.msa_utils import MODALITIES

from .video_io import load_clip

logger = logging.getLogger(__name__)
KEPT_COLUMNS = ("id", "raw_text", "label", "label_T", "label_A", "label_V")


def clip_inputs(row: dict, processor) -> dict:
    """The processor's inputs for one indexed clip (see `load_clip`)."""
    clip = load_clip(row, processor.fps, processor.sampling_rate)
    return processor(text=clip["text"], audio=clip["audio"], frames=clip["frames"])


@torch.no_grad()
def encode_clip(model, inputs) -> dict[str, np.ndarray]:
    """Per-modality features [frames, dim] (padding removed) from the model's bundled encoders."""
    features, masks = dict.fromkeys(MODALITIES), {}
    encode_raw_inputs(model.encoders, features, masks, inputs, model.config)
    return {f"{name}_features": features[name][0, masks[name][0].bool()].float().cpu().numpy() for name in features}


def output_features(config) -> Features:
    columns = {
        "id": Value("string"), "raw_text": Value("string"), "label": Value("float32"), "label_T": Value("float32"),
        "label_A": Value("float32"), "label_V": Value("float32"),
    }
    for name in MODALITIES:
        columns[f"{name}_features"] = Array2D(shape=(None, getattr(config, f"{name}_feature_size")), dtype="float32")
    return Features(columns)


def _write_atomic(dataset: Dataset, path: Path) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        dataset.to_parquet(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


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


def _done_ids(shards: Path, errors_file: Path, retry_errors: bool) -> set[str]:
    done = set()
    for shard in shards.glob("*.parquet"):
        done.update(pq.read_table(shard, columns=["id"]).column("id").to_pylist())
    errors = read_error_log(errors_file)  # read (and repaired) even with retry_errors
    if not retry_errors:
        done.update(record["id"] for record in errors)
    return done


def extract_features(
    data_dir: str, output_dir: str, model_dir: str, dataset: str = "custom", shard_size: int = 64,
    retry_errors: bool = False, progress: bool = True,
) -> DatasetDict:
    output, shards = Path(output_dir), Path(output_dir) / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    errors_file = output / "errors.jsonl"
    model = AutoModel.from_pretrained(model_dir, trust_remote_code=True).eval()
    if set(getattr(model.config, "encoder_modalities", ())) != set(MODALITIES):
        raise SystemExit(f"{model_dir}: the model must bundle text, audio and vision encoders to extract features.")
    processor = AutoProcessor.from_pretrained(model_dir, trust_remote_code=True)
    features = output_features(model.config)
    source = load_msa_dataset(dataset, data_dir)
    done = _done_ids(shards, errors_file, retry_errors)
    total = sum(len(split) for split in source.values())
    logger.info("%d clips, %d already done", total, len(done))

    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=len(done & {i for s in source.values() for i in s["id"]}), disable=not progress,
               desc="extracting features", unit="clip")
    for split_name, split in source.items():
        buffer, shard_index = [], len(list(shards.glob(f"{split_name}-*.parquet")))

        def flush():
            nonlocal buffer, shard_index
            if buffer:
                _write_atomic(Dataset.from_list(buffer, features=features),
                              shards / f"{split_name}-{shard_index:05d}.parquet")
                buffer, shard_index = [], shard_index + 1

        for row in split:
            if row["id"] in done:
                continue
            try:
                encoded = encode_clip(model, clip_inputs(row, processor))
            except (ValueError, OSError, RuntimeError) as error:
                append_error(errors_file, {"id": row["id"], "split": split_name, "error": str(error)})
                logger.warning("skipped %s: %s", row["id"], error)
            else:
                buffer.append({**{key: row.get(key) for key in KEPT_COLUMNS}, **encoded})
                if len(buffer) >= shard_size:
                    flush()
            bar.update(1)
        flush()
    bar.close()
    return _assemble(output, shards, features)


def _assemble(output: Path, shards: Path, features: Features) -> DatasetDict:
    """OUTPUT/dataset (save_to_disk) from the shards; written next to it and renamed into place."""
    splits = {}
    for shard in sorted(shards.glob("*.parquet")):
        splits.setdefault(shard.name.rsplit("-", 1)[0], []).append(str(shard))
    result = DatasetDict({
        name: concatenate_datasets([Dataset.from_parquet(f, features=features) for f in files])
        for name, files in splits.items()
    })
    staging = Path(tempfile.mkdtemp(prefix=".dataset.", dir=output))
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
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--retry-errors", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    result = extract_features(args.data_dir, args.output_dir, args.model, args.dataset, args.shard_size,
                              args.retry_errors)
    print(f"{Path(args.output_dir) / 'dataset'}: " + ", ".join(f"{k}={len(v)}" for k, v in result.items()))


if __name__ == "__main__":
    main()
