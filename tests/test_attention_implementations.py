"""Semi-IIN's attention through transformers' interface: eager, SDPA, flex attention and the CPU word-dropout
plug-in give the same outputs and gradients; gradient checkpointing gives the same gradients; attention weights and
hidden states come back the transformers way."""

import copy

import pytest
import torch

from conftest import random_batch, tiny_semi_iin_config
from modeling_msa import SemiIINForSentimentAnalysis, build_interaction_masks
from training_msa.cpu_dropout import ATTENTION_NAME, apply_cpu_word_dropout, remove_cpu_word_dropout

NO_DROPOUT = dict(input_dropout=0.0, attention_dropout=0.0, relu_dropout=0.0, residual_dropout=0.0,
                  embedding_dropout=0.0)


def model_for(**overrides) -> SemiIINForSentimentAnalysis:
    torch.manual_seed(0)
    model = SemiIINForSentimentAnalysis(tiny_semi_iin_config(**overrides))
    with torch.no_grad():  # trained-looking weights: nonzero biases, non-unit norms
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model


def outputs_and_gradients(model, batch) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad()
    out = model(**batch, labels=torch.tensor([1.5, -0.5, 2.8], dtype=torch.float64))
    out.loss.backward()
    return out.logits, out.emotion_logits, {name: p.grad.clone() for name, p in model.named_parameters()}


def float64_batch():
    return {key: value.double() if value.is_floating_point() else value for key, value in random_batch().items()}


@pytest.mark.parametrize("mode", ["intra_inter", "global"])
@pytest.mark.parametrize("implementation", ["eager", "cpu_plugin"])
def test_attention_implementations_equal_sdpa(mode, implementation):
    reference = model_for(attention_mode=mode, **NO_DROPOUT).double().train()
    other = copy.deepcopy(reference)
    if implementation == "cpu_plugin":
        apply_cpu_word_dropout(other)
        assert other.config._attn_implementation == ATTENTION_NAME
    else:
        other.set_attn_implementation(implementation)
    batch = float64_batch()
    expected = outputs_and_gradients(reference, batch)
    got = outputs_and_gradients(other, batch)
    torch.testing.assert_close(got[0], expected[0], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(got[1], expected[1], rtol=1e-9, atol=1e-9)
    for name, gradient in expected[2].items():
        torch.testing.assert_close(got[2][name], gradient, rtol=1e-8, atol=1e-10, msg=name)


@pytest.mark.parametrize("mode", ["intra_inter", "global"])
def test_flex_attention_equals_sdpa(mode):
    """Outputs only, in float32: on CPU PyTorch's flex attention has no backward and no float64 (compiled)."""
    reference = model_for(attention_mode=mode, **NO_DROPOUT).eval()
    flex = copy.deepcopy(reference)
    flex.set_attn_implementation("flex_attention")
    batch = random_batch()
    with torch.no_grad():
        expected, got = reference(**batch), flex(**batch)
    torch.testing.assert_close(got.logits, expected.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.emotion_logits, expected.emotion_logits, rtol=1e-5, atol=1e-5)


def test_cpu_plugin_math_path_equals_sdpa():
    """With an attention dropout that rounds to no dropped word the plug-in computes attention itself (its math
    path, masks included), and must equal SDPA."""
    reference = model_for(**{**NO_DROPOUT, "attention_dropout": 1e-7}).double().train()
    plugin = copy.deepcopy(reference)
    apply_cpu_word_dropout(plugin)
    reference.config.attention_dropout = 0.0
    for module in reference.modules():
        if hasattr(module, "dropout") and isinstance(module.dropout, float):
            module.dropout = 0.0
    batch = float64_batch()
    expected, got = outputs_and_gradients(reference, batch), outputs_and_gradients(plugin, batch)
    torch.testing.assert_close(got[0], expected[0], rtol=1e-9, atol=1e-9)
    for name, gradient in expected[2].items():
        torch.testing.assert_close(got[2][name], gradient, rtol=1e-8, atol=1e-10, msg=name)
    remove_cpu_word_dropout(plugin)
    assert plugin.config._attn_implementation == "sdpa"
    assert not any(type(m).__name__.endswith("WordDropout") for m in plugin.modules())


def test_cpu_plugin_dropout_rate_and_scale():
    """The plug-in's dropouts drop the configured share of elements and keep the expectation."""
    from training_msa.cpu_dropout import ReLUWordDropout, WordDropout

    torch.manual_seed(0)
    hidden = torch.rand(256, 1024) + 0.5
    for module, expected in ((WordDropout(0.2), hidden), (ReLUWordDropout(0.3), hidden.relu())):
        output = module.train()(hidden.requires_grad_())
        dropped = (output == 0).float().mean().item()
        assert abs(dropped - module.p) < 0.005, (type(module).__name__, dropped)
        assert abs(output.mean().item() / expected.mean().item() - 1) < 0.01
        output.sum().backward()
        kept = output != 0
        torch.testing.assert_close(hidden.grad[kept], torch.full_like(hidden.grad[kept], 1 / (1 - module.p)),
                                   rtol=1e-4, atol=0)
        assert not hidden.grad[~kept].any()
        hidden.grad = None


@pytest.mark.parametrize("mode", ["intra_inter", "global"])
def test_gradient_checkpointing_gives_the_same_gradients(mode):
    """Every dropout on (torch restores the RNG state when it recomputes a checkpointed layer)."""
    reference = model_for(attention_mode=mode).double().train()
    checkpointed = copy.deepcopy(reference)
    getattr(checkpointed, "activation_checkpointing_enable", checkpointed.gradient_checkpointing_enable)()
    assert all(layer.gradient_checkpointing for layer in checkpointed.modules()
               if type(layer).__name__ == "SemiIINLayer")
    batch = float64_batch()
    calls = {"reference": 0, "checkpointed": 0}
    for name, model in (("reference", reference), ("checkpointed", checkpointed)):
        for module in model.modules():
            if type(module).__name__ == "SemiIINAttention":
                module.register_forward_hook(lambda *args, name=name: calls.__setitem__(name, calls[name] + 1))
    torch.manual_seed(5)
    expected = outputs_and_gradients(reference, batch)
    torch.manual_seed(5)
    got = outputs_and_gradients(checkpointed, batch)
    assert calls["checkpointed"] == 2 * calls["reference"] > 0  # the layers ran again in backward
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=0)
    for name, gradient in expected[2].items():
        torch.testing.assert_close(got[2][name], gradient, rtol=1e-10, atol=1e-12, msg=name)


