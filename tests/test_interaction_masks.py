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
