"""CMU-MultimodalSDK computational sequences (`.csd`, HDF5) for CMU-MOSI/MOSEI, cut into labelled segments.

A `.csd` file holds `<root>/data/<video_id>/features` [T, D] and `.../intervals` [T, 2] (seconds). The label
sequence (e.g. CMU_MOSI_Opinion_Labels.csd) has one row per opinion segment; each segment becomes a sample
`<video_id>[<segment>]` with the frames of every modality that overlap its interval and, with a words
sequence, the words spoken in it.
"""

import logging
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
from datasets import Array2D, DatasetDict, Features, Value

from modeling_msa.msa_utils import MODALITIES

from .arrow_cache import cached_dataset_dict, file_fingerprint

logger = logging.getLogger(__name__)
FOLD_NAMES = ("train", "validation", "test")


class ComputationalSequence:
    """Read access to one `.csd` file; errors name the file and the expected layout."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path} does not exist (expected a CMU-MultimodalSDK .csd file).")
        try:
            self.file = h5py.File(self.path, "r")
        except OSError as error:
            raise ValueError(f"{self.path} is not an HDF5 computational sequence ({error}).") from error
        roots = list(self.file.keys())
        if len(roots) != 1 or "data" not in self.file[roots[0]]:
            raise ValueError(
                f"{self.path}: expected one root group holding data/<video_id>/{{features,intervals}}, got {roots}."
            )
        self.data = self.file[roots[0]]["data"]

    def videos(self) -> list[str]:
        return list(self.data.keys())

    def dim(self) -> int:
        first = self.data[self.videos()[0]]["features"]
        return int(first.shape[1]) if first.ndim > 1 else 1

    def read(self, video: str) -> tuple[np.ndarray, np.ndarray]:
        group = self.data[video]
        if "features" not in group or "intervals" not in group:
            raise ValueError(f"{self.path}: video {video!r} lacks 'features' or 'intervals'.")
        return group["features"][()], np.asarray(group["intervals"][()], dtype=np.float64)


def standard_folds(dataset: str) -> dict[str, list[str]]:
    """The CMU-MultimodalSDK standard folds, when the SDK (`mmsdk`, installed from its repository) is present."""
    try:
        from mmsdk.mmdatasdk import cmu_mosei, cmu_mosi
    except ImportError as error:
        raise ImportError(
            "The standard folds come from CMU-MultimodalSDK: install it from its repository (mmsdk is not on "
            "PyPI) or pass folds={'train': [...], 'validation': [...], 'test': [...]} (video ids)."
        ) from error
    module = {"mosi": cmu_mosi, "mosei": cmu_mosei}[dataset]
    folds = module.standard_folds
    return {"train": folds.standard_train_fold, "validation": folds.standard_valid_fold,
            "test": folds.standard_test_fold}


def _overlapping(features: np.ndarray, intervals: np.ndarray, start: float, end: float) -> np.ndarray:
    keep = (intervals[:, 0] < end) & (intervals[:, 1] > start)
    return features[keep]


def load_cmu_csd(
    labels: str | Path,
    features: dict[str, str | Path],
    folds: dict[str, list[str]],
    words: str | Path | None = None,
    cache_dir: str | None = None,
) -> DatasetDict:
    """Segment-level DatasetDict from a label `.csd` and per-modality feature `.csd` files.

    Args:
        labels: The opinion-segment label sequence ([segments, 1] sentiment per video).
        features: {"text": ..., "audio": ..., "vision": ...} feature sequences (e.g. GloVe, COVAREP, FACET).
        folds: Video ids per split {"train", "validation", "test"} (see `standard_folds`).
        words: Optional timestamped-words sequence for `raw_text`.
    A segment whose video is missing from a feature sequence, or that has no frame of some modality, is
    skipped and counted in a warning. -inf/inf/NaN feature values are set to 0 and reported.
    """
    if set(features) != set(MODALITIES):
        raise ValueError(f"features must name exactly {MODALITIES} .csd files, got {sorted(features)}.")
    if set(folds) != set(FOLD_NAMES):
        raise ValueError(f"folds must have the splits {FOLD_NAMES}, got {sorted(folds)}.")
    paths = [Path(labels), *(Path(features[m]) for m in MODALITIES)] + ([Path(words)] if words else [])
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist (expected a CMU-MultimodalSDK .csd file).")
    fingerprint = file_fingerprint("cmu-csd-v1", *paths, sorted((k, tuple(v)) for k, v in folds.items()))

    def schema() -> Features:
        columns = {"id": Value("string"), "raw_text": Value("string"), "label": Value("float32"),
                   "start": Value("float32"), "end": Value("float32")}
        for modality in MODALITIES:
            columns[f"{modality}_features"] = Array2D(
                shape=(None, ComputationalSequence(features[modality]).dim()), dtype="float32"
            )
        return Features(columns)

    def examples(split: str) -> Iterator[dict]:
        label_seq = ComputationalSequence(labels)
        sequences = {m: ComputationalSequence(features[m]) for m in MODALITIES}
        word_seq = ComputationalSequence(words) if words else None
        available = set(label_seq.videos())
        skipped = nonfinite = 0
        for video in folds[split]:
            if video not in available:
                skipped += 1
                continue
            label_rows, segments = label_seq.read(video)
            per_modality = {}
            for modality, sequence in sequences.items():
                per_modality[modality] = sequence.read(video) if video in sequence.data else None
            word_rows = word_seq.read(video) if word_seq is not None and video in word_seq.data else None
            for index, ((start, end), value) in enumerate(zip(segments, np.asarray(label_rows).reshape(len(segments), -1))):
                example = {"id": f"{video}[{index}]", "label": float(value[0]), "start": start, "end": end}
                cut = {}
                for modality, content in per_modality.items():
                    cut[modality] = None if content is None else _overlapping(*content, start, end)
                if any(frames is None or len(frames) == 0 for frames in cut.values()):
                    skipped += 1
                    continue
                for modality, frames in cut.items():
                    frames = np.asarray(frames, dtype=np.float32).reshape(len(frames), -1)
                    bad = ~np.isfinite(frames)
                    nonfinite += int(bad.sum())
                    example[f"{modality}_features"] = np.where(bad, 0.0, frames).astype(np.float32)
                text = ""
                if word_rows is not None:
                    tokens = _overlapping(*word_rows, start, end).reshape(-1)
                    text = " ".join(_decode(t) for t in tokens if _decode(t) not in ("sp", ""))
                example["raw_text"] = text
                yield example
        if skipped or nonfinite:
            logger.warning("%s split %s: skipped %d segments (video or frames missing); set %d non-finite values "
                           "to 0.", labels, split, skipped, nonfinite)

    return cached_dataset_dict("cmu_csd", fingerprint, list(FOLD_NAMES), schema, examples, cache_dir).with_format("numpy")


def _decode(token) -> str:
    return token.decode("utf-8", "replace") if isinstance(token, bytes) else str(token)
