"""UnimodalLabelBank against a float64 reimplementation written from the Self-MM equations (DESIGN.md)."""

import numpy as np
import pytest
import torch

from training_msa import UnimodalLabelBank

SIZES = {"fusion": 6, "text": 4, "audio": 3, "vision": 5}
UNIMODAL = ("text", "audio", "vision")


def reference_ulgm(labels, schedule, bound, exclude_zero):
    """schedule: list of (epoch, indexes, features) in training order. Float64, plain numpy."""
    labels_of = {m: labels.astype(np.float64).copy() for m in SIZES}
    bank = {m: np.zeros((len(labels), d)) for m, d in SIZES.items()}
    centre = {m: {"pos": np.zeros(d), "neg": np.zeros(d)} for m, d in SIZES.items()}

    def delta(features, mode):
        d_p = np.sqrt(((features - centre[mode]["pos"]) ** 2).sum(-1))
        d_n = np.sqrt(((features - centre[mode]["neg"]) ** 2).sum(-1))
        return (d_n - d_p) / (d_p + 1e-8)

    for epoch, indexes, features in schedule:
        if epoch > 1:
            y_m = labels_of["fusion"][indexes]
            delta_f = delta(features["fusion"], "fusion")
            for mode in UNIMODAL:
                delta_s = delta(features[mode], mode)
                alpha = delta_s / (delta_f + 1e-8)
                new = np.clip(0.5 * alpha * y_m + 0.5 * (y_m + delta_s - delta_f), -bound, bound)
                labels_of[mode][indexes] = (epoch - 1) / (epoch + 1) * labels_of[mode][indexes] + 2 / (epoch + 1) * new
        for mode in SIZES:
            bank[mode][indexes] = features[mode]
        for mode in SIZES:
            positive = labels_of[mode] > 0 if exclude_zero else labels_of[mode] >= 0
            centre[mode]["pos"] = bank[mode][positive].mean(0)
            centre[mode]["neg"] = bank[mode][labels_of[mode] < 0].mean(0)
    return labels_of, centre


def make_schedule(num_samples, epochs, batch, seed):
    rng = np.random.default_rng(seed)
    schedule = []
    for epoch in range(1, epochs + 1):
        order = rng.permutation(num_samples)
        for start in range(0, num_samples, batch):
            indexes = order[start : start + batch]
            features = {m: rng.standard_normal((len(indexes), d)) for m, d in SIZES.items()}
            schedule.append((epoch, indexes, features))
    return schedule


@pytest.mark.parametrize("exclude_zero", [True, False])
def test_label_bank_matches_float64_reference(exclude_zero):
    labels = np.array([2.4, -1.2, 0.0, 0.6, -2.8, 1.0, -0.4, 3.0, 0.0, -1.6, 1.8, -0.2])
    schedule = make_schedule(len(labels), epochs=4, batch=5, seed=0)
    expected_labels, expected_centres = reference_ulgm(labels, schedule, bound=1.5, exclude_zero=exclude_zero)

    bank = UnimodalLabelBank(torch.tensor(labels), SIZES, label_bound=1.5, exclude_zero=exclude_zero)
    for epoch, indexes, features in schedule:
        tensors = {m: torch.tensor(f, dtype=torch.float32) for m, f in features.items()}
        bank.step(tensors, torch.tensor(indexes), epoch)  # what SharedPrivateTrainer.training_step calls

    for mode in SIZES:
        np.testing.assert_allclose(bank.labels(mode).numpy(), expected_labels[mode], atol=1e-4)
        for side in ("pos", "neg"):
            np.testing.assert_allclose(bank.center_map[mode][side].numpy(), expected_centres[mode][side], atol=1e-5)
    assert not np.allclose(bank.labels("text").numpy(), labels), "labels must have moved"
    np.testing.assert_array_equal(bank.labels("fusion").numpy(), labels.astype(np.float32))


def test_bank_state_round_trip_and_errors(tmp_path):
    bank = UnimodalLabelBank(torch.tensor([1.0, -1.0, 0.5]), SIZES)
    features = {m: torch.randn(2, d) for m, d in SIZES.items()}
    bank.step(features, torch.tensor([0, 2]), epoch=1)
    bank.step(features, torch.tensor([0, 2]), epoch=2)
    assert not torch.equal(bank.labels("text"), torch.tensor([1.0, -1.0, 0.5])), "epoch 2 must move the labels"
    bank.save(tmp_path / "bank.safetensors")
    other = UnimodalLabelBank(torch.tensor([1.0, -1.0, 0.5]), SIZES)
    other.load(tmp_path / "bank.safetensors")
    for mode in SIZES:
        assert torch.equal(other.labels(mode), bank.labels(mode))
        assert torch.equal(other.feature_map[mode], bank.feature_map[mode])
    with pytest.raises(ValueError, match="epoch counts from 1"):
        bank.step(features, torch.tensor([0, 2]), epoch=0)
    with pytest.raises(ValueError, match="finite multimodal labels"):
        UnimodalLabelBank(torch.tensor([1.0, float("nan")]), SIZES)
    with pytest.raises(ValueError, match="lacks modes"):
        UnimodalLabelBank(torch.tensor([1.0]), {"fusion": 2})
