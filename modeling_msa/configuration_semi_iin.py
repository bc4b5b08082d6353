"""Configuration of Semi-IIN (arXiv 2412.09784)."""

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

ATTENTION_MODES = ("intra_inter", "global")
ENCODER_STYLES = ("mult", "pre_ln")
INITIALIZATIONS = ("official", "normal")
# Folders saved before these fields existed ran today's "pre_ln" encoder with learned positions in every mode, and
# one key/value stream; `fast_cpu_dropout` (a CPU speed path, no longer in the model) is dropped.
LEGACY_DEFAULTS = {"encoder_style": "pre_ln", "global_position_embeddings": True, "initialization": "normal"}
LEGACY_FIELD_DEFAULTS = {"separate_key_value_dropout": False}
REMOVED_FIELDS = ("fast_cpu_dropout",)
FUSION_MODES = ("gate", "add", "concat", "dot")


@strict
class SemiIINConfig(PreTrainedConfig):
    r"""
    Configuration of [`SemiIINForSentimentAnalysis`].

    Defaults follow the paper and its official code: RoBERTa-large text (1024), FabNet vision (256) and
    HuBERT-large audio (1024) features, hidden size 128, 4 heads, a pre-LN transformer layer applied twice
    (tied) in each of the IntraMA and InterMA branches, gated fusion at the val/cls positions.

    Args:
        text_feature_size / audio_feature_size / vision_feature_size:
            Last dimension of the precomputed features of each modality.
        hidden_size: Width of the projected tokens and the transformer.
        num_attention_heads: Attention heads of each transformer layer.
        num_hidden_layers: Distinct transformer layers per branch.
        layer_repeats: How many times the (tied) stack of layers is applied (official code: 2).
        intermediate_size: Width of the feed-forward block (4 x hidden by default).
        input_dropout: Dropout on the raw features before the Conv1d projections.
        attention_dropout / relu_dropout / residual_dropout: Transformer dropouts.
        embedding_dropout: Dropout on the token sequence: at the start of every application of a branch ("mult",
            the official code's `embed_dropout=0.2`) or once after the embeddings ("pre_ln").
        encoder_style: "mult" (the official code: each branch is MulT's `TransformerEncoder`, applied
            `layer_repeats` times with tied weights; each application scales its input by sqrt(hidden_size), adds
            sinusoidal positions when `sinusoidal_positions`, applies `embedding_dropout`, the pre-LN layers and a
            final LayerNorm) or "pre_ln" (the layers applied `layer_repeats` times, then one LayerNorm; no scaling).
        separate_key_value_dropout: "mult" only: each application draws its embedding dropout twice, once for the
            query/residual stream and once for the key/value stream, and every layer of the application projects its
            keys and values from the latter (normed by the layer's attention LayerNorm). This is the official code's
            `layer(x, x, x)` call of MulT's encoder, whose attention projects keys and values both from the key input.
            False: one stream (`layer(x)`). In eval with one layer per application both are the same.
        sinusoidal_positions: "mult" only: add MulT's sinusoidal positions (fairseq table, position = slot + 1) in
            each application. The original MulT always adds them and MMSA's copy only with `position_embedding`;
            Semi-IIN's own `cross_transformer.py` is not published, so this default (True) is inferred.
        global_position_embeddings: Add the learned position embeddings in the "global" ablation too (the official
            code adds none there; True keeps them, as folders saved before this field did).
        initialization: "official" (the official code: PyTorch's default init for the convolutions, fusion and
            heads, Xavier-uniform with zero bias for the MulT attention and feed-forward layers, normal(0.05) type
            embeddings, truncated-normal(0.02) val/cls and positions) or "normal" (normal(`initializer_range`)).
        text_kernel_size / vision_kernel_size: Kernel of the text/vision Conv1d (stride 1, "same" padding).
        audio_kernel_sizes / audio_strides / audio_paddings: The stacked audio Conv1d (default x8 downsampling).
        max_audio_tokens / max_text_tokens / max_vision_tokens:
            Learned position slots per modality (after audio downsampling). Longer inputs are rejected.
        attention_mode: "intra_inter" (IntraMA + InterMA branches) or "global" (one unmasked branch, the ablation).
        fusion: How the two branches are mixed at val/cls: "gate" (paper), "add", "concat" or "dot".
        head_hidden_size: Output width of the shared MLP before the two heads.
        num_emotion_classes: Classes of the sentiment-class head (7 for [-3, 3] intensities).
        regression_loss_weight: lambda_1 of `lambda_1 * MSE + (1 - lambda_1) * CE` on labelled samples.
        pseudo_label_loss_weight: lambda_2 of the CE term on pseudo-labelled samples (self-training).
        initializer_range: Std of the "normal" initialisation.
        layer_norm_eps: Epsilon of every LayerNorm.
        text_config / audio_config / vision_config: Optional bundled encoders (sub-configs with a `model_type`):
            a RoBERTa/BERT-family text encoder (fed `input_ids`), a HuBERT/wav2vec2-family audio encoder (fed
            16 kHz `input_values`) and a per-frame image encoder (fed `pixel_values` [B, F, C, H, W]; the
            FabNet-style `msa_face_cnn` or any transformers image backbone). A modality without one takes
            precomputed features; with one, its `*_feature_size` is the encoder's output width.
            See `modeling_msa.semi_iin_config_from_encoders`.
        text_encoder_layers / audio_encoder_layers: How many last hidden layers of the text / audio encoder are
            averaged into the features (paper: last 4 RoBERTa layers).
        freeze_encoders: Keep the bundled encoders' weights fixed (no gradients); for LoRA leave it False and
            let peft freeze them.
    """

    model_type = "semi_iin"
    keys_to_ignore_at_inference = ["gate_values", "pooled_output"]
    # the bundled encoders' sub-configs (None: precomputed features) and the model_type a dict without one gets
    encoder_model_types = {"text_config": "roberta", "audio_config": "hubert",
                           "vision_config": FaceCNNConfig.model_type}
    sub_configs = dict.fromkeys(encoder_model_types, AutoConfig)

    text_feature_size: int = 1024
    audio_feature_size: int = 1024
    vision_feature_size: int = 256
    hidden_size: int = 128
    num_attention_heads: int = 4
    num_hidden_layers: int = 1
    layer_repeats: int = 2
    intermediate_size: int = 512
    input_dropout: float | int = 0.5
    attention_dropout: float | int = 0.1
    relu_dropout: float | int = 0.2
    residual_dropout: float | int = 0.2
    embedding_dropout: float | int = 0.2
    separate_key_value_dropout: bool = True
    text_kernel_size: int = 3
    vision_kernel_size: int = 3
    audio_kernel_sizes: list[int] | tuple[int, ...] = (4, 4)
    audio_strides: list[int] | tuple[int, ...] = (2, 4)
    audio_paddings: list[int] | tuple[int, ...] = (1, 1)
    max_audio_tokens: int = 100
    max_text_tokens: int = 100
    max_vision_tokens: int = 512
    attention_mode: str = "intra_inter"
    encoder_style: str = "mult"
    sinusoidal_positions: bool = True
    global_position_embeddings: bool = False
    initialization: str = "official"
    fusion: str = "gate"
    head_hidden_size: int = 64
    num_emotion_classes: int = 7
    regression_loss_weight: float | int = 0.6
    pseudo_label_loss_weight: float | int = 0.2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-5
    text_config: dict | PreTrainedConfig | None = None
    audio_config: dict | PreTrainedConfig | None = None
    vision_config: dict | PreTrainedConfig | None = None
    text_encoder_layers: int = 4
    audio_encoder_layers: int = 1
    freeze_encoders: bool = False

    def __post_init__(self, **kwargs):
        resolve_encoder_configs(self, self.encoder_model_types)
        super().__post_init__(**kwargs)
        check_unknown_config_keys(self, kwargs)
        sync_encoder_feature_sizes(self, MODALITIES)

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        """A saved config; one written before a field existed keeps the behaviour it was trained with."""
        if config_dict.get("model_type", cls.model_type) == cls.model_type:
            legacy = {**LEGACY_DEFAULTS, **LEGACY_FIELD_DEFAULTS} if "encoder_style" not in config_dict else {
                key: value for key, value in LEGACY_FIELD_DEFAULTS.items() if key not in config_dict}
            config_dict = {**legacy, **{k: v for k, v in config_dict.items() if k not in REMOVED_FIELDS}}
        return super().from_dict(config_dict, **kwargs)

    @property
    def uses_position_embeddings(self) -> bool:
        """Whether the learned position embeddings are added (always, except the official "global" ablation)."""
        return self.attention_mode != "global" or self.global_position_embeddings

    @property
    def encoder_modalities(self) -> tuple[str, ...]:
        """Modalities with a bundled encoder (raw inputs); the others take precomputed features."""
        return bundled_encoder_modalities(self, MODALITIES)

    def validate_architecture(self):
        """Checked by `@strict` at init and save time."""
        positive = ("hidden_size", "num_attention_heads", "num_hidden_layers", "layer_repeats", "intermediate_size",
                    "head_hidden_size", "num_emotion_classes", "text_feature_size", "audio_feature_size",
                    "vision_feature_size", "max_audio_tokens", "max_text_tokens", "max_vision_tokens",
                    "text_kernel_size", "vision_kernel_size", "text_encoder_layers", "audio_encoder_layers")
        limits = {"num_hidden_layers": 256, "layer_repeats": 256, "text_encoder_layers": 256,  # absurd sizes: refused
                  "audio_encoder_layers": 256, "num_attention_heads": 1024}  # before any allocation or long loop
        problems = [f"{name} must be an integer in [1, {limits.get(name, 2**16)}], got {getattr(self, name)}"
                    for name in positive if not 1 <= getattr(self, name) <= limits.get(name, 2**16)]
        problems += [f"{name} must lie in [0, 1), got {getattr(self, name)}" for name in (
            "input_dropout", "attention_dropout", "relu_dropout", "residual_dropout", "embedding_dropout")
            if not 0.0 <= getattr(self, name) < 1.0]
        problems += [f"{name}={getattr(self, name)!r}; expected one of {choices}" for name, choices in (
            ("encoder_style", ENCODER_STYLES), ("initialization", INITIALIZATIONS), ("attention_mode", ATTENTION_MODES),
            ("fusion", FUSION_MODES)) if getattr(self, name) not in choices]
        problems += [f"{name} must be odd ('same' padding), got {getattr(self, name)}"
                     for name in ("text_kernel_size", "vision_kernel_size") if getattr(self, name) % 2 != 1]
        if self.num_attention_heads >= 1 and self.hidden_size % self.num_attention_heads != 0:
            problems.append(f"hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                            f"({self.num_attention_heads})")
        if not len(self.audio_kernel_sizes) == len(self.audio_strides) == len(self.audio_paddings) >= 1:
            problems.append("audio_kernel_sizes, audio_strides and audio_paddings must be non-empty and of equal "
                            f"length, got {self.audio_kernel_sizes}, {self.audio_strides}, {self.audio_paddings}")
        if not 0.0 <= self.regression_loss_weight <= 1.0:
            problems.append(f"regression_loss_weight (lambda_1) must lie in [0, 1], got {self.regression_loss_weight}")
        if problems:
            raise ValueError(f"SemiIINConfig: {problems[0]}.")


__all__ = ["SemiIINConfig"]
