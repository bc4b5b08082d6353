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


@pytest.mark.parametrize("implementation", ["sdpa", "eager", "flex_attention"])
@pytest.mark.parametrize("mode", ["intra_inter", "global"])
@pytest.mark.parametrize("lengths", [((3, 2), (4, 1), (5, 5)), ((0, 2), (3, 3), (1, 0)), ((2, 2), (0, 0), (4, 2))])
def test_branch_masks_are_the_design_table_and_padding_in_every_attention_form(implementation, mode, lengths):
    """The masks the model hands each attention function (through transformers' `create_bidirectional_mask`) allow
    exactly `build_interaction_masks` on real keys: SDPA's boolean mask, eager's additive one, flex's `BlockMask`."""
    import torch
    from conftest import tiny_semi_iin_config

    from modeling_msa import SemiIINModel
    from modeling_msa.modeling_semi_iin import NUM_SPECIAL_TOKENS

    model = SemiIINModel(tiny_semi_iin_config(attention_mode=mode))
    model.set_attn_implementation(implementation)
    token_lengths = tuple(torch.tensor(pair) for pair in lengths)
    sizes = tuple(int(n.max()) for n in token_lengths)
    tokens = torch.zeros(2, NUM_SPECIAL_TOKENS + sum(sizes), 16)
    masks = model.branch_masks(tokens, sizes, token_lengths)
    valid = torch.cat([torch.ones(2, NUM_SPECIAL_TOKENS, dtype=torch.bool)]
                      + [torch.arange(size)[None] < n[:, None] for n, size in zip(token_lengths, sizes)], 1)
    intra, inter = build_interaction_masks(*sizes)
    structural = {"global": torch.ones_like(intra), "intra": intra, "inter": inter}
    assert set(masks) == ({"global"} if mode == "global" else {"intra", "inter"})
    for branch, mask in masks.items():
        expected = structural[branch][None] & valid[:, None, :]
        if implementation == "flex_attention":  # the BlockMask's element-wise rule, on every (query, key) pair
            positions = torch.arange(tokens.shape[1])
            allowed = mask.mask_mod(torch.arange(2)[:, None, None], 0, positions[None, :, None], positions[None, None])
            assert torch.equal(allowed, expected), branch
            continue
        if mask is None:  # SDPA without padding in the global branch: no mask at all
            assert expected.all()
            continue
        allowed = mask[:, 0] if mask.dtype == torch.bool else mask[:, 0] == 0
        assert torch.equal(allowed, expected), branch
