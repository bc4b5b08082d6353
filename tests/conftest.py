import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under pytest-xdist (the README's `-n 2`), the workers share the cores: one thread each.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, torch.get_num_threads()))

from modeling_msa import SemiIINConfig  # noqa: E402

TINY_DIMS = {"text_feature_size": 12, "audio_feature_size": 6, "vision_feature_size": 5}


def tiny_semi_iin_config(**overrides) -> SemiIINConfig:
    values = dict(
        TINY_DIMS, hidden_size=16, num_attention_heads=2, intermediate_size=32, head_hidden_size=8,
        max_audio_tokens=8, max_text_tokens=10, max_vision_tokens=9,
    )
    values.update(overrides)
    return SemiIINConfig(**values)


def random_batch(batch=3, text=(10, 7, 4), audio=(40, 23, 9), vision=(9, 5, 2), seed=0, dims=TINY_DIMS):
    """Right-padded random features with per-sample lengths; padded frames hold garbage on purpose."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for name, lengths in (("text", text), ("audio", audio), ("vision", vision)):
        size = dims[f"{name}_feature_size"]
        features = torch.randn(batch, max(lengths), size, generator=generator)
        mask = torch.zeros(batch, max(lengths), dtype=torch.long)
        for row, length in enumerate(lengths[:batch]):
            mask[row, :length] = 1
        out[f"{name}_features"], out[f"{name}_attention_mask"] = features, mask
    return out


@pytest.fixture
def tiny_config():
    return tiny_semi_iin_config()
