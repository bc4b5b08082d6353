"""Model cards a Hub user trusts (metadata checked with huggingface_hub), training pictures, TensorBoard, the
compact `train.py --help`, its start-up imports, and Ctrl-C."""

import ast
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results
from train_runner import ROOT, run_train_script, train_script

from conftest import tiny_semi_iin_config
from modeling_msa import SemiIINForSentimentAnalysis, SharedPrivateConfig, SharedPrivateForSentimentAnalysis
from training_msa.export import save_hub_ready
from training_msa.model_card import CITATIONS, portable_command

TINY = ["--synthetic_num_train", "64", "--synthetic_num_validation", "16", "--synthetic_num_test", "16",
        "--synthetic_num_unlabeled", "0", "--synthetic_text_length", "8", "--synthetic_text_dim", "12",
        "--synthetic_audio_length", "24", "--synthetic_audio_dim", "6", "--synthetic_vision_length", "8",
        "--synthetic_vision_dim", "5", "--hidden_size", "16", "--num_attention_heads", "2", "--intermediate_size", "32",
        "--head_hidden_size", "8", "--disable_tqdm", "true"]


def load_card(folder):
    card = ModelCard.load(folder / "README.md")  # parses the YAML block and validates the model-index
    return card, card.data.to_dict()


def test_card_of_an_evaluated_model_has_the_metadata_the_hub_reads(tmp_path):
    model = SharedPrivateForSentimentAnalysis(SharedPrivateConfig(text_input="features", text_feature_size=12,
                                                                  audio_feature_size=6, vision_feature_size=5))
    folder = save_hub_ready(model, tmp_path / "sp", metrics={"MAE": 0.71, "Corr": 0.8, "epoch": 3.0},
                            dataset_name="mosi", metrics_profile="mosi",
                            command=f"accelerate launch train.py --data_dir {tmp_path}/MOSI --output_dir={tmp_path}/o")
    card, data = load_card(folder)
    umask = os.umask(0)
    os.umask(umask)
    assert folder.stat().st_mode & 0o777 == 0o777 & ~umask  # a mkdir's permissions, not mkdtemp's 0700
    assert data["library_name"] == "transformers" and data["license"] == "apache-2.0"
    assert data["pipeline_tag"] == "other" and data["datasets"] == ["CMU-MOSI"]
    assert {"multimodal-sentiment-analysis", "custom_code", "shared-private"} <= set(data["tags"])
    _, results = model_index_to_eval_results(data["model-index"])
    assert {(r.metric_name, r.metric_value) for r in results} == {("MAE", 0.71), ("Corr", 0.8)}  # no "epoch"
    # the Hub's metric ids, and the configuration of the evaluate module training_msa/msa_metrics
    assert {(r.metric_name, r.metric_type, r.metric_config) for r in results} == {
        ("MAE", "mae", "mosi"), ("Corr", "pearsonr", "mosi")}
    assert "| MAE | 0.7100 |" in card.text
    assert CITATIONS["shared_private"] in card.text and CITATIONS["self_mm"] in card.text
    assert "## Limitations" in card.text and "CMU-MOSI is distributed under its own terms" in card.text
    assert str(tmp_path) not in (folder / "README.md").read_text()  # the publisher's paths never reach the card
    assert "--data_dir '<MOSI>' '--output_dir=<o>'" in card.text


@pytest.mark.parametrize("name", ["semi_iin", "shared_private"])
def test_every_card_snippet_runs_as_written_in_its_folder(name, tmp_path):
    """The card's code, copied as it is, runs in the folder without msa-hub installed: real feature sizes, frame
    counts that fit the model, and a sentence on where the features come from."""
    from remote_code import run_card_snippets

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = SemiIINForSentimentAnalysis(tiny_semi_iin_config()) if name == "semi_iin" else \
        SharedPrivateForSentimentAnalysis(SharedPrivateConfig(text_input="features", text_feature_size=12,
                                                              audio_feature_size=6, vision_feature_size=5))
    folder = save_hub_ready(model, tmp_path / name, dataset_name="synthetic", metrics_profile="synthetic")
    result = run_card_snippets(folder, tmp_path)
    assert len(result["intensity"]) == 1 and {"model", "outputs"} <= set(result["names"])
    card = (folder / "README.md").read_text()
    assert "text 12-d, audio 6-d, vision 5-d frame features" in card and "synthetic dataset" in card


