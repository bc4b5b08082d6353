import pytest
import torch
import torch.nn.functional as F
from huggingface_hub.errors import StrictDataclassError

from conftest import random_batch, tiny_semi_iin_config
from modeling_msa import SemiIINForSentimentAnalysis, intensity_to_class


def model_for(**overrides):
    torch.manual_seed(0)
    return SemiIINForSentimentAnalysis(tiny_semi_iin_config(**overrides)).eval()


def single(batch, row):
    """Sample `row` alone, cut to its real length (no padding at all)."""
    out = {}
    for name in ("text", "audio", "vision"):
        length = int(batch[f"{name}_attention_mask"][row].sum())
        out[f"{name}_features"] = batch[f"{name}_features"][row : row + 1, :length]
        out[f"{name}_attention_mask"] = batch[f"{name}_attention_mask"][row : row + 1, :length]
    return out


def test_output_shapes_and_gate_range():
    model = model_for()
    out = model(**random_batch())
    assert out.logits.shape == (3,)
    assert out.emotion_logits.shape == (3, 7)
    assert out.gate_values.shape == (3, 2, 16)
    assert ((out.gate_values > 0) & (out.gate_values < 1)).all()
    assert out.pooled_output.shape == (3, 2, 16)
    assert out.loss is None


@pytest.mark.parametrize(
    "overrides",
    [{}, {"attention_mode": "global"}, {"fusion": "add"}, {"fusion": "concat"}, {"fusion": "dot"},
     {"num_hidden_layers": 2, "layer_repeats": 1}],
)
def test_padding_never_changes_a_prediction(overrides):
    model = model_for(**overrides)
    batch = random_batch()
    with torch.no_grad():
        batched = model(**batch)
        # garbage in padded frames must not matter either
        noisy = {k: v.clone() for k, v in batch.items()}
        for name in ("text", "audio", "vision"):
            pad = noisy[f"{name}_attention_mask"] == 0
            noisy[f"{name}_features"][pad] = 1e3
        noisy_out = model(**noisy)
        for row in range(3):
            alone = model(**single(batch, row))
            torch.testing.assert_close(batched.logits[row], alone.logits[0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(batched.emotion_logits[row], alone.emotion_logits[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched.logits, noisy_out.logits, atol=1e-5, rtol=1e-5)


def test_audio_downsampling_keeps_mask_consistent():
    model = model_for()
    projection = model.semi_iin.embeddings.audio_projection
    projected = projection(torch.randn(2, 40, 6), torch.tensor([40, 9]))
    lengths = projection.output_lengths(torch.tensor([40, 9]))
    # Conv(k4,s2,p1): 40 -> 20, 9 -> 4; Conv(k4,s4,p1): 20 -> 5, 4 -> 1
    assert projected.shape[1] == 5
    assert lengths.tolist() == [5, 1]


def branch_states(model, batch, branch):
    with torch.no_grad():
        states = model(**batch, output_hidden_states=True).hidden_states
    return states[("intra", "inter").index(branch)][-1]


def test_intra_branch_keeps_modalities_apart_and_inter_branch_mixes_them():
    model = model_for(layer_repeats=1)
    batch = random_batch(batch=1, text=(6,), audio=(24,), vision=(5,))
    changed = {k: v.clone() for k, v in batch.items()}
    changed["vision_features"] += 5.0
    audio_tokens = 2  # 24 audio frames -> 3 tokens after x8 downsampling; text tokens start at 2 + 3
    text_slice = slice(2 + 3, 2 + 3 + 6)
    intra_before, intra_after = branch_states(model, batch, "intra"), branch_states(model, changed, "intra")
    inter_before, inter_after = branch_states(model, batch, "inter"), branch_states(model, changed, "inter")
    # IntraMA: a text token sees specials + text only, so vision changes cannot reach it in one layer.
    torch.testing.assert_close(intra_before[:, text_slice], intra_after[:, text_slice])
    # InterMA: text tokens attend to vision tokens.
    assert not torch.allclose(inter_before[:, text_slice], inter_after[:, text_slice])
    # Both special tokens see all modalities in both branches.
    assert not torch.allclose(intra_before[:, :2], intra_after[:, :2])
    assert audio_tokens == 2


def test_intensity_to_class_bins():
    """One 7-class binning for the head's targets, Acc-7 and the pipeline's `emotion`: MMSA's metricsTop (np.round of
    the clipped intensity, half to even), bin edges included."""
    import numpy as np

    from processing_msa.pipeline_msa import SENTIMENT_CLASSES, intensity_class

    values = torch.tensor([-3.0, -2.51, -2.5, -1.5, -0.5, -0.49, 0.0, 0.49, 0.5, 1.5, 2.49, 2.5, 3.0, 4.0, -9.0])
    expected = [0, 0, 1, 1, 3, 3, 3, 3, 3, 5, 5, 5, 6, 6, 0]
    assert intensity_to_class(values).tolist() == expected
    mmsa = (np.round(np.clip(values.numpy(), -3.0, 3.0)) + 3).astype(int).tolist()  # MMSA's Mult_acc_7 rounding
    assert mmsa == expected
    assert [SENTIMENT_CLASSES.index(intensity_class(float(v))) for v in values] == expected
    assert intensity_to_class(torch.tensor([-2.5, -1.5, 0.5, 2.5]), 6).tolist() == [0, 1, 3, 5]  # even counts: bins


def test_loss_is_weighted_mse_plus_ce():
    model = model_for()
    labels = torch.tensor([2.2, -0.3, -2.8])
    out = model(**random_batch(), labels=labels)
    classes = intensity_to_class(labels)
    expected = 0.6 * F.mse_loss(out.logits, labels) + 0.4 * F.cross_entropy(out.emotion_logits, classes)
    torch.testing.assert_close(out.loss, expected)


def test_pseudo_labelled_samples_add_only_weighted_classification_loss():
    model = model_for()
    batch = random_batch()
    pseudo = torch.tensor([False, True, True])
    emotion = torch.tensor([5, 1, 6])
    labels = torch.tensor([1.7, float("nan"), float("nan")])
    out = model(**batch, labels=labels, emotion_labels=emotion, pseudo_label_mask=pseudo)
    real_part = 0.6 * F.mse_loss(out.logits[:1], labels[:1]) + 0.4 * F.cross_entropy(out.emotion_logits[:1], emotion[:1])
    pseudo_part = 0.2 * F.cross_entropy(out.emotion_logits[1:], emotion[1:])
    torch.testing.assert_close(out.loss, real_part + pseudo_part)
    # An all-pseudo batch gives the regression head no gradient at all.
    model.zero_grad()
    model(**batch, labels=labels, emotion_labels=emotion, pseudo_label_mask=torch.ones(3, dtype=torch.bool)).loss.backward()
    assert model.regression_head.weight.grad is None or not model.regression_head.weight.grad.any()
    assert model.emotion_head.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b.update(text_features=torch.randn(3, 10, 13)), "text_features has feature size 13"),
        (lambda b: b.update(audio_features=torch.randn(2, 40, 6), audio_attention_mask=None), "Batch sizes differ"),
        (lambda b: b["vision_features"].__setitem__((0, 0, 0), float("nan")), "vision_features contains NaN"),
        (lambda b: b["audio_features"].__setitem__((1, 2, 3), float("-inf")), "audio_features contains NaN or inf"),
        (lambda b: b.update(text_features=torch.randn(3, 10)), "text_features must be a float tensor"),
        (lambda b: b.update(text_attention_mask=torch.ones(3, 9)), "text_attention_mask has shape"),
        (lambda b: b["text_attention_mask"].__setitem__((0, 0), 0), "text_attention_mask must be right-padded"),
        (lambda b: b.update(vision_features=torch.randn(3, 30, 5), vision_attention_mask=None), "max_vision_tokens=9"),
    ],
)
def test_bad_inputs_raise_clear_errors(mutate, message):
    model = model_for()
    batch = random_batch()
    mutate(batch)
    with pytest.raises(ValueError, match=message):
        model(**batch)


