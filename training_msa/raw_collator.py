"""Collator for end-to-end training on raw clips (a model with bundled encoders, e.g. with LoRA)."""

import logging

import torch

from processing_msa.video_io import MediaDecodingError, load_clip

from .collator import human_unimodal_labels

logger = logging.getLogger(__name__)


class RawClipCollator:
    """Decodes indexed clips (rows of `load_msa_dataset("custom"/"sims"/"ami")`: `video_path`, `raw_text`,
    `label`, optionally `audio_path`/`start`/`end`) and batches them with an `MSAProcessor`.

    A clip that cannot be read is logged and left out of its batch (training goes on); a batch whose clips are
    all unreadable raises. Use with `MSATrainer(..., data_collator=RawClipCollator(processor))`.

    Args:
        include_sample_index: Emit `sample_index` from the rows' `index` (the key of ULGM's per-sample label bank,
            see `SharedPrivateTrainer`), for the clips kept.
        human_unimodal_labels: Emit `text_labels`/`audio_labels`/`vision_labels` from SIMS's `label_T`/`label_A`/
            `label_V` columns.
    """

    def __init__(self, processor, label_column: str = "label", include_sample_index: bool = False,
                 human_unimodal_labels: bool = False):
        self.processor = processor
        self.label_column = label_column
        self.include_sample_index = include_sample_index
        self.human_unimodal_labels = human_unimodal_labels

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        clips, kept, problems = [], [], []
        for row in rows:
            try:
                clip = load_clip(row, self.processor.fps, self.processor.sampling_rate)
            except (MediaDecodingError, ValueError, OSError) as error:
                problems.append(f"{row.get('id', row.get('video_path'))}: {error}")
                logger.warning("RawClipCollator: left out %s", problems[-1])
                continue
            clips.append(clip)
            kept.append(row)
        if not clips:
            raise ValueError("RawClipCollator: no readable clip in the batch:\n  " + "\n  ".join(problems))
        batch = dict(self.processor(
            text=[c["text"] for c in clips], audio=[c["audio"] for c in clips], frames=[c["frames"] for c in clips]
        ))
        labels = [row.get(self.label_column) for row in kept]
        if all(label is not None for label in labels):
            batch["labels"] = torch.tensor(labels, dtype=torch.float32)
        if self.include_sample_index and "index" in kept[0]:
            batch["sample_index"] = torch.tensor([int(row["index"]) for row in kept], dtype=torch.long)
        if self.human_unimodal_labels:
            batch.update(human_unimodal_labels(kept))
        return batch


__all__ = ["RawClipCollator"]
