"""Metrics on cases computed by hand from the MMSA metricsTop definitions (see DESIGN.md)."""

import math

import numpy as np
import pytest
from transformers import EvalPrediction

from training_msa import build_compute_metrics, compute_msa_metrics


def pearson(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    return cov / math.sqrt(sum((x - mx) ** 2 for x in xs) * sum((y - my) ** 2 for y in ys))


def test_mosi_metrics_hand_computed():
    predictions = [2.6, -0.4, 0.0, -1.2, 1.4]
    truths = [3.0, 0.0, -0.5, -1.0, 2.0]
    metrics = compute_msa_metrics(predictions, truths, "mosi")
    # Has0: truth >= 0 -> [T,T,F,F,T], pred >= 0 -> [T,F,T,F,T]: 3/5 right;
    # weighted F1 = (3 * 2/3 + 2 * 1/2) / 5.
    assert metrics["Has0_acc_2"] == pytest.approx(0.6)
    assert metrics["Has0_F1_score"] == pytest.approx(0.6)
    # Non0 drops the zero truth: [T,F,F,T] vs [T,F,F,T].
    assert metrics["Non0_acc_2"] == pytest.approx(1.0)
    assert metrics["Non0_F1_score"] == pytest.approx(1.0)
    # Acc7: round(clip) preds [3,-0,0,-1,1] vs truths [3,0,-0,-1,2] -> 4/5; Acc5 likewise on [-2,2].
    assert metrics["Mult_acc_7"] == pytest.approx(0.8)
    assert metrics["Mult_acc_5"] == pytest.approx(0.8)
    assert metrics["MAE"] == pytest.approx((0.4 + 0.4 + 0.5 + 0.2 + 0.6) / 5)
    assert metrics["Corr"] == pytest.approx(pearson(predictions, truths))


def test_mosi_round_half_to_even_like_numpy():
    # np.round(2.5) == 2 and np.round(-0.5) == -0: MMSA's Acc-7 inherits banker's rounding.
    metrics = compute_msa_metrics([2.5, -0.5], [2.0, 0.0], "mosei")
    assert metrics["Mult_acc_7"] == 1.0


def test_sims_metrics_hand_computed():
    predictions = [0.8, -0.05, 0.3, -0.9, 1.5]
    truths = [0.6, 0.2, 0.0, -0.8, 1.0]
    metrics = compute_msa_metrics(predictions, truths, "sims")
    # Acc2 bins {[-1,0],(0,1]}: preds [1,0,1,0,1] vs truths [1,1,0,0,1].
    assert metrics["Mult_acc_2"] == pytest.approx(0.6)
    # Acc3 {[-1,-.1],(-.1,.1],(.1,1]}: preds [2,1,2,0,2] vs truths [2,2,1,0,2].
    assert metrics["Mult_acc_3"] == pytest.approx(0.6)
    # Acc5: preds [4,2,3,0,4] vs truths [3,3,2,0,4].
    assert metrics["Mult_acc_5"] == pytest.approx(0.4)
    assert metrics["F1_score"] == pytest.approx(0.6)
    # MAE/Corr on values clipped to [-1, 1] (1.5 -> 1.0).
    assert metrics["MAE"] == pytest.approx((0.2 + 0.25 + 0.3 + 0.1 + 0.0) / 5)
    assert metrics["Corr"] == pytest.approx(pearson([0.8, -0.05, 0.3, -0.9, 1.0], truths))


def test_trainer_compute_metrics_adds_class_head_accuracy():
    logits = np.array([1.0, -2.0, 0.1])
    labels = np.array([1.2, -1.9, 2.7])  # classes 4, 1, 6
    emotion_logits = np.zeros((3, 7))
    emotion_logits[[0, 1, 2], [4, 1, 3]] = 1.0  # right, right, wrong
    metrics = build_compute_metrics("mosi")(EvalPrediction(predictions=(logits, emotion_logits), label_ids=labels))
    assert metrics["Head_acc_7"] == pytest.approx(2 / 3)
    assert metrics["MAE"] == pytest.approx((0.2 + 0.1 + 2.6) / 3)


def test_metric_input_errors():
    with pytest.raises(ValueError, match="Unknown metrics profile"):
        compute_msa_metrics([1.0], [1.0], "iemocap")
    with pytest.raises(ValueError, match="must be non-empty and match"):
        compute_msa_metrics([1.0, 2.0], [1.0], "mosi")


def test_constant_predictions_give_nan_corr_with_a_reason(caplog):
    import math

    from training_msa.metrics import compute_msa_metrics

    with caplog.at_level("WARNING", logger="training_msa.msa_metrics.msa_metrics"):
        metrics = compute_msa_metrics([0.3, 0.3, 0.3], [1.0, -1.0, 2.0])
    assert math.isnan(metrics["Corr"]) and "the predictions are constant (all 0.3) over 3 samples" in caplog.text


def test_no_pin_memory_warning_without_an_accelerator(tmp_path):
    import torch

    from training_msa import MSATrainingArguments

    args = MSATrainingArguments(output_dir=str(tmp_path))
    assert args.dataloader_pin_memory is torch.accelerator.is_available()


@pytest.mark.parametrize("profile", ["mosi", "sims"])
def test_the_evaluate_module_loads_offline_and_equals_compute_msa_metrics(profile, monkeypatch):
    """`evaluate.load` of the folder (what could be pushed as a metric Space), offline: the same numbers as the
    trainer's `compute_msa_metrics`, on labels with exact zeros and bin edges; the model-index types cover them."""
    import math

    import evaluate
    import numpy as np

    from training_msa.metrics import METRIC_MODULE, MODEL_INDEX_TYPES, compute_msa_metrics

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    bound = 1.0 if profile == "sims" else 3.0
    rng = np.random.default_rng(0)
    references = np.round(rng.uniform(-bound, bound, 64) * 10) / 10  # exact zeros and edges among them
    predictions = references + rng.normal(0, 0.4 * bound, 64)
    metric = evaluate.load(str(METRIC_MODULE), profile)
    got = metric.compute(predictions=predictions, references=references)
    expected = compute_msa_metrics(predictions, references, profile)
    assert got.keys() == expected.keys() and set(got) <= set(MODEL_INDEX_TYPES)
    for name, value in expected.items():
        assert math.isclose(got[name], value, rel_tol=1e-12, abs_tol=1e-12), name
    with pytest.raises(ValueError, match="expected one of"):
        evaluate.load(str(METRIC_MODULE), "iemocap")
