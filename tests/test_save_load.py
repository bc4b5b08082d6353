import json

import torch
from safetensors.torch import save_file

from conftest import random_batch, tiny_semi_iin_config
from modeling_msa import SemiIINForSentimentAnalysis
from remote_code import run_isolated


def trained_looking_model(**overrides):
    torch.manual_seed(1)
    model = SemiIINForSentimentAnalysis(tiny_semi_iin_config(**overrides))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model.eval()


def test_save_pretrained_round_trip(tmp_path):
    model = trained_looking_model(fusion="concat")
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_semi_iin.SemiIINConfig",
        "AutoModel": "modeling_semi_iin.SemiIINModel",
        "AutoModelForSequenceClassification": "modeling_semi_iin.SemiIINForSentimentAnalysis",
    }
    loaded = SemiIINForSentimentAnalysis.from_pretrained(tmp_path).eval()
    batch = random_batch()
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, loaded(**batch).logits, rtol=0, atol=0)
    assert loaded.config.fusion == "concat"


def test_remote_code_loads_where_project_is_not_importable(tmp_path):
    model = trained_looking_model()
    folder = tmp_path / "semi-iin"
    model.save_pretrained(folder)
    # What travels is the model: its modules, config, bundled-encoder support and input checks; no speed path.
    assert sorted(path.name for path in folder.glob("*.py")) == [
        "configuration_face_cnn.py", "configuration_semi_iin.py", "modeling_encoders.py", "modeling_face_cnn.py",
        "modeling_semi_iin.py", "msa_utils.py"]
    code = {path.name: path.read_text() for path in folder.glob("*.py")}
    assert sum(text.count("\n") for text in code.values()) <= 1300  # issue #32's budget for the remote code
    for text in code.values():
        assert "numpy" not in text and "numba" not in text and "device.type" not in text
    batch = random_batch()
    save_file({k: v.contiguous() for k, v in batch.items()}, tmp_path / "batch.safetensors")
    with torch.no_grad():
        expected = model(**batch)

    result = run_isolated(
        f"""
        import json, sys, torch
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoModelForSequenceClassification
        model = AutoModelForSequenceClassification.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        base = AutoModel.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        batch = load_file("batch.safetensors")
        with torch.no_grad():
            out = model(**batch)
            pooled = base(**batch).pooled_output
        loss = model.train()(**batch, labels=torch.zeros(3)).loss
        loss.backward()
        print(json.dumps({{
            "train_loss_finite": bool(torch.isfinite(loss)),
            "module": type(model).__module__,
            "base": type(base).__name__,
            "base_equals_heads_input": bool(torch.equal(pooled, out.pooled_output)),
            "project_modules": sorted(m for m in sys.modules if m.split(".")[0] == "modeling_msa"),
            "logits": out.logits.tolist(),
            "emotion_logits": out.emotion_logits.tolist(),
        }}))
        """,
        tmp_path,
    )
    assert result["module"].startswith("transformers_modules"), result["module"]
    assert result["project_modules"] == []
    assert result["train_loss_finite"]
    assert result["base"] == "SemiIINModel" and result["base_equals_heads_input"]
    torch.testing.assert_close(torch.tensor(result["logits"]), expected.logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(torch.tensor(result["emotion_logits"]), expected.emotion_logits, rtol=0, atol=1e-6)
