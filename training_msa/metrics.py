"""The trainer's metrics: the standard multimodal sentiment metrics of the `evaluate` module `msa_metrics` (exactly
MMSA's `metricsTop`), plus the class head's accuracy."""

from pathlib import Path

import numpy as np
import torch
from transformers import EvalPrediction

from modeling_msa.msa_utils import intensity_to_class

from .msa_metrics.msa_metrics import MODEL_INDEX_TYPES, compute_msa_metrics, mosi_metrics, sims_metrics
from .training_args import METRIC_PROFILES

METRIC_MODULE = Path(__file__).parent / "msa_metrics"  # evaluate.load(str(METRIC_MODULE), profile)
__all__ = ["METRIC_MODULE", "MODEL_INDEX_TYPES", "build_compute_metrics", "compute_msa_metrics", "mosi_metrics",
           "sims_metrics"]


def build_compute_metrics(profile: str = "mosi", num_emotion_classes: int = 7):
    """A `compute_metrics` for `Trainer`: intensity metrics of `profile`, plus the accuracy of the class head
    (`Head_acc_7`) when the model returns `emotion_logits`."""
    if profile not in METRIC_PROFILES:
        raise ValueError(f"Unknown metrics profile {profile!r}; expected one of {METRIC_PROFILES}.")

    def compute_metrics(eval_prediction: EvalPrediction) -> dict[str, float]:
        outputs = eval_prediction.predictions
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        labels = np.asarray(eval_prediction.label_ids, dtype=np.float64).reshape(-1)
        metrics = compute_msa_metrics(outputs[0], labels, profile)
        if len(outputs) > 1 and np.ndim(outputs[1]) == 2 and np.shape(outputs[1])[-1] == num_emotion_classes:
            truth_classes = intensity_to_class(torch.from_numpy(labels), num_emotion_classes).numpy()
            metrics[f"Head_acc_{num_emotion_classes}"] = float(np.mean(outputs[1].argmax(-1) == truth_classes))
        return metrics

    return compute_metrics
