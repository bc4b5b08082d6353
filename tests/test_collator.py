import numpy as np
import pytest
import torch

from training_msa import MSADataCollator


def sample(text_len, audio_len, vision_len, label, seed):
    rng = np.random.default_rng(seed)
    return {
        "id": f"s{seed}",
        "text_features": rng.standard_normal((text_len, 4)).astype(np.float32),
        "audio_features": rng.standard_normal((audio_len, 3)).astype(np.float32),
        "vision_features": rng.standard_normal((vision_len, 2)).astype(np.float32),
        "label": label,
    }


def test_pads_right_and_builds_masks():
    samples = [sample(3, 5, 2, 1.5, 0), sample(1, 8, 4, -0.5, 1)]
    batch = MSADataCollator()(samples)
    assert batch["text_features"].shape == (2, 3, 4)
    assert batch["audio_features"].shape == (2, 8, 3)
    assert batch["text_attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["vision_attention_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert torch.equal(batch["audio_features"][0, :5], torch.from_numpy(samples[0]["audio_features"]))
    assert not batch["audio_features"][0, 5:].any()
    assert batch["labels"].tolist() == [1.5, -0.5]
    assert "sample_index" not in batch


def test_truncation_multiple_and_optional_columns():
    samples = [dict(sample(6, 5, 2, None, 0), index=7, emotion_label=2, is_pseudo_label=True)]
    batch = MSADataCollator(max_text_length=4, pad_to_multiple_of=4, include_sample_index=True)(samples)
    assert batch["text_features"].shape == (1, 4, 4)
    assert batch["audio_features"].shape == (1, 8, 3)
    assert batch["audio_attention_mask"].sum() == 5
    assert torch.isnan(batch["labels"]).all()
    assert batch["emotion_labels"].tolist() == [2]
    assert batch["pseudo_label_mask"].tolist() == [True]
    assert batch["sample_index"].tolist() == [7]


def test_bad_samples_name_the_sample_and_field():
    bad = sample(3, 5, 2, 1.0, 0)
    del bad["audio_features"]
    with pytest.raises(KeyError, match="s0.*audio_features"):
        MSADataCollator()([bad])
    empty = sample(0, 5, 2, 1.0, 3)
    with pytest.raises(ValueError, match="s3.*text_features has no frame"):
        MSADataCollator()([empty])
    mixed = [sample(3, 5, 2, 1.0, 0), dict(sample(3, 5, 2, 1.0, 1), vision_features=np.zeros((2, 9)))]
    with pytest.raises(ValueError, match="vision_features dims differ"):
        MSADataCollator()(mixed)
