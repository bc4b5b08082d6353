"""CMU-MultimodalSDK computational sequences (`.csd`, HDF5) for CMU-MOSI/MOSEI, cut into labelled segments.

A `.csd` file holds `<root>/data/<video_id>/features` [T, D] and `.../intervals` [T, 2] (seconds). The label
sequence (e.g. CMU_MOSI_Opinion_Labels.csd) has one row per opinion segment; each segment becomes a sample
`<video_id>[<segment>]` with the frames of every modality that overlap it and, with a words sequence, the words
spoken in it, cut exactly as the SDK's `mmdataset.align(<labels>)` cuts them ([`align_to_segment`]).
"""

import logging
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
from datasets import Array2D, DatasetDict, Features, Value

from modeling_msa.msa_utils import MODALITIES

from .arrow_cache import cached_dataset_dict, file_fingerprint
from .mmsa_pickle import LABEL_RANGES

logger = logging.getLogger(__name__)
FOLD_NAMES = ("train", "validation", "test")
SDK_EPSILON = 1e-3  # mmsdk.mmdatasdk.dataset.dataset.epsilon (written 10e-4 there)


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
        if not len(self.data):
            raise ValueError(f"{self.path}: the data group holds no video (an empty computational sequence).")

    def videos(self) -> list[str]:
        return list(self.data.keys())

    def _group(self, video: str):
        group = self.data[video]
        if not isinstance(group, h5py.Group) or "features" not in group or "intervals" not in group:
            raise ValueError(f"{self.path}: video {video!r}, field features/intervals: the video group lacks "
                             "'features' or 'intervals'.")
        return group

    def validate(self) -> int:
        """Check every video before anything is read for good (metadata only, no feature data): features
        [T, D] with one D for all videos, intervals [T, 2] with one row per frame. Returns D."""
        dims = {}
        for video in self.videos():
            group = self._group(video)
            features, intervals = group["features"], group["intervals"]
            if features.ndim != 2:
                raise ValueError(f"{self.path}: video {video!r}, field features: expected [frames, dim], got shape "
                                 f"{features.shape}.")
            if intervals.ndim != 2 or intervals.shape[1] != 2:
                raise ValueError(f"{self.path}: video {video!r}, field intervals: expected [frames, 2] (start, end in "
                                 f"seconds), got shape {intervals.shape}.")
            if intervals.shape[0] != features.shape[0]:
                raise ValueError(f"{self.path}: video {video!r}: {features.shape[0]} feature rows but "
                                 f"{intervals.shape[0]} intervals; each row needs its interval.")
            dims.setdefault(int(features.shape[1]), video)
            if len(dims) > 1:
                (dim, first), (other, _) = list(dims.items())[:2]
                raise ValueError(f"{self.path}: video {video!r}, field features: feature size {other}, but video "
                                 f"{first!r} has {dim}; a computational sequence has one feature size.")
        return next(iter(dims))

    def read(self, video: str) -> tuple[np.ndarray, np.ndarray]:
        group = self._group(video)
        return group["features"][()], np.asarray(group["intervals"][()], dtype=np.float64)


def standard_folds(dataset: str) -> dict[str, list[str]]:
    """The CMU-MultimodalSDK standard folds (`mmsdk`, from PyPI's `cmu-multimodal-sdk`: `pip install msa-hub[cmu]`)."""
    try:
        from mmsdk.mmdatasdk import cmu_mosei, cmu_mosi
    except ImportError as error:
        raise ImportError(
            "The standard folds come from CMU-MultimodalSDK: `pip install msa-hub[cmu]` (PyPI package "
            "cmu-multimodal-sdk, module mmsdk), or pass folds={'train': [...], 'validation': [...], 'test': [...]} "
            "(video ids)."
        ) from error
    module = {"mosi": cmu_mosi, "mosei": cmu_mosei}[dataset]
    folds = module.standard_folds
    return {"train": folds.standard_train_fold, "validation": folds.standard_valid_fold,
            "test": folds.standard_test_fold}


