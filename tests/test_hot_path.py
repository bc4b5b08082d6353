"""The forward pass has no data-dependent host sync once input checks are off (as under MSATrainer), and at most
one (the fused `InputValueChecks`) when they are on."""

import pytest
import torch
from conftest import random_batch, tiny_semi_iin_config
from torch.utils._python_dispatch import TorchDispatchMode

from modeling_msa import SemiIINForSentimentAnalysis, SharedPrivateConfig, SharedPrivateForSentimentAnalysis
from modeling_msa.msa_utils import InputValueChecks

SYNCING_OPS = ("aten._local_scalar_dense", "aten.equal", "aten.is_nonzero", "aten.nonzero", "aten.masked_select")


class HostSyncRecorder(TorchDispatchMode):
    """Records every op that needs a tensor's data on the host, and every `Tensor.tolist`."""

    def __init__(self, monkeypatch):
        super().__init__()
        self.syncs = []
        original = torch.Tensor.tolist

        def recording_tolist(tensor):
            self.syncs.append("tolist")
            return original(tensor)

        monkeypatch.setattr(torch.Tensor, "tolist", recording_tolist)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if str(func).startswith(SYNCING_OPS):
            self.syncs.append(str(func))
        return func(*args, **(kwargs or {}))


def shared_private_batch():
    batch = random_batch()
    batch.pop("text_attention_mask")
    batch["text_features"] = torch.randn(3, 10, 12)
    return batch


MODELS = {
    "semi_iin": lambda: SemiIINForSentimentAnalysis(tiny_semi_iin_config()),
    "semi_iin_global": lambda: SemiIINForSentimentAnalysis(
        tiny_semi_iin_config(attention_mode="global")
    ),
    "shared_private": lambda: SharedPrivateForSentimentAnalysis(
        SharedPrivateConfig(text_input="features", text_feature_size=12, audio_feature_size=6, vision_feature_size=5)
    ),
}
BATCHES = {"semi_iin": random_batch, "semi_iin_global": random_batch, "shared_private": shared_private_batch}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_training_forward_and_loss_have_no_host_sync_with_checks_off(name, monkeypatch):
    torch.manual_seed(0)
    model = MODELS[name]().train()
    batch = BATCHES[name]()
    model.validate_inputs = False
    recorder = HostSyncRecorder(monkeypatch)
    with recorder:
        loss = model(**batch, labels=torch.tensor([1.5, -0.5, 2.0])).loss
    assert recorder.syncs == []
    assert torch.isfinite(loss)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_input_checks_cost_one_fused_sync(name, monkeypatch):
    model = MODELS[name]().eval()
    batch = BATCHES[name]()
    recorder = HostSyncRecorder(monkeypatch)
    with recorder, torch.no_grad():
        model(**batch)
    assert recorder.syncs == ["tolist"]
    bad = {**batch, "audio_attention_mask": batch["audio_attention_mask"] * 2}
    with pytest.raises(ValueError, match="audio_attention_mask must hold only 0"):
        model(**bad)


def test_msa_trainer_skips_the_model_checks_its_collator_made(tmp_path, monkeypatch):
    from dataset_scripts import load_msa_dataset
    from training_msa import MSATrainer, MSATrainingArguments

    data = load_msa_dataset("synthetic", num_train=12, num_validation=4, num_test=4, num_unlabeled=0, text_length=6,
                            audio_length=24, vision_length=5, text_dim=12, audio_dim=6, vision_dim=5)
    model = SemiIINForSentimentAnalysis(tiny_semi_iin_config())
    calls = []
    original = InputValueChecks.raise_if_failed
    monkeypatch.setattr(InputValueChecks, "raise_if_failed", lambda self: calls.append(1) or original(self))
    args = MSATrainingArguments(output_dir=str(tmp_path), num_train_epochs=1, per_device_train_batch_size=4,
                                eval_strategy="epoch", save_strategy="no", disable_tqdm=True, metrics_profile="synthetic")
    MSATrainer(model=model, args=args, train_dataset=data["train"], eval_dataset=data["validation"]).train()
    assert calls == []  # neither the training steps nor the evaluation ran the model's data checks
    assert model.validate_inputs is True  # restored after each step
    model(**random_batch())
    assert calls == [1]


def test_collator_rejects_non_finite_features_naming_the_sample():
    from training_msa import MSADataCollator

    sample = {"id": "clip_7", "label": 0.5, "text_features": [[0.0, float("nan")]], "audio_features": [[1.0]],
              "vision_features": [[1.0]]}
    with pytest.raises(ValueError, match="Sample 'clip_7': text_features contains NaN or inf"):
        MSADataCollator()([sample])
