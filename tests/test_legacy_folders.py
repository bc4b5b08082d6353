"""A folder saved before the base/heads split (every module at the top level, `auto_map` naming only
`SemiIINForSentimentAnalysis`) still loads, gives the outputs it gave then, and is re-saved in the new layout."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForSequenceClassification

from modeling_msa import SemiIINForSentimentAnalysis, SemiIINModel

FLAT_FOLDER = Path(__file__).parent / "fixtures" / "semi_iin_flat_v0"  # written by the code of commit ecb91de


def reference_batch():
    saved = load_file(FLAT_FOLDER / "reference_io.safetensors")
    inputs = {k: v for k, v in saved.items() if not k.startswith("expected_")}
    frames = inputs["frame_attention_mask"].shape[1]
    inputs["pixel_values"] = torch.rand(3, frames, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    return inputs, saved["expected_logits"], saved["expected_emotion_logits"]


@pytest.mark.parametrize("loader", [SemiIINForSentimentAnalysis, AutoModelForSequenceClassification])
def test_flat_folder_loads_with_the_same_outputs(loader, tmp_path):
    model = loader.from_pretrained(FLAT_FOLDER).eval()
    assert isinstance(model, SemiIINForSentimentAnalysis)
    inputs, logits, emotion_logits = reference_batch()
    with torch.no_grad():
        out = model(**inputs)
    torch.testing.assert_close(out.logits, logits)
    torch.testing.assert_close(out.emotion_logits, emotion_logits)

    model.save_pretrained(tmp_path)
    keys = set(load_file(tmp_path / "model.safetensors"))
    assert "semi_iin.embeddings.text_projection.convs.0.weight" in keys and "head_mlp.0.weight" in keys
    assert not any(key.startswith(("text_projection.", "intra_encoder.", "encoders.")) for key in keys)
    again = SemiIINForSentimentAnalysis.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(**inputs).logits, logits)


def test_flat_folder_loads_as_the_base_model():
    base = AutoModel.from_pretrained(FLAT_FOLDER).eval()
    assert isinstance(base, SemiIINModel)
    full = SemiIINForSentimentAnalysis.from_pretrained(FLAT_FOLDER).eval()
    inputs, _, _ = reference_batch()
    with torch.no_grad():
        torch.testing.assert_close(base(**inputs).pooled_output, full(**inputs).pooled_output)
        torch.testing.assert_close(base.encoders["vision"].embedding.weight, full.encoders["vision"].embedding.weight)


V1_FOLDER = Path(__file__).parent / "fixtures" / "semi_iin_v1"  # written by the code of commit 061043d (before #32)


@pytest.mark.parametrize("loader", [SemiIINForSentimentAnalysis, AutoModelForSequenceClassification])
def test_folder_from_before_the_transformers_layout_loads_with_the_same_outputs(loader, tmp_path):
    """The layout before issue #32: an nn.Sequential feed-forward (`feed_forward.0/.3`), the config field
    `fast_cpu_dropout`, one key/value stream; two layers per application, where a second stream would differ."""
    model = loader.from_pretrained(V1_FOLDER).eval()
    assert model.config.separate_key_value_dropout is False and not hasattr(model.config, "fast_cpu_dropout")
    saved = load_file(V1_FOLDER / "reference_io.safetensors")
    inputs = {k: v for k, v in saved.items() if not k.startswith("expected_")}
    with torch.no_grad():
        out = model(**inputs)
    torch.testing.assert_close(out.logits, saved["expected_logits"])
    torch.testing.assert_close(out.emotion_logits, saved["expected_emotion_logits"])
    model.save_pretrained(tmp_path)
    keys = set(load_file(tmp_path / "model.safetensors"))
    assert "semi_iin.intra_encoder.layers.1.feed_forward.output_dense.weight" in keys
    assert not any(".feed_forward.0." in key for key in keys)
    again = SemiIINForSentimentAnalysis.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(**inputs).logits, saved["expected_logits"])


def test_a_fused_checkpoint_whose_other_weights_do_not_fit_names_the_folder(tmp_path):
    """The fused-qkv path checks the rest of the checkpoint itself (transformers' own report is silenced there)."""
    import shutil

    from safetensors.torch import save_file

    folder = tmp_path / "broken-v1"
    shutil.copytree(V1_FOLDER, folder)
    weights = load_file(folder / "model.safetensors")
    weights.pop(next(key for key in weights if key.endswith("emotion_head.weight")))
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=rf"{folder}: a checkpoint with a fused qkv_proj.*missing .*emotion_head"):
        SemiIINForSentimentAnalysis.from_pretrained(folder)
