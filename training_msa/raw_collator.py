"""Collator for end-to-end training on raw clips (a model with bundled encoders, e.g. with LoRA)."""

import logging

import torch

from processing_msa.video_io import MediaDecodingError, load_clip

logger = logging.getLogger(__name__)


class RawClipCollator:
    """Decodes indexed clips (rows of `load_msa_dataset("custom"/"sims"/"ami")`: `video_path`, `raw_text`,
    `label`, optionally `audio_path`/`start`/`end`) and batches them with an `MSAProcessor`.

    A clip that cannot be read is logged and left out of its batch (training goes on); a batch whose clips are
    all unreadable raises. Use with `MSATrainer(..., data_collator=RawClipCollator(processor))`.
    """

    def __init__(self, processor, label_column: str = "label"):
        self.processor = processor
        self.label_column = label_column

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        clips, labels, problems = [], [], []
        for row in rows:
            try:
                clip = load_clip(row, self.processor.fps, self.processor.sampling_rate)
            except (MediaDecodingError, ValueError, OSError) as error:
                problems.append(f"{row.get('id', row.get('video_path'))}: {error}")
                logger.warning("RawClipCollator: left out %s", problems[-1])
                continue
            clips.append(clip)
            labels.append(row.get(self.label_column))
        if not clips:
            raise ValueError("RawClipCollator: no readable clip in the batch:\n  " + "\n  ".join(problems))
        batch = dict(self.processor(
            text=[c["text"] for c in clips], audio=[c["audio"] for c in clips], frames=[c["frames"] for c in clips]
        ))
        if all(label is not None for label in labels):
            batch["labels"] = torch.tensor(labels, dtype=torch.float32)
        return batch


__all__ = ["RawClipCollator"]
