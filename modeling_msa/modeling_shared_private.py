"""Shared/private multimodal sentiment model (arXiv 2305.08473); Self-MM (AAAI 2021) is its special case.

Text: a transformers encoder read at its first token, or precomputed features. Audio/vision: LSTMs over
packed sequences with their real lengths. Self-MM post layers give the fusion/text/audio/vision features
(`features`, used by ULGM) and the four predictions M/T/A/V. A covariance (Deep CORAL) loss aligns the
shared projections of configurable modality pairs.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput, can_return_tuple

from .configuration_shared_private import SharedPrivateConfig
from .modeling_encoders import FrozenEncodersMixin, build_encoder, encode_raw_inputs, load_encoder_weights
from .msa_utils import (
    MODALITIES,
    AutoMapMixin,
    InputValueChecks,
    check_feature_shapes,
    lengths_from_mask,
    should_check_input_values,
)


def covariance(features: torch.Tensor) -> torch.Tensor:
    """C = (F^T F - (1^T F)^T (1^T F) / n) / (n - 1) for F of shape [n, d]."""
    n = features.shape[0]
    column_sums = features.sum(0, keepdim=True)
    return (features.T @ features - column_sums.T @ column_sums / n) / (n - 1)


def coral_loss(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Deep CORAL: ||C_s - C_t||_F^2 / (4 d^2). Zero for a batch of fewer than two samples."""
    if source.shape != target.shape:
        raise ValueError(f"coral_loss needs features of equal shape, got {tuple(source.shape)} and {tuple(target.shape)}.")
    if source.shape[0] < 2:
        return source.new_zeros(())
    dim = source.shape[1]
    return (covariance(source) - covariance(target)).pow(2).sum() / (4 * dim * dim)


