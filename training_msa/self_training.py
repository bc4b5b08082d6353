"""Semi-IIN self-training (Algorithm 1): supervised stage, per-class top-k confident pseudo-labels, retraining.

Stage 0 trains on the labelled set (optionally a `label_fraction` of it). Each round then predicts the
sentiment class of every unlabelled sample, keeps the `top_k` most confident samples of EACH predicted
class (confidence = softmax probability of the predicted class) and retrains on labelled ∪ pseudo-labelled
data, where pseudo samples add only `pseudo_label_loss_weight * CE` (no regression loss).

Every stage writes its result before the next starts (`<output_dir>/stage-N/model`, `pseudo_labels.json`),
so a rerun after an interruption skips finished stages and resumes a stage from its last checkpoint. What the stages are
made from (model config, a content hash of each dataset, the self-training settings) is recorded in
`<output_dir>/self_training_run.json`: stages made from other inputs are refused, never resumed.
Predictions are gathered over all ranks before selection, so every DDP rank keeps the same pseudo set.
"""

import copy
import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, concatenate_datasets
from transformers import AutoModelForSequenceClassification, PreTrainedModel
from transformers.trainer_utils import IntervalStrategy

from dataset_scripts.loading import read_labels
from dataset_scripts.atomic_write import write_text_atomic
from modeling_msa.msa_utils import intensity_to_class

from .checkpoints import last_complete_checkpoint
from .run_fingerprint import claim_output_dir, dataset_digest
from .trainer import MSATrainer
from .training_args import MSATrainingArguments, SelfTrainingArguments

logger = logging.getLogger(__name__)
DONE_FILE = "stage_done.json"
LOG_HISTORY_FILE = "log_history.json"
RUN_FILE = "self_training_run.json"


def select_top_k_per_class(probabilities, k: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices, predicted classes and confidences of the `k` most confident samples of each predicted class.

    Confidence is the largest softmax probability of a row; ties keep the lower index first. `k=None` keeps
    every sample. Results are ordered by class, then by decreasing confidence.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2:
        raise ValueError(f"probabilities must be [samples, classes], got shape {probabilities.shape}.")
    classes = probabilities.argmax(-1)
    confidences = probabilities.max(-1)
    selected = []
    for label in range(probabilities.shape[1]):
        members = np.flatnonzero(classes == label)
        order = members[np.lexsort((members, -confidences[members]))]
        selected.append(order if k is None else order[:k])
    indices = np.concatenate(selected).astype(np.int64)
    return indices, classes[indices], confidences[indices]


def subsample_labeled(dataset: Dataset, fraction: float, seed: int) -> Dataset:
    """A seeded `fraction` of the rows (at least one), in their original order."""
    if fraction >= 1.0:
        return dataset
    count = max(1, int(round(fraction * len(dataset))))
    keep = np.sort(np.random.default_rng(seed).permutation(len(dataset))[:count])
    return dataset.select(keep)


def with_pseudo_columns(dataset: Dataset, num_classes: int) -> Dataset:
    """Labelled rows for mixed training: `emotion_label` from the intensity, `is_pseudo_label` False."""
    labels = torch.as_tensor(read_labels(dataset))
    if not torch.isfinite(labels).all():
        raise ValueError("The labelled training set has missing labels (NaN/None); drop those rows first.")
    dataset = dataset.with_format(None)  # add_column flattens the rows; it cannot write numpy-formatted ones
    dataset = dataset.add_column("emotion_label", intensity_to_class(labels, num_classes).tolist())
    return dataset.add_column("is_pseudo_label", [False] * len(dataset))


def pseudo_labeled(unlabeled: Dataset, indices: np.ndarray, classes: np.ndarray, label_feature) -> Dataset:
    """The selected unlabelled rows with their pseudo class; their intensity stays missing (NaN)."""
    selected = unlabeled.with_format(None).select(indices.tolist())
    selected = selected.remove_columns("label") if "label" in selected.column_names else selected
    selected = selected.add_column("label", [None] * len(selected), feature=label_feature)
    selected = selected.add_column("emotion_label", classes.tolist())
    return selected.add_column("is_pseudo_label", [True] * len(selected))


def _write_json(path: Path, payload) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2))


@dataclass
class StageResult:
    stage: int
    model_dir: str
    test_metrics: dict[str, float] | None
    pseudo_label_counts: dict[int, int] | None = None