@pytest.mark.parametrize("audio", [{}, dict(audio_kernel_sizes=[3], audio_strides=[2], audio_paddings=[1]),
                                   dict(max_audio_tokens=3)])
def test_the_cards_feature_frames_fit_any_audio_stack(audio):
    """The card's random features fit the model whatever its audio Conv1d stack and position slots."""
    import torch

    from training_msa.model_card import feature_frames

    config = tiny_semi_iin_config(**audio)
    frames = feature_frames(config)
    model = SemiIINForSentimentAnalysis(config).eval()
    with torch.no_grad():
        out = model(**{f"{name}_features": torch.randn(1, frames[name], getattr(config, f"{name}_feature_size"))
                       for name in ("text", "audio", "vision")})
    assert out.logits.shape == (1,) and frames["audio"] > frames["text"] // 2


def test_card_of_an_unevaluated_model_says_so_instead_of_an_empty_table(tmp_path):
    model = SemiIINForSentimentAnalysis(tiny_semi_iin_config())
    folder = save_hub_ready(model, tmp_path / "semi", dataset_name="synthetic", not_evaluated_reason="saved by a test")
    card, data = load_card(folder)
    assert "model-index" not in data and "| metric | value |" not in card.text
    assert "Not evaluated: this folder was saved without test metrics (saved by a test)." in card.text
    assert CITATIONS["semi_iin"] in card.text and "datasets" not in data


def test_a_missing_examples_folder_is_refused_before_training(tmp_path):
    with pytest.raises(SystemExit, match="--examples_dir .*nothing: no examples.json there"):
        run_train_script(*TINY, "--examples_dir", str(tmp_path / "nothing"), "--output_dir", str(tmp_path / "run"),
                         cwd=tmp_path)
    assert not (tmp_path / "run").exists()  # nothing trained or written


def test_an_examples_folder_without_its_listing_is_refused_and_nothing_is_published(tmp_path):
    (tmp_path / "clips").mkdir()
    model = SemiIINForSentimentAnalysis(tiny_semi_iin_config())
    with pytest.raises(ValueError, match=r"clips has no examples.json"):
        save_hub_ready(model, tmp_path / "hub", examples_dir=tmp_path / "clips")
    assert not (tmp_path / "hub").exists() and not list(tmp_path.glob(".hub.*"))  # no folder, no staging left


def test_portable_command_keeps_relative_paths():
    assert portable_command("train.py --data_dir data/MOSI --x=/home/me/y") == "train.py --data_dir data/MOSI '--x=<y>'"


def test_every_training_run_writes_its_pictures_and_tensorboard_logs(tmp_path):
    pytest.importorskip("tensorboard")
    run_train_script(*TINY, "--num_train_epochs", "2", "--logging_steps", "1", "--report_to", "tensorboard",
                     "--output_dir", str(tmp_path / "run"), "--dataset_cache_dir", str(tmp_path / "cache"), cwd=tmp_path)
    plots = ["learning_curves.png", "predicted_vs_true.png", "confusion_matrix.png", "gate_values.png"]
    for name in plots:
        for folder in (tmp_path / "run" / "plots", tmp_path / "run" / "model" / "plots"):
            assert (folder / name).stat().st_size > 5000, name  # a real picture, in the run and the Hub folder
    from PIL import Image

    assert Image.open(tmp_path / "run" / "plots" / "learning_curves.png").size == (900, 360)
    card, _ = load_card(tmp_path / "run" / "model")
    assert all(f"(plots/{name})" in card.text for name in plots)
    assert list((tmp_path / "run").rglob("events.out.tfevents.*")), "no TensorBoard event file"
    saved = json.loads((tmp_path / "run" / "model" / "training_args.json").read_text())
    assert saved["output_dir"] == "<run>" and str(tmp_path) not in json.dumps(saved)


