"""The standard multimodal sentiment analysis (MSA) metrics as an `evaluate` metric module, exactly as MMSA's
`metricsTop` (the reference code of Self-MM and of most MSA papers) computes them.

    import evaluate
    msa = evaluate.load("path/to/msa_metrics", "mosi")            # or "mosei", "synthetic", "sims"
    msa.compute(predictions=[1.2, -0.4], references=[1.0, -1.3])   # {"Has0_acc_2": ..., "MAE": ..., "Corr": ...}

Self-contained (numpy, scikit-learn, evaluate), so that the folder can be pushed to the Hub as a metric Space; msa-hub's
trainer computes its metrics with these same functions (`training_msa/metrics.py`).
"""

import logging
import warnings

import datasets
import evaluate
import numpy as np

logger = logging.getLogger(__name__)
PROFILES = ("mosi", "mosei", "sims", "synthetic")  # the configuration names: MOSI's definitions except for "sims"
# The `type` of each metric in a model card's model-index (the Hub's standard metric ids); the name tells them apart.
MODEL_INDEX_TYPES = {"Has0_acc_2": "accuracy", "Non0_acc_2": "accuracy", "Mult_acc_2": "accuracy",
                     "Mult_acc_3": "accuracy", "Mult_acc_5": "accuracy", "Mult_acc_7": "accuracy",
                     "Has0_F1_score": "f1", "Non0_F1_score": "f1", "F1_score": "f1", "MAE": "mae", "Corr": "pearsonr"}

_CITATION = """@inproceedings{yu2021learning,
  title={Learning Modality-Specific Representations with Self-Supervised Multi-Task Learning for Multimodal Sentiment Analysis},
  author={Yu, Wenmeng and Xu, Hua and Yuan, Ziqi and Wu, Jiele},
  booktitle={Proceedings of the AAAI Conference on Artificial Intelligence}, year={2021}}"""
_DESCRIPTION = "Acc-2 (Has0/Non0), F1, Acc-5, Acc-7, MAE and Pearson correlation of sentiment intensities (MOSI/MOSEI), " \
               "or Acc-2/3/5, F1, MAE and correlation on [-1, 1] (CH-SIMS), as MMSA's metricsTop computes them."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of float): predicted sentiment intensities.
    references (list of float): true intensities (MOSI/MOSEI in [-3, 3], SIMS in [-1, 1]).
Returns: a dict of metric name -> value (NaN where a metric is undefined, e.g. Corr of constant predictions).
"""


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
    if profile not in PROFILES:
        raise ValueError(f"Unknown metrics profile {profile!r}; expected one of {PROFILES}.")
    predictions = np.asarray(predictions, dtype=np.float64).reshape(-1)
    truths = np.asarray(labels, dtype=np.float64).reshape(-1)
    if predictions.shape != truths.shape or predictions.size == 0:
        raise ValueError(f"predictions {predictions.shape} and labels {truths.shape} must be non-empty and match.")
    return sims_metrics(predictions, truths) if profile == "sims" else mosi_metrics(predictions, truths)



@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MSAMetrics(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        if self.config_name not in PROFILES:
            raise ValueError(f"msa_metrics: configuration {self.config_name!r}; expected one of {PROFILES}.")
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation=_CITATION, inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("float64"),
                                        "references": datasets.Value("float64")}),
            reference_urls=["https://github.com/thuiar/MMSA"],
        )

    def _compute(self, predictions, references) -> dict[str, float]:
        return compute_msa_metrics(predictions, references, self.config_name)
