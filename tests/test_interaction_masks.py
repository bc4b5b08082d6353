"""build_interaction_masks checked cell by cell against the table of DESIGN.md."""

import itertools

import pytest

from modeling_msa import build_interaction_masks

# DESIGN.md, rows = queries, cols = keys; S = {val, cls}.
INTER_BLOCKED = {("S", "S"), ("A", "A"), ("T", "T"), ("V", "V")}
INTRA_BLOCKED = {("S", "S"), ("A", "T"), ("A", "V"), ("T", "A"), ("T", "V"), ("V", "A"), ("V", "T")}


def token_groups(audio_len, text_len, vision_len):
    return ["S", "S"] + ["A"] * audio_len + ["T"] * text_len + ["V"] * vision_len


@pytest.mark.parametrize("lengths", [(3, 2, 4), (1, 1, 1), (0, 3, 2), (5, 0, 0)])
def test_masks_match_design_table_cell_by_cell(lengths):
    intra, inter = build_interaction_masks(*lengths)
    groups = token_groups(*lengths)
    size = len(groups)
    assert intra.shape == inter.shape == (size, size) == (2 + sum(lengths),) * 2
    for query, key in itertools.product(range(size), repeat=2):
        pair = (groups[query], groups[key])
        assert bool(intra[query, key]) == (pair not in INTRA_BLOCKED), (query, key, pair)
        assert bool(inter[query, key]) == (pair not in INTER_BLOCKED), (query, key, pair)


def test_token_order_and_special_rows():
    intra, inter = build_interaction_masks(2, 3, 1)
    # val (0) and cls (1) never see each other nor themselves, but see every modality token.
    for mask in (intra, inter):
        assert not mask[:2, :2].any()
        assert mask[:2, 2:].all()
        assert mask[2:, :2].all()  # every modality token sees both specials
    # audio tokens are 2..3, text 4..6, vision 7
    assert intra[2, 3] and not intra[2, 4] and not intra[4, 7] and intra[4, 6]
    assert not inter[2, 3] and inter[2, 4] and inter[4, 7] and not inter[5, 6]


@pytest.mark.parametrize("mode", ["intra_inter", "global"])
@pytest.mark.parametrize("lengths", [((3, 2), (4, 1), (5, 5)), ((0, 2), (3, 3), (1, 0)), ((2, 2), (0, 0), (4, 2))])
def test_block_attention_equals_dense_masked_attention(mode, lengths):
    """The attention plans compute, for every real query, exactly the dense attention masked with
    build_interaction_masks (+ padding keys): the blocked blocks are skipped, not changed."""
    import torch
    import torch.nn.functional as F
    from conftest import tiny_semi_iin_config

    from modeling_msa import SemiIINForSentimentAnalysis
    from modeling_msa.modeling_semi_iin import NUM_SPECIAL_TOKENS, build_attention_plans

    torch.manual_seed(0)
    model = SemiIINForSentimentAnalysis(tiny_semi_iin_config(attention_mode=mode)).eval()
    audio, text, vision = (torch.tensor(pair) for pair in lengths)
    sizes = tuple(int(n.max()) for n in (audio, text, vision))
    plans = build_attention_plans(mode, (audio, text, vision), sizes, torch.float32)
    base = model.semi_iin
    attention = base.global_encoder.layers[0].attention if mode == "global" else base.intra_encoder.layers[0].attention
    hidden = torch.randn(2, NUM_SPECIAL_TOKENS + sum(sizes), 16)
    valid = torch.cat([torch.ones(2, NUM_SPECIAL_TOKENS, dtype=torch.bool)]
                      + [torch.arange(size)[None] < n[:, None] for n, size in zip((audio, text, vision), sizes)], 1)
    intra, inter = build_interaction_masks(*sizes)
    structural = {"global": torch.ones_like(intra), "intra": intra, "inter": inter}
    with torch.no_grad():
        for branch, plan in plans.items():
            allowed = structural[branch][None] & valid[:, None, :]
            allowed |= ~allowed.any(-1, keepdim=True)  # rows of padding queries with no key: anything finite
            q, k, v = attention.qkv_proj(hidden).view(2, -1, 3, 2, 8).permute(2, 0, 3, 1, 4)
            dense = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None])
            dense = attention.out_proj(dense.transpose(1, 2).reshape(2, -1, 16))
            blocked = attention(hidden, plan)
            torch.testing.assert_close(blocked[valid], dense[valid], atol=1e-6, rtol=1e-5)