def align_to_segment(features: np.ndarray, intervals: np.ndarray, start: float, end: float,
                     epsilon: float = SDK_EPSILON) -> np.ndarray:
    """The rows of `features` the SDK's `mmdataset.align` gives segment [start, end]: frames sorted by start time
    (stable), kept when they reach into the segment by more than `epsilon` and their part inside it is longer than
    `epsilon` (`mmdataset.__intersect_and_copy`)."""
    order = np.argsort(intervals[:, 0], kind="stable")
    features, intervals = features[order], intervals[order]
    touches = (intervals[:, 0] - end < epsilon) & (intervals[:, 1] - start > -epsilon)
    inside = np.minimum(intervals[:, 1], end) - np.maximum(intervals[:, 0], start)
    return features[touches & (np.abs(inside) > epsilon)]


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
    A segment whose video is missing from a feature sequence, that has no frame of some modality, or that is
    shorter than the SDK's epsilon is skipped and counted in a warning (the SDK drops them too). -inf/inf/NaN
    feature values are set to 0 and reported. Every file is validated (layout, shapes, one feature size, labels
    finite in [-3, 3], one label row per segment) before anything is cached.
    """
    if set(features) != set(MODALITIES):
        raise ValueError(f"features must name exactly {MODALITIES} .csd files, got {sorted(features)}.")
    if set(folds) != set(FOLD_NAMES):
        raise ValueError(f"folds must have the splits {FOLD_NAMES}, got {sorted(folds)}.")
    paths = [Path(labels), *(Path(features[m]) for m in MODALITIES)] + ([Path(words)] if words else [])
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist (expected a CMU-MultimodalSDK .csd file).")
    fingerprint = file_fingerprint("cmu-csd-v2", *paths, sorted((k, tuple(v)) for k, v in folds.items()))

    def schema() -> Features:
        """Validates every file first; called only when the Arrow copy is built (a cached load reads none)."""
        dims = {modality: ComputationalSequence(features[modality]).validate() for modality in MODALITIES}
        _validate_labels(ComputationalSequence(labels), [video for fold in folds.values() for video in fold])
        if words:
            ComputationalSequence(words).validate()
        columns = {"id": Value("string"), "raw_text": Value("string"), "label": Value("float32"),
                   "start": Value("float32"), "end": Value("float32")}
        for modality in MODALITIES:
            columns[f"{modality}_features"] = Array2D(shape=(None, dims[modality]), dtype="float32")
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
                if abs(end - start) < SDK_EPSILON:  # the SDK aligns nothing to a (near) zero-length segment
                    skipped += 1
                    continue
                example = {"id": f"{video}[{index}]", "label": float(value[0]), "start": start, "end": end}
                cut = {}
                for modality, content in per_modality.items():
                    cut[modality] = None if content is None else align_to_segment(*content, start, end)
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
                    tokens = align_to_segment(*word_rows, start, end).reshape(-1)
                    text = " ".join(_decode(t) for t in tokens if _decode(t) not in ("sp", ""))
                example["raw_text"] = text
                yield example
        if skipped or nonfinite:
            logger.warning("%s split %s: skipped %d segments (video or frames missing); set %d non-finite values "
                           "to 0.", labels, split, skipped, nonfinite)

    return cached_dataset_dict("cmu_csd", fingerprint, list(FOLD_NAMES), schema, examples, cache_dir).with_format("numpy")


def _validate_labels(sequence: ComputationalSequence, videos: list[str]) -> None:
    """Label rows of the fold videos: one row per segment interval, finite, in MOSI/MOSEI's [-3, 3]."""
    low, high = LABEL_RANGES["mosi"]
    available = set(sequence.videos())
    for video in videos:
        if video not in available:
            continue
        group = sequence._group(video)
        rows, intervals = group["features"][()], group["intervals"]
        if len(rows) == 0:
            continue
        if intervals.ndim != 2 or intervals.shape[1] != 2:
            raise ValueError(f"{sequence.path}: video {video!r}, field intervals: expected [segments, 2], got shape "
                             f"{intervals.shape}.")
        if len(rows) != intervals.shape[0]:
            raise ValueError(f"{sequence.path}: video {video!r}: {len(rows)} label rows but {intervals.shape[0]} "
                             "segment intervals; each segment needs one label row.")
        try:
            values = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)[:, 0]
        except (TypeError, ValueError) as error:
            raise ValueError(f"{sequence.path}: video {video!r}, field features: labels must be numbers ({error}).") \
                from error
        bad = np.flatnonzero(~np.isfinite(values) | (values < low) | (values > high))
        if len(bad):
            raise ValueError(f"{sequence.path}: video {video!r}, field features: label {float(values[bad[0]])} of segment "
                             f"{bad[0]} is not a finite number in [{low:g}, {high:g}].")


def _decode(token) -> str:
    return token.decode("utf-8", "replace") if isinstance(token, bytes) else str(token)
