"""Equality with the reference code (MMSA 2.2.1, the `reference` extra): Semi-IIN's "mult" branch is MulT's
`TransformerEncoder` as the official Semi-IIN code applies it (`sharing_num=2` tied applications)."""

import pytest
import torch

torch.cuda.set_device = lambda *args, **kwargs: None  # MMSA calls it at import time on some paths; CPU here
transformer = pytest.importorskip("MMSA.models.subNets.transformers_encoder.transformer")

from modeling_msa import SemiIINConfig  # noqa: E402
from modeling_msa.modeling_semi_iin import NUM_SPECIAL_TOKENS, SemiIINEncoder, build_attention_plans  # noqa: E402


def copy_mult_weights(ours: SemiIINEncoder, reference) -> None:
    """MMSA's parameter names -> ours (same layout: MMSA's in_proj is [q; k; v] rows, as our qkv_proj)."""
    with torch.no_grad():
        for layer, ref in zip(ours.layers, reference.layers):
            layer.attention.qkv_proj.weight.copy_(ref.self_attn.in_proj_weight)
            layer.attention.qkv_proj.bias.copy_(ref.self_attn.in_proj_bias)
            layer.attention.out_proj.load_state_dict(ref.self_attn.out_proj.state_dict())
            layer.feed_forward[0].load_state_dict(ref.fc1.state_dict())
            layer.feed_forward[3].load_state_dict(ref.fc2.state_dict())
            layer.attention_norm.load_state_dict(ref.layer_norms[0].state_dict())
            layer.feed_forward_norm.load_state_dict(ref.layer_norms[1].state_dict())
        ours.final_norm.load_state_dict(reference.layer_norm.state_dict())


@pytest.mark.parametrize("sinusoidal", [False, True])
def test_global_branch_equals_mmsa_transformer_encoder(sinusoidal):
    torch.manual_seed(0)
    hidden, heads, sizes = 32, 4, (5, 7, 3)  # audio, text, vision tokens, every slot filled (as the official shapes)
    config = SemiIINConfig(hidden_size=hidden, num_attention_heads=heads, intermediate_size=4 * hidden,
                           attention_mode="global", encoder_style="mult", sinusoidal_positions=sinusoidal,
                           layer_repeats=2, num_hidden_layers=1, attention_dropout=0.0, relu_dropout=0.0,
                           residual_dropout=0.0, embedding_dropout=0.0, max_audio_tokens=sizes[0],
                           max_text_tokens=sizes[1], max_vision_tokens=sizes[2])
    ours = SemiIINEncoder(config).eval()
    reference = transformer.TransformerEncoder(embed_dim=hidden, num_heads=heads, layers=1, attn_dropout=0.0,
                                               relu_dropout=0.0, res_dropout=0.0, embed_dropout=0.0,
                                               attn_mask=False, position_embedding=sinusoidal).eval()
    # Random LayerNorm affines too, so that a swapped norm cannot pass.
    for norm in [m for m in reference.modules() if isinstance(m, torch.nn.LayerNorm)]:
        torch.nn.init.normal_(norm.weight, 1.0, 0.2)
        torch.nn.init.normal_(norm.bias, 0.0, 0.2)
    copy_mult_weights(ours, reference)

    batch, length = 3, NUM_SPECIAL_TOKENS + sum(sizes)
    tokens = torch.randn(batch, length, hidden)
    full = tuple(torch.full((batch,), n) for n in sizes)
    plan = build_attention_plans("global", full, sizes, tokens.dtype)["global"]
    with torch.no_grad():
        expected = tokens.transpose(0, 1)  # MMSA is sequence-first
        for _ in range(2):  # CMFM.cmfm = ModuleList([cmfm1] * sharing_num): the same encoder twice
            expected = reference(expected)
        got = ours(tokens, plan, torch.arange(length))
    torch.testing.assert_close(got, expected.transpose(0, 1), atol=2e-5, rtol=1e-5)
