"""FabNet-style per-frame face encoder: images [B, C, H, W] -> embeddings [B, embedding_size]."""

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.utils import can_return_tuple

from .configuration_face_cnn import FaceCNNConfig


class FaceCNNPreTrainedModel(PreTrainedModel):
    config: FaceCNNConfig
    config_class = FaceCNNConfig
    base_model_prefix = "face_cnn"
    main_input_name = "pixel_values"

    def _init_weights(self, module: nn.Module):
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            init.ones_(module.weight)
            init.zeros_(module.bias)


class FaceCNNModel(FaceCNNPreTrainedModel):
    """Conv(4, stride 2) -> BatchNorm -> LeakyReLU stages, global average pooling, linear embedding."""

    def __init__(self, config: FaceCNNConfig):
        super().__init__(config)
        channels = [config.num_channels, *config.hidden_sizes]
        self.stages = nn.Sequential(*[
            nn.Sequential(
                nn.Conv2d(channels[i], channels[i + 1], kernel_size=4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(channels[i + 1]),
                nn.LeakyReLU(config.negative_slope),
            )
            for i in range(len(config.hidden_sizes))
        ])
        self.embedding = nn.Linear(channels[-1], config.embedding_size)
        self.post_init()

    def train(self, mode: bool = True):
        """As `nn.Module.train`, except that a BatchNorm whose weights are frozen (the encoder frozen, or LoRA-tuned
        with peft) keeps its statistics: they are part of the frozen encoder, and an adapter does not save them."""
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d) and not any(p.requires_grad for p in module.parameters()):
                module.eval()
        return self

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor, **kwargs) -> BaseModelOutputWithPooling:
        if pixel_values.dim() != 4 or pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(f"FaceCNNModel expects pixel_values [batch, {self.config.num_channels}, height, width], "
                             f"got {tuple(pixel_values.shape)}.")
        feature_map = self.stages(pixel_values)
        pooled = self.embedding(feature_map.mean(dim=(2, 3)))
        return BaseModelOutputWithPooling(last_hidden_state=feature_map, pooler_output=pooled)


AutoModel.register(FaceCNNConfig, FaceCNNModel, exist_ok=True)

__all__ = ["FaceCNNModel", "FaceCNNPreTrainedModel"]