def run_self_training(
    build_model: Callable[[], PreTrainedModel],
    train_dataset: Dataset,
    unlabeled_dataset: Dataset,
    args: MSATrainingArguments,
    self_training_args: SelfTrainingArguments,
    eval_dataset: Dataset | None = None,
    test_dataset: Dataset | None = None,
    overwrite_output_dir: bool = False,
) -> list[StageResult]:
    """Stage 0 (supervised) then `self_training_rounds` pseudo-label rounds; returns one result per stage. Stages in
    `args.output_dir` made from other inputs are refused (`RunMismatchError` naming what differs), or with
    `overwrite_output_dir` deleted first."""
    output = Path(args.output_dir)
    initial = build_model()  # stage 0's model; its config is part of the record
    splits = {"train": train_dataset, "unlabeled": unlabeled_dataset, "validation": eval_dataset, "test": test_dataset}
    config = {key: value for key, value in initial.config.to_diff_dict().items() if key != "transformers_version"}
    record = {"model": initial.config.model_type, "config": config,
              "data": dataset_digest({name: split for name, split in splits.items() if split is not None}),
              "self_training": dataclasses.asdict(self_training_args)}
    claim_output_dir(output, record, overwrite=overwrite_output_dir, write=args.process_index == 0,
                     flag="overwrite_output_dir=True", record_file=RUN_FILE, patterns=("stage-*",))
    labeled = subsample_labeled(train_dataset, self_training_args.label_fraction, self_training_args.label_fraction_seed)
    logger.info("Self-training on %d labelled of %d and %d unlabelled samples", len(labeled), len(train_dataset),
                len(unlabeled_dataset))
    results, model = [], None
    for stage in range(self_training_args.self_training_rounds + 1):
        stage_dir = output / f"stage-{stage}"
        stage_args = copy.deepcopy(args)
        stage_args.output_dir = str(stage_dir)
        training_set, counts = labeled, None
        if stage > 0:
            num_classes = model.config.num_emotion_classes
            selection = _pseudo_label_selection(model, unlabeled_dataset, stage_args, self_training_args, stage_dir)
            counts = {int(c): int(n) for c, n in zip(*np.unique(selection["classes"], return_counts=True))}
            pseudo = pseudo_labeled(unlabeled_dataset, np.asarray(selection["indices"], dtype=np.int64),
                                    np.asarray(selection["classes"]), train_dataset.features["label"])
            labeled_rows = with_pseudo_columns(labeled, num_classes)
            training_set = concatenate_datasets([labeled_rows, pseudo.cast(labeled_rows.features)]).with_format("numpy")
            logger.info("Stage %d: %d pseudo-labels per class %s", stage, len(pseudo), counts)
        model, metrics = _train_stage(
            build_model, initial if stage == 0 else model, training_set, eval_dataset, test_dataset, stage_args,
            stage_dir, fresh=stage > 0 and self_training_args.retrain_from_scratch,
        )
        results.append(StageResult(stage, str(stage_dir / "model"), metrics, counts))
    return results


def _pseudo_label_selection(model, unlabeled, stage_args, self_training_args, stage_dir: Path) -> dict:
    selection_file = stage_dir / "pseudo_labels.json"
    predict_args = copy.deepcopy(stage_args)
    predict_args.eval_strategy, predict_args.load_best_model_at_end = IntervalStrategy.NO, False
    predictor = MSATrainer(model=model, args=predict_args)
    finished = selection_file.exists()
    predictor.accelerator.wait_for_everyone()  # every rank decides before rank 0 may write the file
    if finished:
        return json.loads(selection_file.read_text())
    inputs = unlabeled.remove_columns("label") if "label" in unlabeled.column_names else unlabeled
    predictions = predictor.predict(inputs, metric_key_prefix="unlabeled").predictions
    emotion_logits = predictions[1] if isinstance(predictions, (tuple, list)) else predictions
    probabilities = torch.softmax(torch.as_tensor(np.asarray(emotion_logits)), dim=-1).numpy()
    indices, classes, confidences = select_top_k_per_class(probabilities, self_training_args.top_k)
    ids = unlabeled.select(indices.tolist())["id"] if "id" in unlabeled.column_names else indices.tolist()
    selection = {
        "top_k": self_training_args.top_k,
        "num_unlabeled": len(unlabeled),
        "counts_per_class": {int(c): int((classes == c).sum()) for c in range(probabilities.shape[1])},
        "indices": indices.tolist(),
        "ids": list(ids),
        "classes": classes.tolist(),
        "confidences": confidences.tolist(),
    }
    if predictor.is_world_process_zero():
        stage_dir.mkdir(parents=True, exist_ok=True)
        _write_json(selection_file, selection)
    return selection


def _train_stage(build_model, previous, training_set, eval_dataset, test_dataset, stage_args, stage_dir: Path,
                 fresh: bool):
    done_file = stage_dir / DONE_FILE
    model_dir = stage_dir / "model"
    if done_file.exists():
        logger.info("Stage %s already finished: loading %s", stage_dir.name, model_dir)
        model = AutoModelForSequenceClassification.from_pretrained(model_dir)  # the model with its heads
        return model, json.loads(done_file.read_text()).get("test_metrics")
    model = build_model() if fresh or previous is None else previous
    trainer = MSATrainer(model=model, args=stage_args, train_dataset=training_set, eval_dataset=eval_dataset)
    resume = last_complete_checkpoint(stage_dir)
    trainer.train(resume_from_checkpoint=resume)
    metrics = None
    if test_dataset is not None:
        raw = trainer.evaluate(test_dataset, metric_key_prefix="test")
        metrics = {k.removeprefix("test_"): v for k, v in raw.items() if not k.endswith(("runtime", "per_second"))}
    model = trainer.accelerator.unwrap_model(trainer.model)
    if trainer.is_world_process_zero():
        model.save_pretrained(model_dir)
        _write_json(stage_dir / LOG_HISTORY_FILE, trainer.state.log_history)  # the stage's learning curves
        _write_json(done_file, {"test_metrics": metrics})
    trainer.accelerator.wait_for_everyone()
    return model, metrics