def test_compact_help_states_true_defaults_and_choices(capsys):
    train = train_script()
    with pytest.raises(SystemExit):
        train.parse_arguments(["--help"])
    compact = capsys.readouterr().out
    with pytest.raises(SystemExit):
        train.parse_arguments(["--help_all"])
    everything = capsys.readouterr().out
    assert len(compact.splitlines()) < 500 < len(everything.splitlines())  # every flag described, in 80 columns
    assert "--fusion {gate,add,concat,dot}" in compact and "--model {self_mm,semi_iin,shared_private}" in compact
    assert "--attention_mode {intra_inter,global}" in compact
    assert "Default semi_iin: 128" in compact and "Default 100" in compact  # hidden size; the job's vision frames
    entries = compact.split("\n  --")[1:]
    for entry in entries:  # every flag has a one-line description, and model flags never claim "(default: None)"
        flag, _, text = entry.partition("\n")
        assert text.strip() or "  " in flag.strip(), f"--{flag} has no help"
        assert not text.strip().startswith(("Default", "(default")), f"--{flag} has a default but no description"
        if "default semi_iin" in text or "default shared_private" in text:
            assert "(default: None)" not in text, flag
    assert "--learning-rate" not in compact and "--no_" not in compact  # each flag once
    max_vision = next(entry for entry in entries if entry.startswith("max_vision_tokens"))
    assert "Learned position slots" in max_vision and "sized from the data" in " ".join(max_vision.split())
    assert "--dataloader_drop_last" in everything and "--dataloader_drop_last" not in compact


@pytest.mark.parametrize("argv, expected", [
    (["--num_train_epoks", "1"], "unknown argument --num_train_epoks: did you mean --num_train_epochs?"),
    (["--num_train_epoch", "1"], "unknown argument --num_train_epoch: did you mean --num_train_epochs?"),  # no prefix
    (["--hiden_size=8"], "unknown argument --hiden_size: did you mean --hidden_size?"),
])
def test_an_unknown_flag_exits_2_with_usage_and_the_closest_flag(argv, expected, capsys):
    train = train_script()
    with pytest.raises(SystemExit) as raised:
        train.parse_arguments(argv)
    error = capsys.readouterr().err
    assert raised.value.code == 2 and error.startswith("usage: train.py") and expected in error


def test_a_recipe_typo_names_the_recipe_and_yaml_no_stays_a_string(tmp_path, capsys):
    train = train_script()
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("model: semi_iin\nsave_strategy: no\nnum_train_epoks: 2\n")
    with pytest.raises(SystemExit) as raised:
        train.parse_arguments([str(recipe)])
    error = capsys.readouterr().err
    assert raised.value.code == 2
    assert f"unknown argument --num_train_epoks (a key of {recipe}): did you mean --num_train_epochs?" in error
    recipe.write_text("model: semi_iin\nsave_strategy: no\nload_best_model_at_end: false\nreport_to: none\n"
                      "bf16: no\nfusion: gate\n")  # YAML 1.1 reads `no` as False: the choice "no" became "false"
    training_args = train.parse_arguments([str(recipe)])[-1]
    assert training_args.save_strategy == "no" and training_args.load_best_model_at_end is False
    recipe.write_text("model: semi_iin\nbf16: false\nfusion: concat\n")
    assert train.parse_arguments([str(recipe)])[2].fusion == "concat"


