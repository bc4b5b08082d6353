"""Run under `torchrun --nproc_per_node 2`: trains Self-MM/shared-private with ULGM and writes each rank's bank."""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from dataset_scripts import SyntheticMSAConfig, make_synthetic_dataset
from modeling_msa import SharedPrivateConfig, SharedPrivateForSentimentAnalysis
from training_msa import SharedPrivateTrainer, SharedPrivateTrainingArguments

output, model_name = Path(sys.argv[1]), sys.argv[2]
args = SharedPrivateTrainingArguments(
    output_dir=str(output / "run"), num_train_epochs=3, per_device_train_batch_size=8, gradient_accumulation_steps=2,
    learning_rate=3e-3, save_strategy="no", disable_tqdm=True, seed=0, metrics_profile="synthetic",
)
with args.main_process_first():
    data = make_synthetic_dataset(
        SyntheticMSAConfig(num_train=37, num_validation=8, num_test=0, num_unlabeled=0, text_length=6, text_dim=12,
                           audio_length=10, audio_dim=6, vision_length=7, vision_dim=5),
        cache_dir=str(output / "cache"),
    )
factory = SharedPrivateConfig.self_mm if model_name == "self_mm" else SharedPrivateConfig
torch.manual_seed(0)
model = SharedPrivateForSentimentAnalysis(
    factory(text_input="features", text_feature_size=12, audio_feature_size=6, vision_feature_size=5)
)
trainer = SharedPrivateTrainer(model=model, args=args, train_dataset=data["train"])
trainer.train()
rank = dist.get_rank()
assert dist.get_world_size() == 2 and args.parallel_mode.value == "distributed" and args.world_size == 2
# 37 samples over 2 ranks -> 19 per rank -> 3 batches of <= 8 -> 2 optimizer steps per epoch (accumulation 2)
assert trainer.state.global_step == 3 * 2, trainer.state.global_step
trainer.label_bank.save(output / f"bank_rank{rank}.safetensors")
weights = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
torch.save(weights, output / f"weights_rank{rank}.pt")
dist.destroy_process_group()  # a clean exit on every rank
