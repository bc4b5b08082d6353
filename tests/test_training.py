import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import tiny_semi_iin_config
from dataset_scripts import SyntheticMSAConfig, make_synthetic_dataset
from modeling_msa import SemiIINForSentimentAnalysis
from training_msa import MSATrainer, MSATrainingArguments

ROOT = Path(__file__).resolve().parents[1]
TINY_DATA = dict(num_train=192, num_validation=48, num_test=48, num_unlabeled=0, text_length=10, text_dim=12,
                 audio_length=40, audio_dim=6, vision_length=9, vision_dim=5, signal=1.0)


def test_short_training_run_lowers_loss_and_error(tmp_path):
    data = make_synthetic_dataset(SyntheticMSAConfig(**TINY_DATA), cache_dir=str(tmp_path / "cache"))
    torch.manual_seed(0)
    model = SemiIINForSentimentAnalysis(tiny_semi_iin_config(input_dropout=0.1))
    args = MSATrainingArguments(
        output_dir=str(tmp_path / "run"), num_train_epochs=8, learning_rate=3e-3, per_device_train_batch_size=16,
        logging_steps=4, save_strategy="no", metrics_profile="synthetic", disable_tqdm=True, seed=0,
    )
    trainer = MSATrainer(model=model, args=args, train_dataset=data["train"], eval_dataset=data["validation"])
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses
    assert after["eval_MAE"] < before["eval_MAE"]
    assert after["eval_Corr"] > 0.5, after


def run_train_script(*argv, cwd):
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *argv], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result.stdout


def test_train_script_end_to_end_writes_hub_ready_folder(tmp_path):
    flags = [f"--synthetic_{k} {v}" for k, v in TINY_DATA.items()]
    argv = " ".join(flags).split() + [
        "--hidden_size", "16", "--num_attention_heads", "2", "--intermediate_size", "32", "--head_hidden_size", "8",
        "--fusion", "add", "--num_train_epochs", "1", "--output_dir", str(tmp_path / "out"),
        "--dataset_cache_dir", str(tmp_path / "cache"), "--disable_tqdm", "true",
    ]
    stdout = run_train_script(*argv, cwd=tmp_path)
    assert "Test metrics (synthetic, semi_iin)" in stdout and "Non0_acc_2" in stdout
    folder = tmp_path / "out" / "model"
    config = json.loads((folder / "config.json").read_text())
    assert config["fusion"] == "add" and config["hidden_size"] == 16
    assert config["auto_map"]["AutoModel"] == "modeling_semi_iin.SemiIINForSentimentAnalysis"
    assert config["text_feature_size"] == 12 and config["max_audio_tokens"] == 5  # 40 frames / 8
    assert (folder / "model.safetensors").exists() and not list(folder.glob("*.bin"))
    card = (folder / "README.md").read_text()
    assert "model-index" in card and "Has0_acc_2" in card
    metrics = json.loads((folder / "test_results.json").read_text())
    assert 0.0 <= metrics["Has0_acc_2"] <= 1.0
    assert json.loads((folder / "training_args.json").read_text())["num_train_epochs"] == 1


def test_yaml_recipe_reaches_every_hyper_parameter():
    sys.path.insert(0, str(ROOT))
    try:
        import train
    finally:
        sys.path.remove(str(ROOT))
    model_args, data_args, semi_iin_args, _, training_args = train.parse_arguments([str(ROOT / "configs/semi_iin.yaml")])
    assert training_args.learning_rate == pytest.approx(1e-4) and training_args.num_train_epochs == 30
    assert semi_iin_args.regression_loss_weight == pytest.approx(0.6) and semi_iin_args.fusion == "gate"
    # every SemiIINConfig field except the data-derived feature sizes has a flag
    from modeling_msa import SemiIINConfig
    import dataclasses
    from transformers import PreTrainedConfig
    base = {f.name for f in dataclasses.fields(PreTrainedConfig)}
    own = {f.name for f in dataclasses.fields(SemiIINConfig)} - base
    flags = {f.name for f in dataclasses.fields(semi_iin_args)}
    assert own - flags == {"text_feature_size", "audio_feature_size", "vision_feature_size"}
