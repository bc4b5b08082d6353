"""Batching of variable-length multimodal feature samples."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from modeling_msa.msa_utils import MODALITIES


def _as_matrix(value: Any, field: str, sample_id: Any) -> np.ndarray:
    matrix = np.asarray(value, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"Sample {sample_id!r}: {field} must be a [frames, dim] matrix, got shape {matrix.shape}.")
    if matrix.shape[0] == 0:
        raise ValueError(f"Sample {sample_id!r}: {field} has no frame; drop the sample or give at least one frame.")
    if not np.isfinite(matrix).all():
        raise ValueError(
            f"Sample {sample_id!r}: {field} contains NaN or inf values: clean the features (MMSA sets audio -inf to 0)."
        )
    return matrix


@dataclass
class MSADataCollator:
    """Pads `text_features`/`audio_features`/`vision_features` to the longest sample of the batch and builds
    `*_attention_mask` (1 = real frame, right padding). Every sample is checked on the CPU (a [frames, dim] matrix
    with at least one frame, finite values), so `MSATrainer` can turn the model's own data checks off. Labels: `label`/`labels` -> float `labels`; optional
    `emotion_label` -> `emotion_labels`, `is_pseudo_label` -> `pseudo_label_mask`, `index` -> `sample_index`.

    Args:
        max_text_length / max_audio_length / max_vision_length: Truncate longer sequences (frames kept from
            the start). None keeps everything.
        pad_to_multiple_of: Round padded lengths up to a multiple of this (helps kernels that like alignment).
        include_sample_index: Emit `sample_index` from the `index` column (for per-sample memory banks).
        human_unimodal_labels: Emit `text_labels`/`audio_labels`/`vision_labels` from the SIMS columns
            `label_T`/`label_A`/`label_V`.

        text_input: "features" (`text_features`), "input_ids" (tokenized text, e.g. MMSA's `text_bert`: padded
            `input_ids`, `token_type_ids` when present and `text_attention_mask`), or "auto" (features when the
            samples have them, else input_ids).
    """

    max_text_length: int | None = None
    max_audio_length: int | None = None
    max_vision_length: int | None = None
    pad_to_multiple_of: int | None = None
    include_sample_index: bool = False
    human_unimodal_labels: bool = False
    text_input: str = "auto"

    def _pad(self, matrices: Sequence[np.ndarray], max_length: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = [len(m) if max_length is None else min(len(m), max_length) for m in matrices]
        padded_length = max(lengths)
        if self.pad_to_multiple_of:
            padded_length = -(-padded_length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = np.zeros((len(matrices), padded_length, matrices[0].shape[1]), dtype=np.float32)
        mask = np.zeros((len(matrices), padded_length), dtype=np.int64)
        for row, (matrix, length) in enumerate(zip(matrices, lengths)):
            batch[row, :length] = matrix[:length]
            mask[row, :length] = 1
        return torch.from_numpy(batch), torch.from_numpy(mask)

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not samples:
            raise ValueError("MSADataCollator got an empty batch.")
        batch: dict[str, torch.Tensor] = {}
        if self.text_input not in ("auto", "features", "input_ids"):
            raise ValueError(f"text_input={self.text_input!r}; expected 'auto', 'features' or 'input_ids'.")
        tokenized = self.text_input == "input_ids" or (
            self.text_input == "auto" and "input_ids" in samples[0] and "text_features" not in samples[0]
        )
        if tokenized:
            batch.update(self._pad_tokens(samples))
        for modality in MODALITIES[1:] if tokenized else MODALITIES:
            field = f"{modality}_features"
            matrices = []
            for position, sample in enumerate(samples):
                sample_id = sample.get("id", position)
                if field not in sample:
                    raise KeyError(f"Sample {sample_id!r} has no {field!r} column; columns: {sorted(sample)}.")
                matrices.append(_as_matrix(sample[field], field, sample_id))
            dims = {m.shape[1] for m in matrices}
            if len(dims) > 1:
                raise ValueError(f"{field} dims differ inside one batch: {sorted(dims)}.")
            batch[field], batch[f"{modality}_attention_mask"] = self._pad(
                matrices, getattr(self, f"max_{modality}_length")
            )
        label_key = "labels" if "labels" in samples[0] else "label" if "label" in samples[0] else None
        if label_key is not None:
            batch["labels"] = torch.tensor([_float_or_nan(s[label_key]) for s in samples], dtype=torch.float32)
        if "emotion_label" in samples[0]:
            batch["emotion_labels"] = torch.tensor([int(s["emotion_label"]) for s in samples], dtype=torch.long)
        if "is_pseudo_label" in samples[0]:
            batch["pseudo_label_mask"] = torch.tensor([bool(s["is_pseudo_label"]) for s in samples])
        if self.include_sample_index and "index" in samples[0]:
            batch["sample_index"] = torch.tensor([int(s["index"]) for s in samples], dtype=torch.long)
        if self.human_unimodal_labels:
            batch.update(human_unimodal_labels(samples))
        return batch

    def _pad_tokens(self, samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        sequences = [np.asarray(s["input_ids"], dtype=np.int64).reshape(-1) for s in samples]
        if self.max_text_length is not None:
            sequences = [ids[: self.max_text_length] for ids in sequences]
        if "attention_mask" in samples[0]:  # MMSA text_bert rows carry their own mask: keep the real tokens
            sequences = [ids[: int(np.asarray(s["attention_mask"]).sum())] for ids, s in zip(sequences, samples)]
        length = max(len(ids) for ids in sequences)
        out = {"input_ids": torch.zeros(len(samples), length, dtype=torch.long),
               "text_attention_mask": torch.zeros(len(samples), length, dtype=torch.long)}
        if "token_type_ids" in samples[0]:
            out["token_type_ids"] = torch.zeros(len(samples), length, dtype=torch.long)
        for row, (ids, sample) in enumerate(zip(sequences, samples)):
            out["input_ids"][row, : len(ids)] = torch.from_numpy(ids)
            out["text_attention_mask"][row, : len(ids)] = 1
            if "token_type_ids" in out:
                types = np.asarray(sample["token_type_ids"], dtype=np.int64).reshape(-1)[: len(ids)]
                out["token_type_ids"][row, : len(types)] = torch.from_numpy(types)
        return out


def human_unimodal_labels(samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """`text_labels`/`audio_labels`/`vision_labels` from SIMS's `label_T`/`label_A`/`label_V` columns (None -> NaN)."""
    labels = {}
    for modality, column in (("text", "label_T"), ("audio", "label_A"), ("vision", "label_V")):
        if column not in samples[0]:
            raise KeyError(f"human_unimodal_labels needs a {column!r} column (SIMS); columns: {sorted(samples[0])}.")
        labels[f"{modality}_labels"] = torch.tensor([_float_or_nan(s[column]) for s in samples])
    return labels


def _float_or_nan(value: Any) -> float:
    return float("nan") if value is None else float(value)