def test_config_validation_names_the_field():
    with pytest.raises(StrictDataclassError, match="fusion='sum'"):
        tiny_semi_iin_config(fusion="sum")
    with pytest.raises(StrictDataclassError, match="attention_mode='local'"):
        tiny_semi_iin_config(attention_mode="local")
    with pytest.raises(StrictDataclassError, match="num_attention_heads"):
        tiny_semi_iin_config(hidden_size=10, num_attention_heads=4)
    with pytest.raises(StrictDataclassError, match="hidden_size"):
        tiny_semi_iin_config(hidden_size="big")


def test_unknown_config_keys_typos_fail_and_others_warn(caplog):
    from modeling_msa import SharedPrivateConfig

    with pytest.raises(ValueError, match="unknown key 'hiden_size': did you mean 'hidden_size'"):
        tiny_semi_iin_config(hiden_size=64)
    with pytest.raises(ValueError, match="did you mean 'alignment_loss_weight'"):
        SharedPrivateConfig(text_input="features", alignment_loss_wieght=2.0)
    with caplog.at_level("WARNING"):
        config = tiny_semi_iin_config(experiment_note="run 3")
    assert "unknown key 'experiment_note'" in caplog.text and config.experiment_note == "run 3"


def test_keys_transformers_consumes_are_not_reported(caplog, tmp_path):
    """Generation defaults (use_cache), torch_dtype, auto_map... are transformers' business: no warning, also when
    a folder saved by msa-hub is loaded back."""
    from transformers import AutoConfig

    with caplog.at_level("WARNING"):
        config = tiny_semi_iin_config(use_cache=True, torch_dtype="float32", name_or_path="somewhere")
        SemiIINForSentimentAnalysis(config).save_pretrained(tmp_path)
        AutoConfig.from_pretrained(tmp_path)
        SemiIINForSentimentAnalysis.from_pretrained(tmp_path)
    assert "unknown key" not in caplog.text


