"""Standard multimodal sentiment metrics, exactly as MMSA's `metricsTop` (Self-MM) defines them."""

import logging
import warnings

import numpy as np
import torch
from transformers import EvalPrediction

from modeling_msa.msa_utils import intensity_to_class

from .training_args import METRIC_PROFILES
logger = logging.getLogger(__name__)


def _multiclass_acc(predictions: np.ndarray, truths: np.ndarray) -> float:
    return float(np.sum(np.round(predictions) == np.round(truths)) / float(len(truths)))


def _corr(predictions: np.ndarray, truths: np.ndarray) -> float:
    """Pearson correlation; NaN (with a warning saying why) when the predictions or the labels are constant."""
    for name, values in (("predictions", predictions), ("labels", truths)):
        if len(values) < 2 or np.all(values == values[0]):
            logger.warning("Corr is NaN: the %s are constant (all %s) over %d samples, so a correlation is "
                           "undefined; a model that predicts one value has not learned yet.", name,
                           f"{values[0]:.4g}" if len(values) else "-", len(values))
            return float("nan")
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.corrcoef(predictions, truths)[0][1])


def mosi_metrics(predictions: np.ndarray, truths: np.ndarray) -> dict[str, float]:
    """MOSI/MOSEI: Has0 (>= 0 vs < 0) and Non0 (zeros dropped, > 0) Acc-2/weighted F1, Acc-5 on [-2, 2],
    Acc-7 on [-3, 3] (np.round), MAE and Pearson correlation on unclipped values."""
    from sklearn.metrics import accuracy_score, f1_score  # imported on use: sklearn costs ~1 s of start-up

    non_zero = truths != 0
    non_zero_truth, non_zero_pred = truths[non_zero] > 0, predictions[non_zero] > 0
    binary_truth, binary_pred = truths >= 0, predictions >= 0
    return {
        "Has0_acc_2": float(accuracy_score(binary_pred, binary_truth)),
        "Has0_F1_score": float(f1_score(binary_truth, binary_pred, average="weighted")),
        "Non0_acc_2": float(accuracy_score(non_zero_pred, non_zero_truth)) if non_zero.any() else float("nan"),
        "Non0_F1_score": (
            float(f1_score(non_zero_truth, non_zero_pred, average="weighted")) if non_zero.any() else float("nan")
        ),
        "Mult_acc_5": _multiclass_acc(np.clip(predictions, -2.0, 2.0), np.clip(truths, -2.0, 2.0)),
        "Mult_acc_7": _multiclass_acc(np.clip(predictions, -3.0, 3.0), np.clip(truths, -3.0, 3.0)),
        "MAE": float(np.mean(np.abs(predictions - truths))),
        "Corr": _corr(predictions, truths),
    }


def _bin(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Left-open, right-closed bins (edges[i], edges[i+1]] -> i, as MMSA writes them."""
    binned = values.copy()
    for i in range(len(edges) - 1):
        binned[np.logical_and(values > edges[i], values <= edges[i + 1])] = i
    return binned


def sims_metrics(predictions: np.ndarray, truths: np.ndarray) -> dict[str, float]:
    """CH-SIMS: everything on values clipped to [-1, 1]; Acc-2 {[-1,0],(0,1]}, Acc-3 {[-1,-.1],(-.1,.1],(.1,1]},
    Acc-5 {[-1,-.7],(-.7,-.1],(-.1,.1],(.1,.7],(.7,1]}, weighted F1 on the Acc-2 bins, MAE, Corr."""
    from sklearn.metrics import f1_score

    predictions, truths = np.clip(predictions, -1.0, 1.0), np.clip(truths, -1.0, 1.0)
    two, three, five = [-1.01, 0.0, 1.01], [-1.01, -0.1, 0.1, 1.01], [-1.01, -0.7, -0.1, 0.1, 0.7, 1.01]
    predictions_2, truths_2 = _bin(predictions, two), _bin(truths, two)
    return {
        "Mult_acc_2": _multiclass_acc(predictions_2, truths_2),
        "Mult_acc_3": _multiclass_acc(_bin(predictions, three), _bin(truths, three)),
        "Mult_acc_5": _multiclass_acc(_bin(predictions, five), _bin(truths, five)),
        "F1_score": float(f1_score(truths_2, predictions_2, average="weighted")),
        "MAE": float(np.mean(np.abs(predictions - truths))),
        "Corr": _corr(predictions, truths),
    }


def compute_msa_metrics(predictions, labels, profile: str = "mosi") -> dict[str, float]:
    """Metrics of `profile` ("mosi", "mosei", "synthetic" -> MOSI definitions; "sims" -> SIMS definitions)."""
    if profile not in METRIC_PROFILES:
        raise ValueError(f"Unknown metrics profile {profile!r}; expected one of {METRIC_PROFILES}.")
    predictions = np.asarray(predictions, dtype=np.float64).reshape(-1)
    truths = np.asarray(labels, dtype=np.float64).reshape(-1)
    if predictions.shape != truths.shape or predictions.size == 0:
        raise ValueError(f"predictions {predictions.shape} and labels {truths.shape} must be non-empty and match.")
    return sims_metrics(predictions, truths) if profile == "sims" else mosi_metrics(predictions, truths)


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
