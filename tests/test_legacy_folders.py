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
