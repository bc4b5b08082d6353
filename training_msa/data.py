"""Facts about datasets that a model config needs (raw clips or features, feature sizes, longest sequences)."""

import pyarrow as pa
import pyarrow.compute as pc
import torch
from datasets import Dataset, DatasetDict

from modeling_msa.msa_utils import MODALITIES, conv_output_lengths


def holds_raw_clips(dataset: Dataset) -> bool:
    """Whether `dataset` indexes raw clips (a `video_path` column, no precomputed features)."""
    columns = set(dataset.column_names)
    return "video_path" in columns and not any(f"{m}_features" in columns for m in MODALITIES)


def feature_dims(dataset: Dataset) -> dict[str, int]:
    """`{text,audio,vision}_feature_size` read from the dataset's `Array2D` feature declarations."""
    dims = {}
    for modality in MODALITIES:
        column = f"{modality}_features"
        if column not in dataset.features:
            raise KeyError(f"Dataset has no {column!r} column; columns: {dataset.column_names}.")
        dims[f"{modality}_feature_size"] = int(dataset.features[column].shape[-1])
    return dims


def max_frames(dataset: DatasetDict | Dataset, truncation=None) -> dict[str, int]:
    """Longest sequence per modality over all splits (read from Arrow list offsets, no data copied),
    capped by `truncation.max_<modality>_length` when that is set."""
    splits = dataset.values() if isinstance(dataset, DatasetDict) else [dataset]
    longest = dict.fromkeys(MODALITIES, 0)
    for split in splits:
        for modality in MODALITIES:
            column = split.data.column(f"{modality}_features")
            storage = pa.chunked_array([getattr(chunk, "storage", chunk) for chunk in column.chunks])
            lengths = pc.list_value_length(storage) if len(storage) else pa.array([0])
            longest[modality] = max(longest[modality], int(pc.max(lengths).as_py() or 0))
    for modality in MODALITIES:
        cap = getattr(truncation, f"max_{modality}_length", None)
        if cap is not None:
            longest[modality] = min(longest[modality], cap)
    return longest


def model_token_limits(config, frames: dict[str, int]) -> dict[str, int]:
    """`max_{audio,text,vision}_tokens` for Semi-IIN so the longest sequences fit after the projections."""
    audio = torch.tensor([frames["audio"]])
    for kernel, stride, padding in zip(config.audio_kernel_sizes, config.audio_strides, config.audio_paddings):
        audio = conv_output_lengths(audio, kernel, stride, padding)
    return {
        "max_audio_tokens": max(1, int(audio.item())),
        "max_text_tokens": max(1, frames["text"]),
        "max_vision_tokens": max(1, frames["vision"]),
    }
