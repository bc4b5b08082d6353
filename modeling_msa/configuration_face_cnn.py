"""Configuration of a FabNet-style per-frame face encoder (Wiles et al., BMVC 2018)."""

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig

from .msa_utils import check_unknown_config_keys


@strict
class FaceCNNConfig(PreTrainedConfig):
    r"""
    Configuration of [`FaceCNNModel`]: strided 4x4 convolutions with batch norm and LeakyReLU (FabNet's
    encoder), global average pooling and a linear embedding (256-d as the FabNet features of Semi-IIN).

    Args:
        num_channels: Input image channels.
        hidden_sizes: Output channels of each stride-2 convolution stage.
        embedding_size: Width of the per-frame embedding (`pooler_output`).
        negative_slope: Slope of the LeakyReLU.
        initializer_range: Std of the normal initialisation of the convolutions and the embedding.
    """

    model_type = "msa_face_cnn"

    num_channels: int = 3
    hidden_sizes: list[int] | tuple[int, ...] = (32, 64, 128, 256, 256)
    embedding_size: int = 256
    negative_slope: float = 0.2
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        check_unknown_config_keys(self, kwargs)

    def validate_architecture(self):
        if not self.hidden_sizes:
            raise ValueError("FaceCNNConfig: hidden_sizes must name at least one convolution stage.")


AutoConfig.register(FaceCNNConfig.model_type, FaceCNNConfig, exist_ok=True)

__all__ = ["FaceCNNConfig"]