def test_flex_block_mask_skips_blocked_blocks():
    """With groups wider than flex attention's 128-token blocks, blocks that `may_attend` blocks entirely are not
    computed (the BlockMask is sparse), in both branches."""
    model = model_for(max_audio_tokens=300, max_text_tokens=300, max_vision_tokens=300).semi_iin
    model.set_attn_implementation("flex_attention")
    sizes = (256, 256, 256)
    lengths = tuple(torch.tensor([size, size]) for size in sizes)
    masks = model.branch_masks(torch.zeros(2, 2 + sum(sizes), 16), sizes, lengths)
    blocks = 7 * 7  # 770 tokens in 128-token blocks
    for branch, minimum_skipped in (("intra", 12), ("inter", 4)):
        computed = masks[branch].kv_num_blocks[0, 0].sum() + masks[branch].full_kv_num_blocks[0, 0].sum()
        assert blocks - computed >= minimum_skipped, (branch, int(computed))


def test_output_attentions_and_hidden_states_the_transformers_way():
    model = model_for(layer_repeats=2, num_hidden_layers=1).eval()
    model.set_attn_implementation("eager")
    batch = random_batch()
    with torch.no_grad():
        out = model(**batch, output_attentions=True, output_hidden_states=True)
        plain = model(**batch)
    torch.testing.assert_close(out.logits, plain.logits)
    assert len(out.attentions) == len(out.hidden_states) == 2  # (IntraMA, InterMA)
    for branch, (attentions, states) in enumerate(zip(out.attentions, out.hidden_states)):
        assert len(attentions) == 2 and len(states) == 3  # two layer calls; their inputs and the final states
        length = states[-1].shape[1]
        assert attentions[0].shape == (3, 2, length, length)
        torch.testing.assert_close(attentions[0].sum(-1), torch.ones(3, 2, length))
    # the last hidden states are the branches' outputs: the val fusion of them is the pooled val state
    intra, inter = out.hidden_states[0][-1], out.hidden_states[1][-1]
    with torch.no_grad():
        torch.testing.assert_close(model.semi_iin.val_fusion(intra[:, 0], inter[:, 0])[0], out.pooled_output[:, 0])
    # sample 0 has every frame real: its weights are zero exactly where build_interaction_masks blocks
    intra, inter = build_interaction_masks(5, 10, 9)  # 40 audio frames -> 5 tokens
    assert not out.attentions[0][0][0][:, ~intra].any() and not out.attentions[1][0][0][:, ~inter].any()
    assert out.attentions[0][0][0][:, intra].all()
    as_tuple = model(**batch, return_dict=False)
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], plain.logits)
    model.set_attn_implementation("sdpa")
    with pytest.raises(ValueError, match='attn_implementation="eager"'):
        model(**batch, output_attentions=True)