def test_help_imports_no_trainer_demo_or_media_stack():
    heavy = "['transformers.trainer', 'gradio', 'av', 'matplotlib', 'sklearn', 'datasets']"
    # what transformers' own TrainingArguments loads (5.17: peft -> AutoModel -> generation utils -> sklearn) is theirs
    theirs = (f"import sys\nfrom transformers import HfArgumentParser, TrainingArguments\n"
              f"print('LOADED', [m for m in {heavy} if m in sys.modules])")
    script = ("import runpy, sys\n"
              "train = runpy.run_path('train.py', run_name='train')\n"
              "try:\n    train['parse_arguments'](['--help'])\nexcept SystemExit:\n    pass\n"
              f"print('LOADED', [m for m in {heavy} if m in sys.modules])")
    loaded = {}
    for name, code in (("theirs", theirs), ("ours", script)):
        result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
        line = [line for line in result.stdout.splitlines() if line.startswith("LOADED ")]
        assert line, result.stdout[-500:] + result.stderr[-2000:]
        loaded[name] = set(ast.literal_eval(line[-1][len("LOADED "):]))
    assert loaded["ours"] <= loaded["theirs"], loaded
    # the command itself: the help, exit status 0 (the interpreter's teardown is skipped after it)
    command = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT, capture_output=True, text=True,
                             timeout=300)
    assert command.returncode == 0 and command.stdout.startswith("usage: train.py [RECIPE.yaml]"), command.stderr
    assert command.stdout.rstrip().endswith("configs/*.yaml.")  # flushed completely before the fast exit


def test_ctrl_c_during_training_stops_at_the_next_step_boundary(tmp_path):
    """train.py's SIGINT handler: during training a Ctrl-C is recorded and raised by the callback at the next step
    (raised at an arbitrary bytecode, pyarrow's callbacks swallowed it or turned it into ArrowInvalid); outside
    training, or a second Ctrl-C, at once. Every MSATrainer carries the callback."""
    from training_msa import MSATrainer, MSATrainingArguments
    from training_msa.interrupt import INTERRUPT, GracefulInterrupt

    interrupt = GracefulInterrupt()
    previous = signal.getsignal(signal.SIGINT)
    try:
        assert interrupt.install()
        with pytest.raises(KeyboardInterrupt):  # not training: at once
            signal.raise_signal(signal.SIGINT)
        interrupt.on_train_begin(None, None, None)
        signal.raise_signal(signal.SIGINT)  # recorded, not raised
        assert interrupt.requested
        interrupt.on_train_begin(None, None, None)  # a nested trainer (self-training's predictor)
        with pytest.raises(KeyboardInterrupt):
            interrupt.on_step_end(None, None, None)
        assert not interrupt.requested and not interrupt.running
        interrupt.on_train_begin(None, None, None)
        signal.raise_signal(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):  # the second one: at once
            signal.raise_signal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, previous)
    trainer = MSATrainer(model=SemiIINForSentimentAnalysis(tiny_semi_iin_config()),
                         args=MSATrainingArguments(output_dir=str(tmp_path), report_to=[]))
    assert INTERRUPT in trainer.callback_handler.callbacks


def test_ctrl_c_ends_training_with_one_line(tmp_path):
    """A real SIGINT to a training process (the process boundary is what this checks)."""
    command = [sys.executable, str(ROOT / "train.py"), *TINY, "--num_train_epochs", "1000", "--output_dir", str(tmp_path / "run"), "--dataset_cache_dir", str(tmp_path / "cache")]
    process = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = []
    deadline = time.time() + 240
    for line in process.stderr:  # wait until training has started
        lines.append(line)
        if "Model semi_iin with" in line or time.time() > deadline:
            break
    time.sleep(0.5)  # into the first training steps
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    status = process.wait(timeout=120)
    assert status == 130, (status, "".join(lines)[-2000:], rest[-3000:])
    assert "train.py: interrupted" in rest and "--resume_from_checkpoint last" in rest, rest[-3000:]
    assert "Traceback" not in rest, rest[-3000:]
