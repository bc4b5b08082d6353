"""Run under `torchrun --nproc_per_node 2`: self-training; each rank records the pseudo set it selected."""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

import training_msa.self_training as self_training
from dataset_scripts import SyntheticMSAConfig, make_synthetic_dataset
from modeling_msa import SemiIINConfig, SemiIINForSentimentAnalysis
from training_msa import MSATrainingArguments

output = Path(sys.argv[1])
original = self_training.select_top_k_per_class


def recording_select(probabilities, k):
    indices, classes, confidences = original(probabilities, k)
    record = {"indices": indices.tolist(), "classes": classes.tolist(), "rows": len(probabilities)}
    (output / f"selection_rank{dist.get_rank()}.json").write_text(json.dumps(record))
    return indices, classes, confidences


self_training.select_top_k_per_class = recording_select
args = MSATrainingArguments(output_dir=str(output / "run"), num_train_epochs=1, per_device_train_batch_size=8,
                            learning_rate=3e-3, save_strategy="no", disable_tqdm=True, seed=0,
                            metrics_profile="synthetic")
with args.main_process_first():
    data = make_synthetic_dataset(
        SyntheticMSAConfig(num_train=32, num_validation=8, num_test=8, num_unlabeled=41, text_length=6, text_dim=12,
                           audio_length=24, audio_dim=6, vision_length=7, vision_dim=5),
        cache_dir=str(output / "cache"),
    )


def build_model():
    torch.manual_seed(0)
    return SemiIINForSentimentAnalysis(SemiIINConfig(
        text_feature_size=12, audio_feature_size=6, vision_feature_size=5, hidden_size=16, num_attention_heads=2,
        intermediate_size=32, head_hidden_size=8, max_audio_tokens=4, max_text_tokens=6, max_vision_tokens=7,
    ))


results = self_training.run_self_training(
    build_model, data["train"], data["unlabeled"], args,
    self_training.SelfTrainingArguments(self_training=True, pseudo_label_top_k=4), test_dataset=data["test"],
)
assert dist.get_world_size() == 2 and len(results) == 2
assert args.parallel_mode.value == "distributed" and args.world_size == 2
dist.destroy_process_group()  # a clean exit on every rank
