"""Configuration of the shared/private model (arXiv 2305.08473) and its special case Self-MM."""

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig

from .configuration_face_cnn import FaceCNNConfig
from .msa_utils import (
    MODALITIES,
    bundled_encoder_modalities,
    check_unknown_config_keys,
    resolve_encoder_configs,
    sync_encoder_feature_sizes,
)

TEXT_INPUTS = ("input_ids", "features")
UNIMODAL_WEIGHTINGS = ("tanh", "uniform")


@strict
class SharedPrivateConfig(PreTrainedConfig):
    r"""
    Configuration of [`SharedPrivateForSentimentAnalysis`]: a text encoder (any transformers encoder built
    from `text_config`, BERT by default, read at its first token) or precomputed text features, LSTMs over
    audio and vision, Self-MM post layers and four heads (fusion M, text T, audio A, vision V).

    Loss: `L1(M) + unimodal_loss_weight * sum_s mean(w_s * |s - y_s|) + alignment_loss_weight * sum_pairs CORAL`
    where y_s are the ULGM (or human) unimodal labels and w_s = tanh(|y_s - y_m|) (Self-MM) or 1 ("uniform").
    CORAL(a, b) = ||C_a - C_b||_F^2 / (4 d^2) over the batch covariances of the shared projections.
    Self-MM is this model with `alignment_loss_weight=0` (see [`SharedPrivateConfig.self_mm`]).

    Args:
        text_input: "input_ids" (run the text encoder) or "features" (precomputed [B, N, text_feature_size]).
        text_config: Config of the text encoder (dict with `model_type` or a config), "input_ids" mode only.
        text_feature_size: Width of precomputed text features ("features" mode).
        text_dropout: Dropout on the text encoder's first token before it enters the fusion and the text branch.
            Default 0, as MMSA 2.2.1's SELF_MM: its config defines `t_bert_dropout` but the model never applies it
            (text is dropped only inside the text branch, `post_text_dropout`).
        audio_feature_size / vision_feature_size: Input widths of the audio / vision frame features.
        audio_lstm_hidden_size / vision_lstm_hidden_size, *_lstm_layers, *_lstm_dropout: the LSTMs.
        audio_out_size / vision_out_size: Outputs of the linear layer after each LSTM.
        post_fusion_size / post_text_size / post_audio_size / post_vision_size: Post layer widths.
        post_*_dropout: Dropout before each first post layer.
        shared_size: Width of the shared projections M_s compared by the covariance loss.
        alignment_pairs: Modality pairs "a-b" aligned by the covariance loss (default audio-vision).
        alignment_loss_weight: Weight of the covariance loss (0 = Self-MM).
        unimodal_loss_weight: Weight of the unimodal (T/A/V) losses.
        unimodal_loss_weighting: "tanh" (Self-MM: tanh(|y_s - y_m|)) or "uniform".
        audio_config / vision_config: Optional bundled audio (HuBERT/wav2vec2 family, fed 16 kHz `input_values`) and
            per-frame vision (`msa_face_cnn` or a transformers image backbone, fed `pixel_values`) encoders whose
            frame features feed the LSTMs; `*_feature_size` then follows the encoder.
        audio_encoder_layers: Last hidden layers of the audio encoder averaged into its features.
        freeze_encoders: Keep the text encoder and the bundled audio/vision encoders fixed.
    """

    model_type = "shared_private"
    keys_to_ignore_at_inference = ["features", "alignment_loss"]
    # the bundled encoders' sub-configs (None: precomputed features) and the model_type a dict without one gets
    encoder_model_types = {
        "text_config": "bert", "audio_config": "hubert", "vision_config": FaceCNNConfig.model_type,
    }
    sub_configs = dict.fromkeys(encoder_model_types, AutoConfig)

    text_input: str = "input_ids"
    text_config: dict | PreTrainedConfig | None = None
    text_feature_size: int = 768
    text_dropout: float | int = 0.0
    audio_feature_size: int = 5
    vision_feature_size: int = 20
    audio_lstm_hidden_size: int = 16
    vision_lstm_hidden_size: int = 32
    audio_lstm_layers: int = 1
    vision_lstm_layers: int = 1
    audio_lstm_dropout: float | int = 0.0
    vision_lstm_dropout: float | int = 0.0
    audio_out_size: int = 16
    vision_out_size: int = 32
    post_fusion_size: int = 128
    post_text_size: int = 32
    post_audio_size: int = 16
    post_vision_size: int = 32
    post_fusion_dropout: float | int = 0.0
    post_text_dropout: float | int = 0.1
    post_audio_dropout: float | int = 0.1
    post_vision_dropout: float | int = 0.0
    shared_size: int = 32
    alignment_pairs: list[str] | tuple[str, ...] = ("audio-vision",)
    alignment_loss_weight: float | int = 1.0
    unimodal_loss_weight: float | int = 1.0
    unimodal_loss_weighting: str = "tanh"
    initializer_range: float = 0.02
    audio_config: dict | PreTrainedConfig | None = None
    vision_config: dict | PreTrainedConfig | None = None
    audio_encoder_layers: int = 1
    freeze_encoders: bool = False

    def __post_init__(self, **kwargs):
        if self.text_input == "input_ids" and self.text_config is None:
            self.text_config = {"model_type": "bert"}
        resolve_encoder_configs(self, self.encoder_model_types)
        super().__post_init__(**kwargs)
        check_unknown_config_keys(self, kwargs)
        if self.text_input == "features":
            self.text_config = None
        sync_encoder_feature_sizes(self, ("audio", "vision"))

    @property
    def encoder_modalities(self) -> tuple[str, ...]:
        """Modalities with a bundled audio/vision encoder (the text encoder is `text_input="input_ids"`)."""
        return bundled_encoder_modalities(self, ("audio", "vision"))

    @classmethod
    def self_mm(cls, **kwargs) -> "SharedPrivateConfig":
        """Self-MM (Yu et al., AAAI 2021): no covariance alignment, ULGM-weighted unimodal losses."""
        return cls(**{"alignment_loss_weight": 0.0, "alignment_pairs": (), "unimodal_loss_weighting": "tanh", **kwargs})

    @property
    def text_hidden_size(self) -> int:
        return self.text_config.hidden_size if self.text_input == "input_ids" else self.text_feature_size

    def parsed_alignment_pairs(self) -> list[tuple[str, str]]:
        return [tuple(pair.split("-")) for pair in self.alignment_pairs]

    def validate_architecture(self):
        """Checked by `@strict` at init and save time."""
        sizes = ("text_feature_size", "audio_feature_size", "vision_feature_size", "audio_lstm_hidden_size",
                 "vision_lstm_hidden_size", "audio_lstm_layers", "vision_lstm_layers", "audio_out_size",
                 "vision_out_size", "post_fusion_size", "post_text_size", "post_audio_size", "post_vision_size",
                 "shared_size")
        for name in sizes:  # absurd sizes are refused before any allocation
            limit = 64 if name.endswith("_layers") else 2**16
            if not 1 <= getattr(self, name) <= limit:
                raise ValueError(f"SharedPrivateConfig: {name} must be an integer in [1, {limit}], got "
                                 f"{getattr(self, name)}.")
        for name in ("text_dropout", "audio_lstm_dropout", "vision_lstm_dropout", "post_fusion_dropout",
                     "post_text_dropout", "post_audio_dropout", "post_vision_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"SharedPrivateConfig: {name} must lie in [0, 1), got {getattr(self, name)}.")
        if self.text_input not in TEXT_INPUTS:
            raise ValueError(f"SharedPrivateConfig: text_input={self.text_input!r}; expected one of {TEXT_INPUTS}.")
        if self.unimodal_loss_weighting not in UNIMODAL_WEIGHTINGS:
            raise ValueError(
                f"SharedPrivateConfig: unimodal_loss_weighting={self.unimodal_loss_weighting!r}; "
                f"expected one of {UNIMODAL_WEIGHTINGS}."
            )
        for pair in self.alignment_pairs:
            parts = pair.split("-")
            if len(parts) != 2 or parts[0] == parts[1] or not set(parts) <= set(MODALITIES):
                raise ValueError(
                    f"SharedPrivateConfig: alignment pair {pair!r} must be two different modalities joined by '-', "
                    f"from {MODALITIES} (e.g. 'audio-vision')."
                )


__all__ = ["SharedPrivateConfig"]