def test_official_initialisation_and_global_ablation_follow_the_official_code():
    """flow-ljh/Semi-IIN code/model.py: type embeddings normal(0.05), val/cls/pos trunc_normal(0.02), MulT layers
    Xavier-uniform with zero biases, PyTorch's default elsewhere; the global ablation adds no position embedding."""
    import math

    torch.manual_seed(0)
    model = SemiIINForSentimentAnalysis(tiny_semi_iin_config(hidden_size=64, num_attention_heads=4,
                                                             max_audio_tokens=300, max_text_tokens=300))
    embeddings = model.semi_iin.embeddings
    assert abs(embeddings.modality_type_embeddings.weight.std().item() - 0.05) < 0.01
    assert abs(embeddings.token_position_embeddings.weight.std().item() - 0.02) < 0.002
    attention = model.semi_iin.intra_encoder.layers[0].attention
    bound = math.sqrt(6 / (64 + 3 * 64))  # Xavier-uniform of MulT's fused [3d, d] in_proj, over q, k and v
    qkv = torch.cat([attention.q_proj.weight, attention.k_proj.weight, attention.v_proj.weight])
    assert qkv.abs().max() <= bound and qkv.abs().max() > 0.9 * bound
    out_bound = math.sqrt(6 / (64 + 64))  # Xavier-uniform of the [d, d] out_proj
    assert 0.9 * out_bound < attention.out_proj.weight.abs().max() <= out_bound
    assert not attention.v_proj.bias.any() and not model.semi_iin.intra_encoder.layers[0].feed_forward.intermediate_dense.bias.any()
    conv = embeddings.text_projection.convs[0]
    kaiming_bound = 1 / math.sqrt(conv.weight[0].numel())  # PyTorch's default: kaiming_uniform(a=sqrt(5))
    assert conv.weight.abs().max() <= kaiming_bound
    assert model.regression_head.bias.abs().max() > 0  # PyTorch's default bias, not zero
    assert SemiIINForSentimentAnalysis(tiny_semi_iin_config(attention_mode="global")).semi_iin.embeddings \
        .token_position_embeddings is None
    kept = tiny_semi_iin_config(attention_mode="global", global_position_embeddings=True)
    assert SemiIINForSentimentAnalysis(kept).semi_iin.embeddings.token_position_embeddings is not None
