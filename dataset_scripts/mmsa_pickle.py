"""MMSA feature pickles (`aligned_50.pkl`, `unaligned_50.pkl`, `unaligned_39.pkl`) as a DatasetDict."""

import logging
from pathlib import Path

import numpy as np
from datasets import Array2D, DatasetDict, Features, Sequence, Value

from .arrow_cache import cached_dataset_dict, file_fingerprint
from .safe_pickle import safe_load_pickle

logger = logging.getLogger(__name__)
SPLITS = {"train": "train", "valid": "validation", "test": "test"}
REQUIRED_KEYS = ("audio", "vision", "regression_labels", "id")
UNIMODAL_KEYS = {"label_T": "regression_labels_T", "label_A": "regression_labels_A", "label_V": "regression_labels_V"}


def _check_layout(data, path: Path) -> None:
    if not isinstance(data, dict) or not set(SPLITS) <= set(data):
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path}: expected a dict with splits {sorted(SPLITS)} (MMSA layout), got {keys}.")
    for split in SPLITS:
        part = data[split]
        missing = [k for k in REQUIRED_KEYS if k not in part]
        if "text" not in part and "text_bert" not in part:
            missing.append("text or text_bert")
        if missing:
            raise ValueError(f"{path}: split {split!r} lacks {missing}; keys present: {sorted(part)}.")


def _clean(array: np.ndarray, field: str, split: str, path: Path) -> np.ndarray:
    """float32, with -inf/inf/NaN set to 0 as MMSA does (audio[-inf] = 0), and reported."""
    array = np.asarray(array, dtype=np.float32)
    bad = ~np.isfinite(array)
    if bad.any():
        logger.warning("%s: %s/%s has %d non-finite values (-inf/inf/NaN); set to 0 as MMSA does.",
                       path, split, field, int(bad.sum()))
        array = np.where(bad, 0.0, array).astype(np.float32)
    return array


def _lengths(part: dict, key: str, frames: int, fallback: np.ndarray) -> np.ndarray:
    lengths = np.asarray(part[key], dtype=np.int64) if key in part else fallback
    return np.clip(lengths, 1, frames)


def _examples(data: dict, path: Path, split: str, sims: bool):
    part = data[split]
    audio, vision = _clean(part["audio"], "audio", split, path), _clean(part["vision"], "vision", split, path)
    text = _clean(part["text"], "text", split, path) if "text" in part else None
    text_bert = np.asarray(part["text_bert"], dtype=np.int64) if "text_bert" in part else None
    count = len(part["regression_labels"])
    text_frames = (text if text is not None else text_bert[:, 0]).shape[1]
    text_lengths = (text_bert[:, 1].sum(-1) if text_bert is not None else np.full(count, text_frames)).clip(1)
    audio_lengths = _lengths(part, "audio_lengths", audio.shape[1], text_lengths)
    vision_lengths = _lengths(part, "vision_lengths", vision.shape[1], text_lengths)
    labels = np.asarray(part["regression_labels"], dtype=np.float32).reshape(-1)
    raw_text = part.get("raw_text", [""] * count)
    for i in range(count):
        n, a, v = int(text_lengths[i]), int(audio_lengths[i]), int(vision_lengths[i])
        example = {
            "id": str(part["id"][i]), "raw_text": str(raw_text[i]), "label": float(labels[i]),
            "audio_features": audio[i, :a], "vision_features": vision[i, :v],
            "text_length": n, "audio_length": a, "vision_length": v,
        }
        if text is not None:
            example["text_features"] = text[i, :n]
        if text_bert is not None:
            example["input_ids"] = text_bert[i, 0, :n]
            example["token_type_ids"] = text_bert[i, 2, :n]
        if sims:
            for column, key in UNIMODAL_KEYS.items():
                example[column] = float(np.asarray(part[key]).reshape(-1)[i])
        yield example


def _features(train: dict) -> Features:
    columns = {
        "id": Value("string"), "raw_text": Value("string"), "label": Value("float32"),
        "audio_features": Array2D(shape=(None, np.shape(train["audio"])[-1]), dtype="float32"),
        "vision_features": Array2D(shape=(None, np.shape(train["vision"])[-1]), dtype="float32"),
        "text_length": Value("int32"), "audio_length": Value("int32"), "vision_length": Value("int32"),
    }
    if "text" in train:
        columns["text_features"] = Array2D(shape=(None, np.shape(train["text"])[-1]), dtype="float32")
    if "text_bert" in train:
        columns["input_ids"] = Sequence(Value("int32"))
        columns["token_type_ids"] = Sequence(Value("int8"))
    if all(key in train for key in UNIMODAL_KEYS.values()):
        columns.update({column: Value("float32") for column in UNIMODAL_KEYS})
    return Features(columns)


def load_mmsa_pickle(path: str | Path, cache_dir: str | None = None) -> DatasetDict:
    """Convert an MMSA pickle once to Arrow (train/validation/test); later calls memory-map the converted copy
    and never unpickle again. Columns: id, raw_text, text_features and/or input_ids/token_type_ids (from
    `text_bert`), audio_features, vision_features (cut to their real lengths), *_length, label, and
    label_T/label_A/label_V when the pickle has SIMS unimodal labels."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (expected an MMSA feature pickle such as unaligned_50.pkl).")
    loaded: dict = {}

    def data() -> dict:
        if not loaded:
            content = safe_load_pickle(path)
            _check_layout(content, path)
            loaded["data"] = content
        return loaded["data"]

    def examples(split_name: str):
        split = next(key for key, name in SPLITS.items() if name == split_name)
        sims = all(key in data()["train"] for key in UNIMODAL_KEYS.values())
        yield from _examples(data(), path, split, sims)

    dataset = cached_dataset_dict(
        "mmsa_pickle", file_fingerprint("mmsa-pickle-v1", path), list(SPLITS.values()),
        lambda: _features(data()["train"]), examples, cache_dir,
    )
    return dataset.with_format("numpy")