@dataclass
class SharedPrivateOutput(ModelOutput):
    """Outputs of [`SharedPrivateForSentimentAnalysis`].

    loss: Multi-task loss when `labels` are given.
    logits: Fusion prediction M, [B].
    text_logits / audio_logits / vision_logits: Unimodal predictions T, A, V, [B].
    features: Post-layer features `{"fusion", "text", "audio", "vision"}` (what ULGM's memory bank stores).
    alignment_loss: The (unweighted) covariance alignment loss summed over the configured pairs.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    text_logits: torch.Tensor | None = None
    audio_logits: torch.Tensor | None = None
    vision_logits: torch.Tensor | None = None
    features: dict[str, torch.Tensor] | None = None
    alignment_loss: torch.Tensor | None = None


class SequenceLSTMEncoder(nn.Module):
    """Self-MM's AuViSubNet: LSTM over the real frames, last hidden state, dropout, linear."""

    def __init__(self, in_size: int, hidden_size: int, out_size: int, num_layers: int, dropout: float):
        super().__init__()
        self.rnn = nn.LSTM(in_size, hidden_size, num_layers=num_layers, dropout=dropout if num_layers > 1 else 0.0,
                           batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(hidden_size, out_size)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # The last layer's output at each sequence's last real frame is exactly the final hidden state of a packed
        # run (right padding comes later and never reaches it). Not packing avoids the CPU backward of packed
        # LSTMs, which zero-fills a full-size gradient per time step (quadratic; 60% of a Self-MM step at MOSI shape).
        output, _ = self.rnn(features.to(self.linear.weight.dtype))
        last = output[torch.arange(output.shape[0], device=output.device), (lengths - 1).clamp(min=0)]
        return self.linear(self.dropout(last))


class PredictionHead(nn.Module):
    """Self-MM post layers: dropout -> Linear+ReLU (the feature) -> Linear+ReLU -> Linear(1)."""

    def __init__(self, in_size: int, size: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.layer_1 = nn.Linear(in_size, size)
        self.layer_2 = nn.Linear(size, size)
        self.layer_3 = nn.Linear(size, 1)

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature = F.relu(self.layer_1(self.dropout(hidden)))
        return self.layer_3(F.relu(self.layer_2(feature))).squeeze(-1), feature


class SharedPrivatePreTrainedModel(AutoMapMixin, PreTrainedModel):
    config: SharedPrivateConfig
    config_class = SharedPrivateConfig
    base_model_prefix = "shared_private"
    main_input_name = "audio_features"
    accepts_loss_kwargs = False
    supports_gradient_checkpointing = True  # the bundled transformers encoders' layers
    _no_split_modules = []
    _auto_map_classes = {
        "AutoModel": "SharedPrivateForSentimentAnalysis",
        "AutoModelForSequenceClassification": "SharedPrivateForSentimentAnalysis",
    }

    def _init_weights(self, module: nn.Module):
        """PyTorch's uniform LSTM init (as Self-MM); the transformers defaults for everything else."""
        if isinstance(module, nn.LSTM):
            bound = 1.0 / module.hidden_size**0.5
            for parameter in module.parameters():
                init.uniform_(parameter, -bound, bound)
        else:
            super()._init_weights(module)


class SharedPrivateForSentimentAnalysis(FrozenEncodersMixin, SharedPrivatePreTrainedModel):
    """Text encoder + audio/vision LSTMs, Self-MM post layers, four heads and covariance alignment."""

    def __init__(self, config: SharedPrivateConfig):
        super().__init__(config)
        self.validate_inputs = True  # data-dependent input checks, one host sync (see `InputValueChecks`)
        if config.text_input == "input_ids":
            self.text_encoder = build_encoder(config.text_config, "text")  # no pooler: the first token is read
        self.text_dropout = nn.Dropout(config.text_dropout)
        self.audio_encoder = SequenceLSTMEncoder(
            config.audio_feature_size, config.audio_lstm_hidden_size, config.audio_out_size,
            config.audio_lstm_layers, config.audio_lstm_dropout,
        )
        self.vision_encoder = SequenceLSTMEncoder(
            config.vision_feature_size, config.vision_lstm_hidden_size, config.vision_out_size,
            config.vision_lstm_layers, config.vision_lstm_dropout,
        )
        sizes = {"text": config.text_hidden_size, "audio": config.audio_out_size, "vision": config.vision_out_size}
        self.aligned_modalities = sorted({m for pair in config.parsed_alignment_pairs() for m in pair})
        fusion_size = sum(sizes.values()) + config.shared_size * len(self.aligned_modalities)
        self.fusion_head = PredictionHead(fusion_size, config.post_fusion_size, config.post_fusion_dropout)
        self.text_head = PredictionHead(sizes["text"], config.post_text_size, config.post_text_dropout)
        self.audio_head = PredictionHead(sizes["audio"], config.post_audio_size, config.post_audio_dropout)
        self.vision_head = PredictionHead(sizes["vision"], config.post_vision_size, config.post_vision_dropout)
        # Shared-information modules M_s: their outputs join the fusion input (so they cannot collapse to a
        # constant for free) and the covariance loss aligns their distributions across modalities.
        self.shared_projections = nn.ModuleDict({
            m: nn.Sequential(
                nn.Linear(sizes[m], config.shared_size), nn.ReLU(), nn.Linear(config.shared_size, config.shared_size),
                nn.LayerNorm(config.shared_size, elementwise_affine=False),
            )
            for m in self.aligned_modalities
        })
        self.encoders = nn.ModuleDict({
            m: build_encoder(getattr(config, f"{m}_config"), m) for m in config.encoder_modalities
        })
        self.post_init()
        self._freeze_encoders_if_configured()

    def _frozen_encoders(self) -> list[nn.Module]:
        """The bundled audio/vision encoders and the text encoder."""
        return [self.encoders] + ([self.text_encoder] if self.config.text_input == "input_ids" else [])

    def load_pretrained_text_encoder(self, name_or_path: str, **kwargs) -> None:
        """Load pretrained weights (e.g. "bert-base-uncased") into the text encoder; call after building."""
        if self.config.text_input != "input_ids":
            raise ValueError("load_pretrained_text_encoder needs text_input='input_ids'.")
        load_encoder_weights(self.text_encoder, name_or_path, "text_config", **kwargs)

    def _text_representation(self, input_ids, token_type_ids, text_features, text_attention_mask) -> torch.Tensor:
        if self.config.text_input == "input_ids":
            if input_ids is None:
                raise ValueError("input_ids are required (text_input='input_ids'); or build with text_input='features'.")
            kwargs = {"input_ids": input_ids, "attention_mask": text_attention_mask}
            if token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids
            hidden = self.text_encoder(**kwargs).last_hidden_state
        else:
            if text_features is None:
                raise ValueError("text_features are required (text_input='features').")
            hidden = text_features.to(self.fusion_head.layer_1.weight.dtype)
        return self.text_dropout(hidden[:, 0])

    @can_return_tuple
    def forward(
        self,
        audio_features: torch.Tensor | None = None,
        vision_features: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        text_features: torch.Tensor | None = None,
        text_attention_mask: torch.Tensor | None = None,
        audio_attention_mask: torch.Tensor | None = None,
        vision_attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        text_labels: torch.Tensor | None = None,
        audio_labels: torch.Tensor | None = None,
        vision_labels: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        waveform_attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        frame_attention_mask: torch.Tensor | None = None,
    ) -> SharedPrivateOutput:
        r"""
        audio_features / vision_features: [B, L, Da] / [B, M, Dv]; masks 1 = real frame (right padding).
        input_ids / token_type_ids / text_attention_mask: tokenized text ("input_ids" mode).
        text_features: [B, N, Dt] precomputed text features whose first position is read ("features" mode).
        labels: [B] multimodal labels y_m. text_labels / audio_labels / vision_labels: unimodal labels y_s
            (ULGM or human); y_m when omitted, which gives a zero unimodal loss under tanh weighting.
        attention_mask: the tokenizer's name for `text_attention_mask` (processor output).
        input_values / waveform_attention_mask, pixel_values / frame_attention_mask: raw audio / video frames for
            bundled audio / vision encoders (see `SemiIINForSentimentAnalysis`).
        """
        config = self.config
        if text_attention_mask is None:
            text_attention_mask = attention_mask
        features = {"audio": audio_features, "vision": vision_features}
        masks = {"audio": audio_attention_mask, "vision": vision_attention_mask}
        raw = {"input_values": input_values, "waveform_attention_mask": waveform_attention_mask,
               "pixel_values": pixel_values, "frame_attention_mask": frame_attention_mask}
        encode_raw_inputs(self.encoders, features, masks, raw, config, modalities=("audio", "vision"))
        audio_features, vision_features = features["audio"], features["vision"]
        expected = {"audio": config.audio_feature_size, "vision": config.vision_feature_size}
        if config.text_input == "features" and text_features is not None:
            features["text"], masks["text"], expected["text"] = text_features, text_attention_mask, config.text_feature_size
        check_feature_shapes(features, masks, expected)
        lengths = {m: lengths_from_mask(masks[m], features[m]) for m in ("audio", "vision")}
        if should_check_input_values(self):
            checks = InputValueChecks().features(features, masks)
            for modality, length in lengths.items():
                checks.fail_if((length == 0).any(),
                               f"{modality}_attention_mask: every sample needs at least one real {modality} frame.")
            checks.raise_if_failed()

        hidden = {
            "text": self._text_representation(input_ids, token_type_ids, text_features, text_attention_mask),
            "audio": self.audio_encoder(audio_features, lengths["audio"]),
            "vision": self.vision_encoder(vision_features, lengths["vision"]),
        }
        shared = {m: self.shared_projections[m](hidden[m]) for m in self.aligned_modalities}
        fusion_input = torch.cat([hidden[m] for m in MODALITIES] + [shared[m] for m in self.aligned_modalities], dim=-1)
        logits, fusion_feature = self.fusion_head(fusion_input)
        unimodal = {m: getattr(self, f"{m}_head")(hidden[m]) for m in MODALITIES}
        post_features = {"fusion": fusion_feature, **{m: unimodal[m][1] for m in MODALITIES}}

        alignment_loss = logits.new_zeros(())
        for first, second in config.parsed_alignment_pairs():
            alignment_loss = alignment_loss + coral_loss(shared[first], shared[second])

        loss = None
        if labels is not None:
            unimodal_labels = {"text": text_labels, "audio": audio_labels, "vision": vision_labels}
            loss = self.compute_loss(logits, {m: unimodal[m][0] for m in MODALITIES}, labels, unimodal_labels,
                                     alignment_loss)
        return SharedPrivateOutput(
            loss=loss, logits=logits, text_logits=unimodal["text"][0], audio_logits=unimodal["audio"][0],
            vision_logits=unimodal["vision"][0], features=post_features, alignment_loss=alignment_loss,
        )

    def compute_loss(self, logits, unimodal_logits: dict, labels, unimodal_labels: dict, alignment_loss) -> torch.Tensor:
        """L1(M) + w_u * sum_s mean(w_s |s - y_s|) + w_a * alignment, w_s = tanh(|y_s - y_m|) or 1."""
        config = self.config
        labels = labels.to(device=logits.device, dtype=logits.dtype).view(-1)
        loss = (logits - labels).abs().mean()
        for modality in MODALITIES:
            target = unimodal_labels.get(modality)
            target = labels if target is None else target.to(device=logits.device, dtype=logits.dtype).view(-1)
            weight = torch.tanh((target - labels).abs()) if config.unimodal_loss_weighting == "tanh" else 1.0
            loss = loss + config.unimodal_loss_weight * (weight * (unimodal_logits[modality] - target).abs()).mean()
        return loss + config.alignment_loss_weight * alignment_loss


__all__ = [
    "SharedPrivateForSentimentAnalysis", "SharedPrivateOutput", "SharedPrivatePreTrainedModel", "coral_loss", "covariance",
]
