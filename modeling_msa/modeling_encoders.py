"""Bundled encoders: raw text, waveforms and video frames -> frame-level features for the fusion models. Built from
sub-configs with `AutoModel.from_config` (random weights); pretrained weights come with [`load_encoder_weights`]."""

import torch
from torch import nn
from transformers import AutoModel, PreTrainedConfig, PreTrainedModel

from .configuration_face_cnn import FaceCNNConfig
from .modeling_face_cnn import FaceCNNModel
from .msa_utils import MODALITIES, prefix_mask


def build_encoder(config: PreTrainedConfig, modality: str) -> PreTrainedModel:
    """The encoder of `config` with random weights; text encoders without their (unused) pooler."""
    if config.model_type == FaceCNNConfig.model_type:  # by name: remote code may load two copies of the class
        return FaceCNNModel(config)
    if modality == "text":
        try:
            return AutoModel.from_config(config, add_pooling_layer=False)
        except TypeError:
            pass
    return AutoModel.from_config(config)


def load_encoder_weights(encoder: nn.Module, name_or_path: str, field: str, **kwargs) -> None:
    """Copy the weights of the pretrained model `name_or_path` (Hub id or folder) into `encoder`."""
    pretrained = AutoModel.from_pretrained(name_or_path, **kwargs)
    missing, unexpected = encoder.load_state_dict(pretrained.state_dict(), strict=False)
    unexpected = [key for key in unexpected if "pooler" not in key]
    if missing or unexpected:
        raise ValueError(f"{field}: the weights of {name_or_path!r} do not fit the encoder built from the config "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]}); build the config from the same "
                         "checkpoint (e.g. `modeling_msa.semi_iin_config_from_encoders`).")


def _grad_context(encoder: nn.Module):
    """No autograd graph through an encoder none of whose parameters trains (frozen encoders)."""
    trains = any(parameter.requires_grad for parameter in encoder.parameters())
    return torch.set_grad_enabled(torch.is_grad_enabled() and trains)


def encode_text(encoder: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                token_type_ids: torch.Tensor | None = None, num_layers: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Token features [B, N, D] (mean of the last `num_layers` hidden states) and their mask."""
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    kwargs = {"input_ids": input_ids, "attention_mask": attention_mask, "output_hidden_states": num_layers > 1}
    if token_type_ids is not None:
        kwargs["token_type_ids"] = token_type_ids
    with _grad_context(encoder):
        output = encoder(**kwargs)
    if num_layers > 1:
        hidden = torch.stack(output.hidden_states[-num_layers:]).mean(0)
    else:
        hidden = output.last_hidden_state
    return hidden, attention_mask


def encode_audio(
    encoder: nn.Module, input_values: torch.Tensor, waveform_mask: torch.Tensor | None, num_layers: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Audio frame features [B, L, D] from 16 kHz waveforms [B, S] (HuBERT/wav2vec2 family) and their mask."""
    if input_values.dim() != 2:
        raise ValueError(f"input_values must be waveforms [batch, samples], got {tuple(input_values.shape)}.")
    with _grad_context(encoder):
        output = encoder(input_values, attention_mask=waveform_mask, output_hidden_states=num_layers > 1)
    hidden = torch.stack(output.hidden_states[-num_layers:]).mean(0) if num_layers > 1 else output.last_hidden_state
    if waveform_mask is None:
        lengths = torch.full((hidden.shape[0],), hidden.shape[1], device=hidden.device)
    else:
        lengths = encoder._get_feat_extract_output_lengths(waveform_mask.sum(-1)).clamp(max=hidden.shape[1])
    return hidden, prefix_mask(lengths, hidden.shape[1]).long()


def encode_frames(encoder: nn.Module, pixel_values: torch.Tensor,
                  frame_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame features [B, F, D] from frames [B, F, C, H, W]; padding frames are not encoded."""
    if pixel_values.dim() != 5:
        raise ValueError("pixel_values must be video frames [batch, frames, channels, height, width], got "
                         f"{tuple(pixel_values.shape)}.")
    batch, frames = pixel_values.shape[:2]
    if frame_mask is None:
        frame_mask = torch.ones(batch, frames, dtype=torch.long, device=pixel_values.device)
    real = frame_mask.bool()
    with _grad_context(encoder):
        output = encoder(pixel_values=pixel_values[real])
    pooled = output.pooler_output
    if pooled is None:
        hidden = output.last_hidden_state
        pooled = hidden.mean(1) if hidden.dim() == 3 else hidden.mean(dim=(2, 3))
    pooled = pooled.flatten(1)
    features = pooled.new_zeros(batch, frames, pooled.shape[-1])
    features[real] = pooled
    return features, frame_mask


class FrozenEncodersMixin:
    """`config.freeze_encoders` for a model: `_frozen_encoders()` lists the modules it covers; they get no
    gradients and stay in eval mode (no dropout, no batch-norm statistics updates) when the model trains."""

    def _frozen_encoders(self) -> list[nn.Module]:
        return [self.encoders]

    def _freeze_encoders_if_configured(self) -> None:
        if self.config.freeze_encoders:
            for module in self._frozen_encoders():
                module.requires_grad_(False)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """Loading materialises new parameters (which require gradients): freeze again once they are in."""
        loaded = super().from_pretrained(*args, **kwargs)  # (model, loading info) with output_loading_info=True
        (loaded[0] if isinstance(loaded, tuple) else loaded)._freeze_encoders_if_configured()
        return loaded

    def train(self, mode: bool = True):
        super().train(mode)
        if self.config.freeze_encoders:
            for module in self._frozen_encoders():
                module.eval()
        return self


RAW_INPUTS = {"text": "input_ids", "audio": "input_values", "vision": "pixel_values"}
# Every raw-input argument of the fusion models (the main inputs above and their masks).
RAW_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids", "input_values", "waveform_attention_mask",
                   "pixel_values", "frame_attention_mask")


def encode_raw_inputs(encoders: nn.ModuleDict, features: dict, masks: dict, raw: dict, config,
                      modalities=MODALITIES) -> None:
    """Fill `features`/`masks` (per modality) from the bundled `encoders` where raw inputs are given; check that
    each modality has exactly what it needs. `config` gives `text_encoder_layers`/`audio_encoder_layers`."""
    for modality in modalities:
        needed = RAW_INPUTS[modality]
        given = raw.get(needed) is not None
        if given and modality not in encoders:
            raise ValueError(f"{needed} given but the config has no {modality}_config: pass {modality}_features, or "
                             f"build the model with a {modality} encoder (`{modality}_config`).")
        if not given:
            if features[modality] is None:
                hint = f"{needed} (processor output) or " if modality in encoders else ""
                raise ValueError(f"No {modality} input: pass {hint}{modality}_features.")
            continue
        if modality == "text":
            features["text"], masks["text"] = encode_text(encoders["text"], raw["input_ids"],
                                                          raw.get("attention_mask"), raw.get("token_type_ids"),
                                                          getattr(config, "text_encoder_layers", 1))
        elif modality == "audio":
            features["audio"], masks["audio"] = encode_audio(encoders["audio"], raw["input_values"],
                                                             raw.get("waveform_attention_mask"),
                                                             getattr(config, "audio_encoder_layers", 1))
        else:
            features["vision"], masks["vision"] = encode_frames(encoders["vision"], raw["pixel_values"],
                                                                raw.get("frame_attention_mask"))


__all__ = ["FrozenEncodersMixin", "RAW_INPUTS", "RAW_INPUT_NAMES", "build_encoder", "encode_audio", "encode_frames",
           "encode_raw_inputs", "encode_text", "load_encoder_weights"]
