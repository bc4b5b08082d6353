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


# Rank of each field: [N, T, D] sequences, [N, 3, T] BERT ids/mask/segments, [N] (or [N, 1]) labels and ids.
FIELD_SHAPES = {"audio": "[N, T, D]", "vision": "[N, T, D]", "text": "[N, T, D]", "text_bert": "[N, 3, T]"}
LABEL_RANGES = {"sims": (-1.0, 1.0), "mosi": (-3.0, 3.0), "mosei": (-3.0, 3.0)}


def _check_layout(data, path: Path) -> None:
    if not isinstance(data, dict) or not set(SPLITS) <= set(data):
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path}: expected a dict with splits {sorted(SPLITS)} (MMSA layout), got {keys}.")
    for split in SPLITS:
        part = data[split]
        if not isinstance(part, dict):
            raise ValueError(f"{path}: split {split!r} must be a dict of fields, got {type(part).__name__}.")
        missing = [k for k in REQUIRED_KEYS if k not in part]
        if "text" not in part and "text_bert" not in part:
            missing.append("text or text_bert")
        if missing:
            raise ValueError(f"{path}: split {split!r} lacks {missing}; keys present: {sorted(part)}.")


def _has_unimodal_labels(train: dict) -> bool:
    """A SIMS pickle: its train split carries the unimodal labels."""
    return all(key in train for key in UNIMODAL_KEYS.values())


def _numeric_vector(value, path: Path, split: str, field: str) -> np.ndarray:
    try:
        vector = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: split {split}, field {field}: labels must be numbers ({error}).") from error
    if vector.ndim == 2 and vector.shape[1] == 1:
        vector = vector[:, 0]
    if vector.ndim != 1:
        raise ValueError(f"{path}: split {split}, field {field}: expected [N] or [N, 1], got shape {vector.shape}.")
    return vector


def _check_labels(vector: np.ndarray, bounds: tuple[float, float], path: Path, split: str, field: str, ids) -> None:
    bad = np.flatnonzero(~np.isfinite(vector))
    if len(bad):
        raise ValueError(
            f"{path}: split {split}, field {field}: {len(bad)} NaN/inf label(s), first at row {bad[0]} "
            f"(id {ids[bad[0]]!r}); a model trained on them would be NaN: fix or drop those samples."
        )
    low, high = bounds
    outside = np.flatnonzero((vector < low) | (vector > high))
    if len(outside):
        raise ValueError(
            f"{path}: split {split}, field {field}: {len(outside)} label(s) outside [{low:g}, {high:g}], first "
            f"{vector[outside[0]]:g} at row {outside[0]} (id {ids[outside[0]]!r}): check the dataset name "
            "(SIMS labels lie in [-1, 1], MOSI/MOSEI in [-3, 3]) or the label scale."
        )


def validate_mmsa_data(data: dict, path: Path, label_range: tuple[float, float] | None = None) -> None:
    """Every check of an unpickled MMSA dict, before anything is written: layout, the rank of each field, one
    sample count per split, the same feature size in every split, numeric finite labels in `label_range` (default
    [-1, 1] for a pickle with SIMS unimodal labels, else [-3, 3]), unique ids. Errors read
    "<file>: split <s>, field <f>: ..."."""
    _check_layout(data, path)
    label_range = label_range or LABEL_RANGES["sims" if _has_unimodal_labels(data["train"]) else "mosi"]
    sizes: dict[str, tuple[str, int]] = {}
    for split in SPLITS:
        part = data[split]
        ids = [str(x) for x in np.asarray(part["id"]).reshape(-1)]
        count = len(ids)
        for field, expected in FIELD_SHAPES.items():
            if field not in part:
                continue
            shape = np.shape(part[field])
            if len(shape) != 3 or (field == "text_bert" and shape[1] != 3):
                raise ValueError(f"{path}: split {split}, field {field}: expected {expected}, got shape {shape}.")
            if shape[0] != count:
                raise ValueError(f"{path}: split {split}, field {field}: {shape[0]} samples but field id has {count}; "
                                 "every field needs one row per sample.")
            if field != "text_bert":
                first_split, size = sizes.setdefault(field, (split, shape[2]))
                if size != shape[2]:
                    raise ValueError(f"{path}: split {split}, field {field}: feature size {shape[2]}, but split "
                                     f"{first_split} has {size}; every split needs the same features.")
        label_fields = ["regression_labels"] + [key for key in UNIMODAL_KEYS.values() if key in part]
        for field in label_fields:
            vector = _numeric_vector(part[field], path, split, field)
            if len(vector) != count:
                raise ValueError(f"{path}: split {split}, field {field}: {len(vector)} labels but field id has "
                                 f"{count} samples.")
            _check_labels(vector, label_range, path, split, field, ids)
        for field in ("audio_lengths", "vision_lengths", "raw_text"):
            if field in part and len(part[field]) != count:
                raise ValueError(f"{path}: split {split}, field {field}: {len(part[field])} entries but field id has "
                                 f"{count} samples.")
        seen: dict[str, int] = {}
        for row, sample_id in enumerate(ids):
            if sample_id in seen:
                raise ValueError(f"{path}: split {split}, field id: {sample_id!r} appears at rows {seen[sample_id]} "
                                 f"and {row}; ids must be unique (drop or rename the duplicate).")
            seen[sample_id] = row


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
    if _has_unimodal_labels(train):
        columns.update({column: Value("float32") for column in UNIMODAL_KEYS})
    return Features(columns)


def load_mmsa_pickle(
    path: str | Path, cache_dir: str | None = None, label_range: tuple[float, float] | None = None
) -> DatasetDict:
    """Convert an MMSA pickle once to Arrow (train/validation/test); later calls memory-map the converted copy
    and never unpickle again. Columns: id, raw_text, text_features and/or input_ids/token_type_ids (from
    `text_bert`), audio_features, vision_features (cut to their real lengths), *_length, label, and
    label_T/label_A/label_V when the pickle has SIMS unimodal labels.

    The whole pickle is validated ([`validate_mmsa_data`]) before anything is written: a bad file leaves no
    cache. `label_range` defaults to [-1, 1] for a pickle with SIMS unimodal labels, else [-3, 3]."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (expected an MMSA feature pickle such as unaligned_50.pkl).")
    loaded: dict = {}

    def data() -> dict:
        if not loaded:
            content = safe_load_pickle(path)
            validate_mmsa_data(content, path, label_range)
            loaded["data"] = content
        return loaded["data"]

    def examples(split_name: str):
        split = next(key for key, name in SPLITS.items() if name == split_name)
        yield from _examples(data(), path, split, _has_unimodal_labels(data()["train"]))

    dataset = cached_dataset_dict(
        "mmsa_pickle", file_fingerprint("mmsa-pickle-v2", path, label_range), list(SPLITS.values()),
        lambda: _features(data()["train"]), examples, cache_dir,
    )
    return dataset.with_format("numpy")
