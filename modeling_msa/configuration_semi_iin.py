"""Configuration of Semi-IIN (arXiv 2412.09784)."""

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from .msa_utils import check_config_keys

ATTENTION_MODES = ("intra_inter", "global")
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
        attention_dropout / relu_dropout / residual_dropout / embedding_dropout: Transformer dropouts.
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
    """

    model_type = "semi_iin"
    keys_to_ignore_at_inference = ["gate_values", "pooled_output"]

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
    embedding_dropout: float | int = 0.0
    text_kernel_size: int = 3
    vision_kernel_size: int = 3
    audio_kernel_sizes: list[int] | tuple[int, ...] = (4, 4)
    audio_strides: list[int] | tuple[int, ...] = (2, 4)
    audio_paddings: list[int] | tuple[int, ...] = (1, 1)
    max_audio_tokens: int = 100
    max_text_tokens: int = 100
    max_vision_tokens: int = 512
    attention_mode: str = "intra_inter"
    fusion: str = "gate"
    head_hidden_size: int = 64
    num_emotion_classes: int = 7
    regression_loss_weight: float | int = 0.6
    pseudo_label_loss_weight: float | int = 0.2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-5

    def __post_init__(self, **kwargs):
        check_config_keys(self, kwargs)
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Checked by `@strict` at init and save time."""
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"SemiIINConfig: hidden_size ({self.hidden_size}) must be a multiple of "
                f"num_attention_heads ({self.num_attention_heads})."
            )
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
        for name in ("text_kernel_size", "vision_kernel_size"):
            if getattr(self, name) % 2 != 1:
                raise ValueError(f"SemiIINConfig: {name} must be odd ('same' padding), got {getattr(self, name)}.")


__all__ = ["SemiIINConfig"]
