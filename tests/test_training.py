import json
import math
import re
from pathlib import Path

import pytest
import torch

from conftest import tiny_semi_iin_config
from train_runner import run_train_script, train_script
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
    assert config["attention_dropout"] == 0.1 and config["separate_key_value_dropout"] is True  # paper recipe
    assert "_attn_implementation" not in config  # the CPU plug-in's attention function is not saved
    assert "cpu_word_dropout" in json.loads((folder / "training_args.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_semi_iin.SemiIINModel"
    assert config["auto_map"]["AutoModelForSequenceClassification"] == "modeling_semi_iin.SemiIINForSentimentAnalysis"
    assert config["text_feature_size"] == 12 and config["max_audio_tokens"] == 5  # 40 frames / 8
    assert (folder / "model.safetensors").exists() and not list(folder.glob("*.bin"))
    card = (folder / "README.md").read_text()
    assert "model-index" in card and "Has0_acc_2" in card
    metrics = json.loads((folder / "test_results.json").read_text())
    assert 0.0 <= metrics["Has0_acc_2"] <= 1.0
    assert json.loads((folder / "training_args.json").read_text())["num_train_epochs"] == 1


def test_yaml_recipe_reaches_every_hyper_parameter():
    train = train_script()
    model_args, data_args, config_args, _, _, training_args = train.parse_arguments([str(ROOT / "configs/semi_iin.yaml")])
    assert training_args.learning_rate == pytest.approx(1e-4) and training_args.num_train_epochs == 30
    assert config_args.regression_loss_weight == pytest.approx(0.6) and config_args.fusion == "gate"
    # every hyper-parameter of both models has a flag, except what the data decides
    import dataclasses

    from modeling_msa import SemiIINConfig, SharedPrivateConfig
    from training_msa.arguments import own_fields

    flags = {f.name for f in dataclasses.fields(config_args)}
    for config_class in (SemiIINConfig, SharedPrivateConfig):
        own = {f.name for f in own_fields(config_class)}
        assert own - flags <= set(train.DATA_DERIVED), own - flags


@pytest.mark.parametrize("model_name", ["shared_private", "self_mm"])
def test_shared_private_short_run_improves_over_first_epoch(tmp_path, model_name):
    from modeling_msa import SharedPrivateConfig, SharedPrivateForSentimentAnalysis
    from training_msa import SharedPrivateTrainer, SharedPrivateTrainingArguments

    data = make_synthetic_dataset(SyntheticMSAConfig(**{**TINY_DATA, "num_train": 320}), cache_dir=str(tmp_path / "c"))
    factory = SharedPrivateConfig.self_mm if model_name == "self_mm" else SharedPrivateConfig
    torch.manual_seed(0)
    model = SharedPrivateForSentimentAnalysis(factory(text_input="features", text_feature_size=12,
                                                      audio_feature_size=6, vision_feature_size=5))
    args = SharedPrivateTrainingArguments(
        output_dir=str(tmp_path / "run"), num_train_epochs=8, learning_rate=3e-3, audio_learning_rate=5e-3,
        vision_learning_rate=5e-3, per_device_train_batch_size=16, eval_strategy="epoch", save_strategy="no",
        metrics_profile="synthetic", disable_tqdm=True, seed=0,
    )
    trainer = SharedPrivateTrainer(model=model, args=args, train_dataset=data["train"], eval_dataset=data["validation"])
    trainer.train()
    maes = [entry["eval_MAE"] for entry in trainer.state.log_history if "eval_MAE" in entry]
    assert len(maes) == 8
    assert min(maes[1:]) < maes[0] - 0.05, maes
    # ULGM moved the unimodal labels away from the multimodal ones during training
    assert not torch.allclose(trainer.label_bank.labels("audio"), trainer.label_bank.labels("fusion"))
    rates = sorted({group["initial_lr"] for group in trainer.optimizer.param_groups})
    assert rates == [3e-3, 5e-3]  # audio/vision LSTMs at 5e-3, the rest at 3e-3


def test_train_script_runs_self_mm(tmp_path):
    flags = [f"--synthetic_{k} {v}" for k, v in TINY_DATA.items()]
    argv = " ".join(flags).split() + [
        "--model", "self_mm", "--num_train_epochs", "2", "--output_dir", str(tmp_path / "out"),
        "--dataset_cache_dir", str(tmp_path / "cache"), "--disable_tqdm", "true",
    ]
    stdout = run_train_script(*argv, cwd=tmp_path)
    assert "Test metrics (synthetic, self_mm)" in stdout
    config = json.loads((tmp_path / "out" / "model" / "config.json").read_text())
    assert config["model_type"] == "shared_private" and config["alignment_loss_weight"] == 0
    assert config["auto_map"]["AutoModel"] == "modeling_shared_private.SharedPrivateForSentimentAnalysis"
    assert (config["auto_map"]["AutoModelForSequenceClassification"]
            == "modeling_shared_private.SharedPrivateForSentimentAnalysis")
    assert (tmp_path / "out" / "model" / "modeling_shared_private.py").exists()
    plots = {path.name for path in (tmp_path / "out" / "model" / "plots").glob("*.png")}
    assert plots == {"learning_curves.png", "predicted_vs_true.png", "confusion_matrix.png"}  # no gate: not Semi-IIN


def test_train_script_rejects_flags_of_another_model(tmp_path):
    with pytest.raises(SystemExit, match=re.escape("--model semi_iin has no hyper-parameter(s) ['alignment_loss_weight']")):
        run_train_script("--model", "semi_iin", "--alignment_loss_weight", "0.3", "--synthetic_num_train", "8",
                         "--dataset_cache_dir", str(tmp_path / "c"), "--output_dir", str(tmp_path / "o"), cwd=tmp_path)


@pytest.mark.parametrize("recipe", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_every_recipe_parses_and_names_a_known_model(recipe):
    train = train_script()
    model_args, _, config_args, _, _, training_args = train.parse_arguments([str(ROOT / "configs" / recipe)])
    assert model_args.model in train.MODELS
    assert training_args.metric_for_best_model == "MAE" and training_args.greater_is_better is False
    if model_args.model == "semi_iin":  # the official code's layer(x, x, x): q and k/v streams dropped apart
        assert config_args.separate_key_value_dropout is True


RECIPE_CITATIONS = {  # a comment's words -> the resolved TrainingArguments field(s) they give
    r"\bbatch (\d+)": ("per_device_train_batch_size",),
    r"(?<!stop )\b(\d+) epochs": ("num_train_epochs",),
    r"\bearly stop (\d+) epochs": ("early_stopping_patience",),
    r"\bAdam lr ([0-9.e-]+)": ("learning_rate",),
    r"\blr (?:text|BERT)/audio/vision/other ([0-9.e-]+)/([0-9.e-]+)/([0-9.e-]+)/([0-9.e-]+)":
        ("text_encoder_learning_rate", "audio_learning_rate", "vision_learning_rate", "learning_rate"),
    r"\bweight decay ([0-9.e-]+)(?![0-9./])": ("weight_decay",),
    r"\b(\d+)-batch gradient accumulation|update_epochs=(\d+)": ("gradient_accumulation_steps",),
}
EXTERNAL_CITATIONS = {"config_regression.json", "code/model.py"}  # MMSA 2.2.1's and flow-ljh/Semi-IIN's files


@pytest.mark.parametrize("recipe", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_every_recipe_trains_as_its_comment_says(recipe):
    """Each recipe's resolved TrainingArguments hold the values its comment cites; every recipe is a paper's or
    MMSA's, so constant LR, no clipping and Adam with L2 weight decay; its comments cite only files of this project,
    MMSA's or the official code's."""
    import re

    text = (ROOT / "configs" / recipe).read_text()
    comment = " ".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
    training_args = train_script().parse_arguments([str(ROOT / "configs" / recipe)])[-1]
    assert training_args.lr_scheduler_type == "constant" and training_args.max_grad_norm == 0
    assert training_args.adam_l2_weight_decay is True
    cited = 0
    for pattern, fields in RECIPE_CITATIONS.items():
        for match in re.finditer(pattern, comment):
            values = [float(value) for value in match.groups() if value is not None]
            for field_name, value in zip(fields, values):
                assert getattr(training_args, field_name) == pytest.approx(value), (recipe, field_name, match[0])
                cited += 1
    assert cited >= 3, (recipe, comment)
    for name in re.findall(r"[\w./-]+\.(?:md|py|json|yaml|csv)\b", comment):
        assert name in EXTERNAL_CITATIONS or (ROOT / name).exists(), (recipe, name)


def test_train_script_self_training(tmp_path):
    flags = [f"--synthetic_{k} {v}" for k, v in {**TINY_DATA, "num_unlabeled": 40}.items()]
    argv = " ".join(flags).split() + [
        "--hidden_size", "16", "--num_attention_heads", "2", "--intermediate_size", "32", "--head_hidden_size", "8",
        "--self_training", "true", "--pseudo_label_top_k", "3", "--label_fraction", "0.5", "--num_train_epochs", "1",
        "--output_dir", str(tmp_path / "out"), "--dataset_cache_dir", str(tmp_path / "cache"), "--disable_tqdm", "true",
    ]
    stdout = run_train_script(*argv, cwd=tmp_path)
    assert "Test metrics, stage 0 (supervised)" in stdout and "Test metrics, stage 1 (self-training round 1)" in stdout
    assert "pseudo-labels kept per class:" in stdout
    for name in ("learning_curves.png", "predicted_vs_true.png", "confusion_matrix.png", "gate_values.png"):
        assert (tmp_path / "out" / "model" / "plots" / name).stat().st_size > 5000, name  # pictures of the final stage
    selection = json.loads((tmp_path / "out" / "stage-1" / "pseudo_labels.json").read_text())
    assert max(selection["counts_per_class"].values()) <= 3
    assert (tmp_path / "out" / "model" / "model.safetensors").exists()


def test_launching_users_thread_setting_is_read_from_the_parent_process():
    """A launcher process (as `accelerate launch`) started with or without OMP_NUM_THREADS in its environment runs a
    child that asks whether its launching user chose a thread count."""
    import os
    import subprocess
    import sys

    check = "from training_msa.runtime import threads_set_by_the_launching_user as f; print(f())"
    launcher = ("import os, subprocess, sys; env = {**os.environ, 'OMP_NUM_THREADS': '1'}; "  # as accelerate writes it
                f"subprocess.run([sys.executable, '-c', {check!r}], env=env)")
    base = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    for extra, expected in (({"OMP_NUM_THREADS": "1"}, "True"), ({}, "False")):
        printed = subprocess.run([sys.executable, "-c", launcher], capture_output=True, text=True, cwd=ROOT,
                                 env={**base, **extra})
        assert printed.stdout.strip() == expected, printed.stderr[-500:]


def test_single_accelerate_process_gets_every_core(monkeypatch):
    import os

    from training_msa import runtime
    from training_msa.runtime import use_all_cpu_threads_when_alone

    before = torch.get_num_threads()
    monkeypatch.setenv("ACCELERATE_DYNAMO_BACKEND", "no")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    try:
        torch.set_num_threads(1)
        use_all_cpu_threads_when_alone()
        assert torch.get_num_threads() == len(os.sched_getaffinity(0))
        monkeypatch.setenv("WORLD_SIZE", "2")  # several processes share the cores: leave them alone
        torch.set_num_threads(1)
        use_all_cpu_threads_when_alone()
        assert torch.get_num_threads() == 1
        monkeypatch.delenv("WORLD_SIZE")
        monkeypatch.setattr(runtime, "threads_set_by_the_launching_user", lambda: True)  # the user chose 1
        use_all_cpu_threads_when_alone()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_multiseed_runner_reports_mean_and_std_and_resumes(tmp_path, capsys):
    from training_msa.multiseed import summarize

    summary = summarize({1: {"MAE": 0.5, "Corr": 0.7}, 2: {"MAE": 0.7, "Corr": 0.9}})
    assert summary["MAE"]["mean"] == pytest.approx(0.6) and summary["MAE"]["std"] == pytest.approx(0.141421, rel=1e-5)
    flags = [f"--synthetic_{k}={v}" for k, v in TINY_DATA.items()]
    argv = ["--seeds", "3", "4", "--", *flags, "--hidden_size=16", "--num_attention_heads=2", "--num_train_epochs=1",
            f"--output_dir={tmp_path / 'sweep'}", f"--dataset_cache_dir={tmp_path / 'cache'}", "--disable_tqdm=true"]
    from training_msa import multiseed

    multiseed.main(argv, runner=in_process)
    assert "Test metrics over seeds [3, 4] (mean ± std)" in capsys.readouterr().out
    report = json.loads((tmp_path / "sweep" / "multiseed_results.json").read_text())
    assert sorted(report["results"]) == ["3", "4"] and "MAE" in report["summary"]
    assert report["results"]["3"] != report["results"]["4"]  # the seeds really differ
    multiseed.main(argv, runner=in_process)
    assert "[multiseed] seed" not in capsys.readouterr().out  # finished seeds are not rerun
    recorded = json.loads((tmp_path / "sweep" / "multiseed_run.json").read_text())["train_arguments"]
    assert "--hidden_size=16" in recorded
    other = [a.replace("--hidden_size=16", "--hidden_size=32") for a in argv]
    with pytest.raises(ValueError, match=r"holds seeds trained with other train.py arguments"):
        multiseed.main(other, runner=in_process)  # never reported beside the seeds of another setting


def test_shared_private_with_human_unimodal_labels(tmp_path):
    from modeling_msa import SharedPrivateConfig, SharedPrivateForSentimentAnalysis
    from training_msa import SharedPrivateTrainer, SharedPrivateTrainingArguments

    data = make_synthetic_dataset(SyntheticMSAConfig(**{**TINY_DATA, "num_train": 32}), cache_dir=str(tmp_path / "c"))
    train = data["train"].with_format(None)
    for column, shift in (("label_T", 0.5), ("label_A", -0.5), ("label_V", 0.0)):
        train = train.add_column(column, [float(x) + shift for x in train["label"]])
    train = train.with_format("numpy")
    model = SharedPrivateForSentimentAnalysis(SharedPrivateConfig(
        text_input="features", text_feature_size=12, audio_feature_size=6, vision_feature_size=5,
        unimodal_loss_weighting="uniform"))
    args = SharedPrivateTrainingArguments(output_dir=str(tmp_path / "run"), num_train_epochs=1, save_strategy="no",
                                          use_human_unimodal_labels=True, disable_tqdm=True, metrics_profile="sims")
    trainer = SharedPrivateTrainer(model=model, args=args, train_dataset=train)
    assert trainer.label_bank is None  # no ULGM: the dataset's labels are the unimodal targets
    batch = trainer.data_collator([train[0], train[1]])
    torch.testing.assert_close(batch["text_labels"], batch["labels"] + 0.5)
    torch.testing.assert_close(batch["audio_labels"], batch["labels"] - 0.5)
    result = trainer.train()
    assert trainer.state.global_step == 1 and math.isfinite(result.training_loss)
    with pytest.raises(KeyError, match="needs a 'label_T' column"):
        trainer.data_collator([data["train"][0]])


@pytest.mark.parametrize(
    "model, flags, message",
    [
        ("semi_iin", ["--ulgm_label_bound", "1"], "--ulgm_label_bound: a flag of --model shared_private/self_mm, which --model semi_iin does not read"),
        ("semi_iin", ["--text_encoder_learning_rate", "5e-5"], "--text_encoder_learning_rate: a flag of --model shared"),
        ("self_mm", ["--pseudo_label_top_k", "5"], "--pseudo_label_top_k: a flag of --model semi_iin"),
        ("shared_private", ["--self_training", "true"], "--self_training: a flag of --model semi_iin"),
    ],
)
def test_training_flags_are_scoped_to_the_models_that_read_them(model, flags, message):
    train = train_script()
    parsed = train.parse_arguments(["--model", model, *flags])
    with pytest.raises(SystemExit, match=message):
        train.check_model_arguments(parsed[0], parsed[2], parsed[4], parsed[5])


def test_shared_flags_pass_for_every_model():
    train = train_script()
    for model in train.MODELS:
        parsed = train.parse_arguments(["--model", model, "--label_fraction", "0.5", "--learning_rate", "1e-3"])
        train.check_model_arguments(parsed[0], parsed[2], parsed[4], parsed[5])  # raises SystemExit when a flag is refused


def test_optimizers_are_the_papers_through_trainer_hooks(tmp_path):
    """Semi-IIN: torch.optim.Adam (L2 added to the gradient) decaying every parameter, constant LR, no clipping.
    Self-MM: MMSA's SELF_MM groups (BERT decay / no-decay, audio, vision, other; own lr and wd each)."""
    from conftest import tiny_semi_iin_config
    from encoders import TINY_BERT

    from modeling_msa import SemiIINForSentimentAnalysis, SharedPrivateConfig, SharedPrivateForSentimentAnalysis
    from training_msa import MSATrainer, MSATrainingArguments, SharedPrivateTrainer, SharedPrivateTrainingArguments

    data = make_synthetic_dataset(SyntheticMSAConfig(**TINY_DATA), cache_dir=str(tmp_path / "cache"))
    semi = SemiIINForSentimentAnalysis(tiny_semi_iin_config())
    trainer = MSATrainer(model=semi, args=MSATrainingArguments(output_dir=str(tmp_path / "a"), weight_decay=1e-4),
                         train_dataset=data["train"])
    optimizer = trainer.create_optimizer()
    assert type(optimizer) is torch.optim.Adam and trainer.args.lr_scheduler_type == "constant"
    assert trainer.args.max_grad_norm == 0.0
    decayed = [g for g in optimizer.param_groups if g["weight_decay"] == 1e-4]
    assert sum(len(g["params"]) for g in decayed) == len(list(semi.parameters()))  # biases and norms included

    model = SharedPrivateForSentimentAnalysis(SharedPrivateConfig(
        text_config=dict(TINY_BERT), audio_feature_size=6, vision_feature_size=5))
    args = SharedPrivateTrainingArguments(
        output_dir=str(tmp_path / "b"), learning_rate=1e-3, weight_decay=0.01, text_encoder_learning_rate=5e-5,
        audio_learning_rate=5e-3, vision_learning_rate=1e-4, text_encoder_weight_decay=1e-3, audio_weight_decay=0.0,
        vision_weight_decay=0.0)  # MMSA's MOSEI values
    trainer = SharedPrivateTrainer(model=model, args=args)
    groups = trainer.create_optimizer().param_groups
    assert type(trainer.optimizer) is torch.optim.Adam
    assert [(g["lr"], g["weight_decay"]) for g in groups] == [(5e-5, 1e-3), (5e-5, 0.0), (5e-3, 0.0), (1e-4, 0.0),
                                                              (1e-3, 0.01)]
    names = {id(p): n for n, p in model.named_parameters()}
    members = [{names[id(p)] for p in g["params"]} for g in groups]
    # MMSA: bert_no_decay = ['bias', 'LayerNorm.bias', 'LayerNorm.weight'] by name, inside the text model only.
    mmsa_no_decay = {n for n in names.values() if n.startswith("text_encoder.")
                     and any(k in n for k in ("bias", "LayerNorm.bias", "LayerNorm.weight"))}
    text = {n for n in names.values() if n.startswith("text_encoder.")}
    assert members[1] == mmsa_no_decay and members[0] == text - mmsa_no_decay
    assert members[2] == {n for n in names.values() if n.startswith("audio_encoder.")}
    assert any(n.endswith("bias") for n in members[4])  # "other" decays its biases too, as MMSA


@pytest.mark.parametrize("older_trainer", [False, True])
def test_accumulated_gradients_are_summed_as_mmsa(tmp_path, monkeypatch, older_trainer):
    """`sum_accumulated_gradients` (MMSA's update_epochs): the gradient of an accumulation window is the sum of its
    batches' gradients, twice the mean Trainer would take over 2 batches. Through Trainer's `loss_is_scaled_for_ga`
    (transformers >= 5.19) or, where Trainer lacks that switch (setting it then changed nothing: averaged
    silently), by a gradient factor on compute_loss's loss that undoes the division (`older_trainer`: forced)."""
    from transformers import TrainerCallback

    from modeling_msa import SharedPrivateConfig, SharedPrivateForSentimentAnalysis
    from training_msa import SharedPrivateTrainer, SharedPrivateTrainingArguments
    from training_msa import shared_private_trainer

    if older_trainer:
        monkeypatch.setattr(shared_private_trainer, "trainer_can_skip_accumulation_division", lambda: False)
    data = make_synthetic_dataset(SyntheticMSAConfig(**{**TINY_DATA, "num_train": 8}), cache_dir=str(tmp_path / "c"))

    class FirstGradients(TrainerCallback):
        def __init__(self):
            self.gradients = {}

        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            if not self.gradients:
                self.gradients.update({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})

    def window_gradients(summed: bool) -> dict:
        torch.manual_seed(0)
        model = SharedPrivateForSentimentAnalysis(SharedPrivateConfig.self_mm(
            text_input="features", text_feature_size=12, audio_feature_size=6, vision_feature_size=5,
            post_fusion_dropout=0.0, post_text_dropout=0.0, post_audio_dropout=0.0, post_vision_dropout=0.0))
        args = SharedPrivateTrainingArguments(
            output_dir=str(tmp_path / str(summed)), per_device_train_batch_size=4, gradient_accumulation_steps=2,
            max_steps=1, save_strategy="no", report_to="none", disable_tqdm=True, seed=0,
            sum_accumulated_gradients=summed)
        recorder = FirstGradients()
        trainer = SharedPrivateTrainer(model=model, args=args, train_dataset=data["train"], callbacks=[recorder])
        trainer.train()
        return recorder.gradients

    summed, averaged = window_gradients(True), window_gradients(False)
    assert summed.keys() == averaged.keys() and len(summed) > 10
    for name, gradient in summed.items():
        torch.testing.assert_close(gradient, 2 * averaged[name], rtol=1e-5, atol=1e-9, msg=name)


def test_a_recipe_combines_with_flags_and_flags_win():
    train = train_script()
    parsed = train.parse_arguments([str(ROOT / "configs" / "semi_iin.yaml"), "--num_train_epochs", "1"])
    assert parsed[5].num_train_epochs == 1.0 and parsed[5].learning_rate == 1e-4 and parsed[2].hidden_size == 128
    with pytest.raises(SystemExit, match="missing.yaml does not exist"):
        train.parse_arguments(["missing.yaml"])


def in_process(arguments: list[str]) -> int:
    """A multiseed/reproduce runner that trains in this process (the default starts one interpreter per seed)."""
    run_train_script(*arguments, cwd=ROOT)
    return 0


def test_reproduce_runs_a_table_row_and_prints_it_beside_the_paper(tmp_path, capsys):
    from training_msa import reproduce

    reproduce.main(["semi_iin", "synthetic", "--quick", "--seeds", "5", "--output_dir", str(tmp_path)],
                   runner=in_process)
    printed = capsys.readouterr().out
    assert "Semi-IIN" in printed and "MAE" in printed
    table = json.loads((tmp_path / "semi_iin-synthetic" / "table.json").read_text())
    assert table[0]["row"] == "Semi-IIN" and table[0]["ours"]["MAE"]["std"] == 0.0  # one seed
    record = json.loads((tmp_path / "semi_iin-synthetic" / "Semi_IIN" / "seed-5" / "msa_run.json").read_text())
    assert table[0]["seeds"] == [5] and set(table[0]["data"]) == {"train", "validation", "test", "unlabeled"}
    assert table[0]["data"]["train"] == record["data"]["splits"]["train"]["content"]  # what the row was trained on
    assert (tmp_path / "semi_iin-synthetic" / "Semi_IIN" / "seed-5" / "stage-1" / "pseudo_labels.json").is_file()
    before = (tmp_path / "semi_iin-synthetic" / "Semi_IIN" / "seed-5" / "model" / "test_results.json").stat().st_mtime_ns
    reproduce.main(["semi_iin", "synthetic", "--quick", "--seeds", "5", "--output_dir", str(tmp_path)],
                   runner=in_process)  # resumes
    after = (tmp_path / "semi_iin-synthetic" / "Semi_IIN" / "seed-5" / "model" / "test_results.json").stat().st_mtime_ns
    assert before == after


def test_reproduce_tables_hold_the_papers_numbers():
    from training_msa.reproduce import format_table, table_rows

    ablation = table_rows("ablation", "mosei")
    assert [name for name, _, _ in ablation][:4] == ["baseline (global, no semi)", "MA only",
                                                     "Semi only (global + semi)", "MA + Semi"]
    assert ablation[0][2] == {"MAE": 0.509, "Corr": 0.793} and "--attention_mode" in ablation[0][1]
    assert table_rows("semi_iin", "mosi")[0][2]["MAE"] == 0.679
    assert table_rows("self_mm", "mosei")[0][2]["Corr"] == 0.765
    assert len(table_rows("label_fraction", "mosi")) == 10
    text = format_table("t", [("MA + Semi", {"MAE": {"mean": 0.5, "std": 0.01}}, {"MAE": 0.497})])
    assert "0.5000 ± 0.0100" in text and "0.4970" in text
    with pytest.raises(SystemExit, match="--unlabeled_data_dir"):
        from training_msa.reproduce import reproduce
        reproduce("semi_iin", "mosi", data_dir="somewhere")


def test_unlabeled_sets_extracted_with_other_encoders_are_refused(tmp_path):
    from types import SimpleNamespace

    from datasets import DatasetDict

    train = train_script()
    labelled = make_synthetic_dataset(SyntheticMSAConfig(**TINY_DATA), cache_dir=str(tmp_path / "a"))
    other = make_synthetic_dataset(SyntheticMSAConfig(**{**TINY_DATA, "text_dim": 20, "num_unlabeled": 8}),
                                   cache_dir=str(tmp_path / "b"))
    DatasetDict({"unlabeled": other["unlabeled"]}).save_to_disk(tmp_path / "ami_features")
    options = SimpleNamespace(unlabeled_dataset="ami", unlabeled_data_dir=str(tmp_path / "ami_features"),
                              unlabeled_split="unlabeled")
    data_args = SimpleNamespace(dataset_cache_dir=None, data_dir="mosi_features", dataset_name="custom")
    with pytest.raises(SystemExit, match=r"Feature sizes differ: mosi_features has .*'text_feature_size': 12.* "
                                         r"has .*'text_feature_size': 20.*same encoders"):
        train.attach_unlabeled(labelled, data_args, options)


def test_early_stopping_selects_on_validation(tmp_path):
    from transformers import EarlyStoppingCallback

    from conftest import tiny_semi_iin_config
    from modeling_msa import SemiIINForSentimentAnalysis
    from training_msa import MSATrainer, MSATrainingArguments

    data = make_synthetic_dataset(SyntheticMSAConfig(**TINY_DATA), cache_dir=str(tmp_path / "cache"))
    args = MSATrainingArguments(output_dir=str(tmp_path / "out"), early_stopping_patience=1, num_train_epochs=30,
                                learning_rate=0.3, eval_strategy="epoch", save_strategy="epoch",
                                load_best_model_at_end=True, metric_for_best_model="MAE", greater_is_better=False,
                                disable_tqdm=True, metrics_profile="synthetic")
    trainer = MSATrainer(model=SemiIINForSentimentAnalysis(tiny_semi_iin_config()), args=args,
                         train_dataset=data["train"], eval_dataset=data["validation"])
    assert any(isinstance(c, EarlyStoppingCallback) for c in trainer.callback_handler.callbacks)
    trainer.train()
    assert trainer.state.epoch < 30  # stopped early (a learning rate this high stops improving fast)
    evaluated = [log for log in trainer.state.log_history if "eval_MAE" in log]
    assert trainer.state.best_metric == min(log["eval_MAE"] for log in evaluated)


@pytest.mark.parametrize("argv, has_amx, expect_bf16", [
    ([], True, True),  # the embedded job on an AMX CPU: bf16 autocast
    ([], False, False),  # any other CPU: fp32
    (["--cpu_amx_bf16", "false"], True, False),
    (["--model", "self_mm"], True, False),  # Semi-IIN only
    ([str(ROOT / "configs" / "semi_iin.yaml")], True, False),  # the paper recipe keeps fp32
])
def test_embedded_job_trains_in_bf16_only_on_amx_cpus(monkeypatch, argv, has_amx, expect_bf16):
    import training_msa.runtime as runtime

    train = train_script()
    monkeypatch.setattr(runtime, "cpu_has_amx_bf16", lambda: has_amx)
    model_args, *_, training_args = train.parse_arguments(argv)
    assert not training_args.bf16
    switched = train.with_cpu_amx_bf16(training_args, model_args.model)
    assert switched.bf16 is expect_bf16 and switched.mixed_precision == ("bf16" if expect_bf16 else "no")
    assert switched.use_cpu is expect_bf16 and switched.output_dir == training_args.output_dir


def test_bf16_without_an_accelerator_means_cpu_autocast():
    from training_msa import MSATrainingArguments

    arguments = MSATrainingArguments(output_dir="unused", bf16=True)  # no --use_cpu needed on a CPU-only machine
    assert arguments.use_cpu and arguments.mixed_precision == "bf16"
