import json

import numpy as np
import pytest
import torch

from conftest import tiny_semi_iin_config
from dataset_scripts import SyntheticMSAConfig, make_synthetic_dataset
from modeling_msa import SemiIINForSentimentAnalysis
from remote_code import run_isolated
from training_msa import MSADataCollator, MSATrainingArguments
from training_msa.run_fingerprint import RunMismatchError
from training_msa.self_training import (
    SelfTrainingArguments,
    pseudo_labeled,
    run_self_training,
    select_top_k_per_class,
    subsample_labeled,
    with_pseudo_columns,
)

TINY_DATA = dict(num_train=96, num_validation=24, num_test=24, num_unlabeled=60, text_length=10, text_dim=12,
                 audio_length=40, audio_dim=6, vision_length=9, vision_dim=5, signal=1.0)


def test_top_k_per_class_on_hand_made_probabilities():
    probabilities = np.array([
        [0.70, 0.20, 0.10],  # 0: class 0, 0.70
        [0.10, 0.80, 0.10],  # 1: class 1, 0.80
        [0.90, 0.05, 0.05],  # 2: class 0, 0.90
        [0.40, 0.35, 0.25],  # 3: class 0, 0.40
        [0.20, 0.30, 0.50],  # 4: class 2, 0.50
        [0.05, 0.60, 0.35],  # 5: class 1, 0.60
        [0.70, 0.15, 0.15],  # 6: class 0, 0.70 (ties with 0: lower index first)
    ])
    indices, classes, confidences = select_top_k_per_class(probabilities, k=2)
    assert indices.tolist() == [2, 0, 1, 5, 4]
    assert classes.tolist() == [0, 0, 1, 1, 2]
    np.testing.assert_allclose(confidences, [0.9, 0.7, 0.8, 0.6, 0.5])
    everything, _, _ = select_top_k_per_class(probabilities, k=None)
    assert everything.tolist() == [2, 0, 6, 3, 1, 5, 4]
    one, one_classes, _ = select_top_k_per_class(probabilities, k=1)
    assert one.tolist() == [2, 1, 4] and one_classes.tolist() == [0, 1, 2]


def test_arguments_validate():
    assert SelfTrainingArguments(pseudo_label_top_k=-1).top_k is None
    with pytest.raises(ValueError, match="label_fraction"):
        SelfTrainingArguments(label_fraction=0.0)
    with pytest.raises(ValueError, match="pseudo_label_top_k"):
        SelfTrainingArguments(pseudo_label_top_k=0)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_synthetic_dataset(SyntheticMSAConfig(**TINY_DATA), cache_dir=str(tmp_path_factory.mktemp("cache")))


def test_label_fraction_is_seeded_and_mixed_rows_feed_the_loss_masks(data):
    eighth = subsample_labeled(data["train"], 1 / 8, seed=3)
    assert len(eighth) == 12
    assert eighth["id"] == subsample_labeled(data["train"], 1 / 8, seed=3)["id"]
    assert eighth["id"] != subsample_labeled(data["train"], 1 / 8, seed=4)["id"]
    labeled = with_pseudo_columns(eighth, 7)
    pseudo = pseudo_labeled(data["unlabeled"], np.array([4, 0]), np.array([6, 2]), data["train"].features["label"])
    batch = MSADataCollator()([labeled.with_format("numpy")[0], pseudo.with_format("numpy")[0],
                               pseudo.with_format("numpy")[1]])
    assert batch["pseudo_label_mask"].tolist() == [False, True, True]
    assert batch["emotion_labels"][1:].tolist() == [6, 2]
    assert torch.isnan(batch["labels"][1:]).all() and torch.isfinite(batch["labels"][0])


