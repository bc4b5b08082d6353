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
# Folders saved before these fields existed ran today's "pre_ln" encoder with learned positions in every mode.
LEGACY_DEFAULTS = {"encoder_style": "pre_ln", "global_position_embeddings": True, "initialization": "normal"}
# The encoders of the paper's features; FabNet's weights are not on the Hub, so vision defaults to a random
# FabNet-style CNN (`FaceCNNConfig`) to train or to replace with any transformers image backbone.
PAPER_ENCODERS = {"text": "FacebookAI/roberta-large", "audio": "facebook/hubert-large-ll60k", "vision": "face_cnn"}
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
        fast_cpu_dropout: In CPU training, draw every dropout mask (attention weights included, then computed as
            SDPA's math kernel does) from random words (`msa_utils.word_dropout`, 2-9x faster than PyTorch's
            `bernoulli_` per call; the same distribution with each rate rounded to a multiple of 2**-16, exact for
            multiples of 2**-8; with numba, compiled kernels: `dropout_kernels.py`) and fuse the feed-forward ReLU
            into its dropout. False: PyTorch's dropout everywhere. GPUs always use PyTorch's (fast there); compiled
            CPU graphs call the same masks as a custom op. An implementation choice: the papers do not say how
            dropout is sampled.
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
        attention_mode: "intra_inter" (IntraMA + InterMA branches) or "global" (one unmasked branch, the
            ablation baseline).
        fusion: How the two branches are mixed at val/cls: "gate" (paper), "add", "concat" or "dot".
        head_hidden_size: Output width of the shared MLP before the two heads.
        num_emotion_classes: Classes of the sentiment-class head (7 for [-3, 3] intensities).
        regression_loss_weight: lambda_1 of `lambda_1 * MSE + (1 - lambda_1) * CE` on labelled samples.
        pseudo_label_loss_weight: lambda_2 of the CE term on pseudo-labelled samples (self-training).
        initializer_range: Std of the normal initialisation of linear/embedding weights.
        text_config / audio_config / vision_config: Optional bundled encoders (sub-configs with a `model_type`):
            a RoBERTa/BERT-family text encoder (fed `input_ids`), a HuBERT/wav2vec2-family audio encoder (fed
            16 kHz `input_values`) and a per-frame image encoder (fed `pixel_values` [B, F, C, H, W]; the
            FabNet-style `msa_face_cnn` or any transformers image backbone). A modality without one takes
            precomputed features; with one, its `*_feature_size` is the encoder's output width.
            See [`SemiIINConfig.from_encoders`].
        text_encoder_layers / audio_encoder_layers: How many last hidden layers of the text / audio encoder are
            averaged into the features (paper: last 4 RoBERTa layers).
        freeze_encoders: Keep the bundled encoders' weights fixed (no gradients); for LoRA leave it False and
            let peft freeze them.
    """

    model_type = "semi_iin"
    keys_to_ignore_at_inference = ["gate_values", "pooled_output"]
    # the bundled encoders' sub-configs (None: precomputed features) and the model_type a dict without one gets
    encoder_model_types = {
        "text_config": "roberta", "audio_config": "hubert", "vision_config": FaceCNNConfig.model_type,
    }
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
    fast_cpu_dropout: bool = True
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
        """A saved config; one written before `encoder_style` existed keeps the encoder it was trained with."""
        if config_dict.get("model_type", cls.model_type) == cls.model_type and "encoder_style" not in config_dict:
            config_dict = {**LEGACY_DEFAULTS, **config_dict}
        return super().from_dict(config_dict, **kwargs)

    @property
    def uses_position_embeddings(self) -> bool:
        """Whether the learned position embeddings are added (always, except the official "global" ablation)."""
        return self.attention_mode != "global" or self.global_position_embeddings

    @property
    def encoder_modalities(self) -> tuple[str, ...]:
        """Modalities with a bundled encoder (raw inputs); the others take precomputed features."""
        return bundled_encoder_modalities(self, MODALITIES)

    @classmethod
    def from_encoders(
        cls,
        text: str | PreTrainedConfig | None = PAPER_ENCODERS["text"],
        audio: str | PreTrainedConfig | None = PAPER_ENCODERS["audio"],
        vision: str | PreTrainedConfig | None = PAPER_ENCODERS["vision"],
        **kwargs,
    ) -> "SemiIINConfig":
        """A config bundling encoders given as Hub ids / folders (their configs are read), configs, or None
        (precomputed features). `vision="face_cnn"` is the FabNet-style CNN; defaults are the paper's encoders."""
        sub_configs = {}
        for modality, encoder in (("text", text), ("audio", audio), ("vision", vision)):
            if encoder == "face_cnn":
                encoder = FaceCNNConfig()
            elif isinstance(encoder, str):
                encoder = AutoConfig.from_pretrained(encoder)
            sub_configs[f"{modality}_config"] = encoder
        return cls(**sub_configs, **kwargs)

    def validate_architecture(self):
        """Checked by `@strict` at init and save time."""
        for name in ("hidden_size", "num_attention_heads", "num_hidden_layers", "layer_repeats", "intermediate_size",
                     "head_hidden_size", "num_emotion_classes", "text_feature_size", "audio_feature_size",
                     "vision_feature_size", "max_audio_tokens", "max_text_tokens", "max_vision_tokens",
                     "text_kernel_size", "vision_kernel_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"SemiIINConfig: {name} must be a positive integer, got {getattr(self, name)}.")
        for name in ("input_dropout", "attention_dropout", "relu_dropout", "residual_dropout", "embedding_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"SemiIINConfig: {name} must lie in [0, 1), got {getattr(self, name)}.")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"SemiIINConfig: hidden_size ({self.hidden_size}) must be a multiple of "
                f"num_attention_heads ({self.num_attention_heads})."
            )
        if self.encoder_style not in ENCODER_STYLES:
            raise ValueError(f"SemiIINConfig: encoder_style={self.encoder_style!r}; expected one of {ENCODER_STYLES}.")
        if self.initialization not in INITIALIZATIONS:
            raise ValueError(f"SemiIINConfig: initialization={self.initialization!r}; expected one of {INITIALIZATIONS}.")
        if self.attention_mode not in ATTENTION_MODES:
            raise ValueError(f"SemiIINConfig: attention_mode={self.attention_mode!r}; expected one of {ATTENTION_MODES}.")
        if self.fusion not in FUSION_MODES:
            raise ValueError(f"SemiIINConfig: fusion={self.fusion!r}; expected one of {FUSION_MODES}.")
        if not (len(self.audio_kernel_sizes) == len(self.audio_strides) == len(self.audio_paddings) >= 1):
            raise ValueError(
                "SemiIINConfig: audio_kernel_sizes, audio_strides and audio_paddings must be non-empty and "
                f"of equal length, got {self.audio_kernel_sizes}, {self.audio_strides}, {self.audio_paddings}."
            )
        if not 0.0 <= self.regression_loss_weight <= 1.0:
            raise ValueError(
                f"SemiIINConfig: regression_loss_weight (lambda_1) must lie in [0, 1], got {self.regression_loss_weight}."
            )
        for name in ("text_encoder_layers", "audio_encoder_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"SemiIINConfig: {name} must be at least 1, got {getattr(self, name)}.")
        for name in ("text_kernel_size", "vision_kernel_size"):
            if getattr(self, name) % 2 != 1:
                raise ValueError(f"SemiIINConfig: {name} must be odd ('same' padding), got {getattr(self, name)}.")


__all__ = ["PAPER_ENCODERS", "SemiIINConfig"]