def test_tiny_end_to_end_self_training_run_and_resume(tmp_path, data):
    def build_model():
        torch.manual_seed(0)
        return SemiIINForSentimentAnalysis(tiny_semi_iin_config(input_dropout=0.1))

    args = MSATrainingArguments(
        output_dir=str(tmp_path / "st"), num_train_epochs=2, learning_rate=3e-3, per_device_train_batch_size=16,
        save_strategy="epoch", metrics_profile="synthetic", disable_tqdm=True, seed=0,
    )
    st_args = SelfTrainingArguments(self_training=True, pseudo_label_top_k=3, label_fraction=0.5)
    results = run_self_training(build_model, data["train"], data["unlabeled"], args, st_args,
                                eval_dataset=data["validation"], test_dataset=data["test"])
    assert [r.stage for r in results] == [0, 1]
    selection = json.loads((tmp_path / "st" / "stage-1" / "pseudo_labels.json").read_text())
    assert all(count <= 3 for count in selection["counts_per_class"].values())
    assert sum(selection["counts_per_class"].values()) == len(selection["indices"]) == sum(results[1].pseudo_label_counts.values())
    assert len(set(selection["indices"])) == len(selection["indices"])
    assert 0 <= results[1].test_metrics["Has0_acc_2"] <= 1

    # A rerun finds every stage done and retrains nothing.
    model_file = tmp_path / "st" / "stage-1" / "model" / "model.safetensors"
    before = model_file.stat().st_mtime_ns
    again = run_self_training(build_model, data["train"], data["unlabeled"], args, st_args,
                              eval_dataset=data["validation"], test_dataset=data["test"])
    assert model_file.stat().st_mtime_ns == before
    assert again[1].test_metrics == results[1].test_metrics

    result = run_isolated(
        f"""
        import json
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(model_file.parent)!r}, trust_remote_code=True)
        print(json.dumps({{"module": type(model).__module__, "classes": model.config.num_emotion_classes}}))
        """,
        tmp_path,
    )
    assert result["module"].startswith("transformers_modules") and result["classes"] == 7


def test_stages_made_from_other_inputs_are_refused(tmp_path, data):
    """run_self_training called from Python records its inputs: a rerun on other unlabelled data does not reuse the
    finished stages; with overwrite_output_dir it replaces them."""
    def build_model():
        torch.manual_seed(0)
        return SemiIINForSentimentAnalysis(tiny_semi_iin_config())

    args = MSATrainingArguments(output_dir=str(tmp_path / "st"), num_train_epochs=1, per_device_train_batch_size=32,
                                save_strategy="no", metrics_profile="synthetic", disable_tqdm=True, report_to="none")
    st_args = SelfTrainingArguments(self_training=True, pseudo_label_top_k=3)
    run_self_training(build_model, data["train"], data["unlabeled"], args, st_args)
    record = json.loads((tmp_path / "st" / "self_training_run.json").read_text())
    assert set(record["data"]) == {"train", "unlabeled"} and record["self_training"]["pseudo_label_top_k"] == 3

    unlabeled = data["unlabeled"]
    other = unlabeled.map(lambda row: {"text_features": [[-v for v in f] for f in row["text_features"]]},
                          features=unlabeled.features)
    stage_0 = tmp_path / "st" / "stage-0" / "model" / "model.safetensors"
    before = stage_0.stat().st_mtime_ns
    with pytest.raises(RunMismatchError, match=r"made from other inputs: data\.unlabeled\.content differ.*"
                                         r"overwrite_output_dir=True"):
        run_self_training(build_model, data["train"], other, args, st_args)
    with pytest.raises(RunMismatchError, match=r"config\.hidden_size"):  # another model config
        run_self_training(lambda: SemiIINForSentimentAnalysis(tiny_semi_iin_config(hidden_size=24)),
                          data["train"], unlabeled, args, st_args)
    assert stage_0.stat().st_mtime_ns == before
    run_self_training(build_model, data["train"], other, args, st_args, overwrite_output_dir=True)
    assert stage_0.stat().st_mtime_ns != before  # retrained on the new inputs
    assert json.loads((tmp_path / "st" / "self_training_run.json").read_text())["data"]["unlabeled"] != record["data"][
        "unlabeled"]
