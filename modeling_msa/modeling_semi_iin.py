"""Semi-IIN: Semi-supervised Intra-inter modal Interaction learning Network (arXiv 2412.09784).

Token sequence Z = [val; cls; audio; text; vision]. Two masked-attention branches read it:
IntraMA (a modality token sees the special tokens and its own modality) and InterMA (a modality token
sees the special tokens and the other modalities). A sigmoid gate mixes the two branches at the val
position (regression head) and at the cls position (7-class head).
"""

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput, can_return_tuple

from .configuration_semi_iin import SemiIINConfig
from .modeling_encoders import (
    RAW_INPUT_NAMES,
    FrozenEncodersMixin,
    build_encoder,
    encode_raw_inputs,
)
from .msa_utils import (
    MODALITIES,
    AutoMapMixin,
    InputValueChecks,
    check_feature_shapes,
    conv_output_lengths,
    intensity_to_class,
    lengths_from_mask,
    prefix_mask,
    should_check_input_values,
)

NUM_SPECIAL_TOKENS = 2  # val (regression) and cls (sentiment class)
# The token groups of the sequence, in order: the special tokens, then one group per modality.
TOKEN_GROUPS = ("special", "audio", "text", "vision")
SEQUENCE_MODALITIES = TOKEN_GROUPS[1:]
BRANCHES = {"intra_inter": ("intra", "inter"), "global": ("global",)}


def may_attend(branch: str, query_group: str, key_group: str) -> bool:
    """The one definition of Semi-IIN's interaction masks, on token groups. With S = {val, cls}:
    - IntraMA: a modality token sees S and its own modality; InterMA: S and the other modalities;
    - S sees every modality token in both (never S itself); "global" (the ablation) sees everything.
    Every mask the model uses (dense, SDPA, flex `BlockMask`) is derived from it by [`interaction_mask_function`]."""
    if branch == "global":
        return True
    if "special" in (query_group, key_group):
        return not query_group == key_group == "special"
    same_modality = query_group == key_group
    return same_modality if branch == "intra" else not same_modality


def token_group_ids(sizes: tuple[int, int, int], device: torch.device | str | None = None) -> torch.Tensor:
    """The token group (index into `TOKEN_GROUPS`) of each position, for `sizes` audio/text/vision tokens."""
    counts = (NUM_SPECIAL_TOKENS, *sizes)
    return torch.cat([torch.full((size,), group, device=device) for group, size in enumerate(counts)])


def interaction_mask_function(branch: str, group_ids: torch.Tensor) -> Callable:
    """`may_attend` as a mask function of transformers' masking utilities, `(batch, head, query, key) -> bool`, on
    the positions of a sequence whose token groups are `group_ids` ([`token_group_ids`])."""
    table = torch.tensor([[may_attend(branch, query, key) for key in TOKEN_GROUPS] for query in TOKEN_GROUPS],
                         device=group_ids.device)

    def mask_function(batch_idx, head_idx, q_idx, kv_idx):
        return table[group_ids[q_idx], group_ids[kv_idx]]

    return mask_function


def build_interaction_masks(audio_len: int, text_len: int, vision_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean "may attend" matrices `(intra, inter)` of shape [T, T], T = 2 + audio_len + text_len + vision_len
    (rows are queries, columns keys, token order [val, cls, audio, text, vision])."""
    group_ids = token_group_ids((audio_len, text_len, vision_len))
    positions = torch.arange(len(group_ids))
    return tuple(interaction_mask_function(branch, group_ids)(None, None, positions[:, None], positions[None, :])
                 for branch in ("intra", "inter"))


def sinusoidal_positions(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """fairseq's (and MulT's) sinusoidal table at `positions` (>= 1; row 0 is its padding row): [len(positions), dim],
    sines then cosines, frequencies exp(-i * log(10000) / (dim / 2 - 1))."""
    half = dim // 2
    frequencies = torch.exp(torch.arange(half, device=positions.device, dtype=torch.float32)
                            * -(math.log(10000) / (half - 1)))
    angles = positions.to(torch.float32)[:, None] * frequencies[None]
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    return F.pad(table, (0, dim % 2))


@dataclass
class SemiIINModelOutput(ModelOutput):
    """Outputs of [`SemiIINModel`].

    pooled_output: Fused val/cls states fed to the heads, [B, 2, hidden].
    gate_values: Gate G at the val and cls positions, [B, 2, hidden] (None unless fusion == "gate").
    hidden_states: With `output_hidden_states=True`, per branch ((IntraMA, InterMA), or (global,) for the global
        ablation): the input of every layer call ([B, T, hidden]) followed by the branch's final token states.
    attentions: With `output_attentions=True` (eager attention), per branch: the attention weights of every layer call,
        [B, heads, T, T].
    """

    pooled_output: torch.Tensor | None = None
    gate_values: torch.Tensor | None = None
    hidden_states: tuple[tuple[torch.Tensor, ...], ...] | None = None
    attentions: tuple[tuple[torch.Tensor, ...], ...] | None = None


@dataclass
class SemiIINOutput(ModelOutput):
    """Outputs of [`SemiIINForSentimentAnalysis`]: `loss` (supervised and pseudo-label, when labels are given),
    `logits` (sentiment intensity, [B]), `emotion_logits` ([B, num_emotion_classes]) and those of
    [`SemiIINModelOutput`]."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    emotion_logits: torch.Tensor | None = None
    gate_values: torch.Tensor | None = None
    pooled_output: torch.Tensor | None = None
    hidden_states: tuple[tuple[torch.Tensor, ...], ...] | None = None
    attentions: tuple[tuple[torch.Tensor, ...], ...] | None = None


class SemiIINFeatureProjection(nn.Module):
    """Input dropout and a stack of bias-free `nn.Conv1d` layers; frames past each sample's length are zeroed before
    every convolution so that padding never changes the real outputs."""

    def __init__(self, config: SemiIINConfig, in_size: int, kernel_sizes, strides, paddings):
        super().__init__()
        self.dropout = nn.Dropout(config.input_dropout)
        channels = [in_size] + [config.hidden_size] * len(kernel_sizes)
        self.convs = nn.ModuleList(
            nn.Conv1d(channels[i], channels[i + 1], kernel_size=k, stride=s, padding=p, bias=False)
            for i, (k, s, p) in enumerate(zip(kernel_sizes, strides, paddings))
        )

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Real output tokens per sample for `lengths` real input frames."""
        for conv in self.convs:
            lengths = conv_output_lengths(lengths, conv.kernel_size[0], conv.stride[0], conv.padding[0])
        return lengths

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """features: [B, L, C] frames, lengths: [B] real frames. Returns [B, L_out, hidden]."""
        hidden_states = self.dropout(features.to(self.convs[0].weight.dtype)).transpose(1, 2)  # [B, C, L]
        for conv in self.convs:
            short = conv.kernel_size[0] - 2 * conv.padding[0] - hidden_states.shape[-1]  # fewer frames than the kernel:
            hidden_states = F.pad(hidden_states, (0, short)) if short > 0 else hidden_states  # one output
            padding = ~prefix_mask(lengths, hidden_states.shape[-1])
            hidden_states = conv(hidden_states.masked_fill(padding[:, None, :], 0.0))
            lengths = conv_output_lengths(lengths, conv.kernel_size[0], conv.stride[0], conv.padding[0])
        return hidden_states.transpose(1, 2)


class SemiIINEmbeddings(nn.Module):
    """Tokens of the sequence [val; cls; audio; text; vision]: per-modality Conv1d projections plus modality type
    embeddings, the learned val/cls tokens, and position embeddings in fixed per-modality slots (as the official
    code's 2 + 100 + 100 + 50 table), so padding shifts nothing."""

    def __init__(self, config: SemiIINConfig):
        super().__init__()
        self.config = config
        text_kernel, vision_kernel = config.text_kernel_size, config.vision_kernel_size  # stride 1, "same" padding
        self.text_projection = SemiIINFeatureProjection(config, config.text_feature_size, [text_kernel], [1],
                                                        [text_kernel // 2])
        self.audio_projection = SemiIINFeatureProjection(config, config.audio_feature_size, config.audio_kernel_sizes,
                                                         config.audio_strides, config.audio_paddings)
        self.vision_projection = SemiIINFeatureProjection(config, config.vision_feature_size, [vision_kernel], [1],
                                                          [vision_kernel // 2])
        self.modality_type_embeddings = nn.Embedding(len(SEQUENCE_MODALITIES), config.hidden_size)
        self.special_tokens = nn.Embedding(NUM_SPECIAL_TOKENS, config.hidden_size)
        self.token_position_embeddings = (
            nn.Embedding(NUM_SPECIAL_TOKENS + sum(self.max_tokens.values()), config.hidden_size)
            if config.uses_position_embeddings else None
        )
        # "mult" applies the embedding dropout inside each encoder application instead.
        self.dropout = nn.Dropout(config.embedding_dropout if config.encoder_style == "pre_ln" else 0.0)

    @property
    def max_tokens(self) -> dict[str, int]:
        """Position slots per modality, in sequence order."""
        return {name: getattr(self.config, f"max_{name}_tokens") for name in SEQUENCE_MODALITIES}

    def projection(self, modality: str) -> SemiIINFeatureProjection:
        return getattr(self, f"{modality}_projection")

    def token_lengths(self, lengths: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Real audio/text/vision tokens per sample after the projections."""
        return tuple(self.projection(name).output_lengths(lengths[name]) for name in SEQUENCE_MODALITIES)

    def position_ids(self, sizes: tuple[int, ...], device) -> torch.Tensor:
        starts = itertools.accumulate((NUM_SPECIAL_TOKENS, *self.max_tokens.values()))
        return torch.cat([torch.arange(NUM_SPECIAL_TOKENS, device=device)]
                         + [start + torch.arange(size, device=device) for start, size in zip(starts, sizes)])

    def forward(self, features: dict[str, torch.Tensor],
                lengths: dict[str, torch.Tensor]) -> tuple[torch.Tensor, tuple[int, ...], torch.Tensor]:
        """features / lengths: per modality [B, frames, D] and real frames [B]. Returns the tokens [B, T, hidden],
        the padded audio/text/vision token counts and the tokens' position slots [T]."""
        tokens = [self.projection(name)(features[name], lengths[name]) for name in SEQUENCE_MODALITIES]
        for name, part in zip(SEQUENCE_MODALITIES, tokens):
            if part.shape[1] > self.max_tokens[name]:
                raise ValueError(
                    f"{name}_features give {part.shape[1]} tokens but max_{name}_tokens={self.max_tokens[name]}: "
                    f"truncate the input (data collator `max_{name}_length`) or build the model with a larger "
                    f"max_{name}_tokens."
                )
        type_embeddings = self.modality_type_embeddings.weight
        batch = tokens[0].shape[0]
        embeddings = torch.cat([self.special_tokens.weight.unsqueeze(0).expand(batch, -1, -1)]
                               + [part + type_embeddings[i] for i, part in enumerate(tokens)], dim=1)
        sizes = tuple(part.shape[1] for part in tokens)
        position_ids = self.position_ids(sizes, embeddings.device)
        if self.token_position_embeddings is not None:
            embeddings = embeddings + self.token_position_embeddings(position_ids)
        return self.dropout(embeddings), sizes, position_ids


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


class SemiIINAttention(nn.Module):
    """Multi-head attention through the attention function of `config._attn_implementation` ("sdpa" by default,
    "eager", "flex_attention"). Keys and values come from `key_value_states` when given."""

    def __init__(self, config: SemiIINConfig):
        super().__init__()
        self.config = config
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.dropout = config.attention_dropout
        self.is_causal = False
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                key_value_states: torch.Tensor | None = None, **kwargs) -> tuple[torch.Tensor, torch.Tensor | None]:
        input_shape = hidden_states.shape[:-1]
        current_states = hidden_states if key_value_states is None else key_value_states
        shape = (*input_shape, -1, self.head_dim)
        query = self.q_proj(hidden_states).view(shape).transpose(1, 2)
        key = self.k_proj(current_states).view(shape).transpose(1, 2)
        value = self.v_proj(current_states).view(shape).transpose(1, 2)
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation,
                                                                              eager_attention_forward)
        attn_output, attn_weights = attention_interface(
            self, query, key, value, attention_mask,
            dropout=self.dropout if self.training else 0.0, scaling=self.scaling, **kwargs,
        )
        return self.out_proj(attn_output.reshape(*input_shape, -1).contiguous()), attn_weights


class SemiIINFeedForward(nn.Module):
    def __init__(self, config: SemiIINConfig):
        super().__init__()
        self.intermediate_dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation = nn.ReLU()
        self.intermediate_dropout = nn.Dropout(config.relu_dropout)
        self.output_dense = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.intermediate_dropout(self.activation(self.intermediate_dense(hidden_states)))
        return self.output_dense(hidden_states)


class SemiIINLayer(GradientCheckpointingLayer):
    """Pre-LN transformer layer (MulT's `TransformerEncoderLayer`): attention and ReLU feed-forward, each with a
    residual. Keys and values come from `key_value_states` when given, normed by the same LayerNorm."""

    def __init__(self, config: SemiIINConfig):
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = SemiIINAttention(config)
        self.feed_forward_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = SemiIINFeedForward(config)
        self.dropout = nn.Dropout(config.residual_dropout)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                key_value_states: torch.Tensor | None = None, **kwargs) -> tuple[torch.Tensor, torch.Tensor | None]:
        if key_value_states is not None:
            key_value_states = self.attention_norm(key_value_states)
        attended, attn_weights = self.attention(self.attention_norm(hidden_states), attention_mask,
                                                key_value_states, **kwargs)
        hidden_states = hidden_states + self.dropout(attended)
        hidden_states = hidden_states + self.dropout(self.feed_forward(self.feed_forward_norm(hidden_states)))
        return hidden_states, attn_weights


class SemiIINEncoder(nn.Module):
    """One attention branch: a stack of `num_hidden_layers` layers applied `layer_repeats` times with tied weights.

    "mult" (the official code, MulT's `TransformerEncoder` applied `sharing_num` times): each application scales its
    input by sqrt(hidden), adds sinusoidal positions (optional), applies the embedding dropout (twice, for the
    query and the key/value streams, with `separate_key_value_dropout`), the layers and a final LayerNorm.
    "pre_ln": the layers applied `layer_repeats` times, then one LayerNorm."""

    def __init__(self, config: SemiIINConfig):
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(SemiIINLayer(config) for _ in range(config.num_hidden_layers))
        self.final_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.embed_scale = math.sqrt(config.hidden_size)
        self.dropout = nn.Dropout(config.embedding_dropout if config.encoder_style == "mult" else 0.0)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                positions: torch.Tensor | None = None, output_attentions: bool = False,
                output_hidden_states: bool = False) -> BaseModelOutput:
        """attention_mask: the branch's mask; positions: the [T, hidden] sinusoidal table "mult" adds (None: none)."""
        mult = self.config.encoder_style == "mult"
        all_hidden_states = () if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for _ in range(self.config.layer_repeats):
            key_value_states = None
            if mult:
                scaled = self.embed_scale * hidden_states + (0 if positions is None else positions)
                hidden_states = self.dropout(scaled)
                if self.config.separate_key_value_dropout:
                    key_value_states = self.dropout(scaled) if self.training else hidden_states
            for index, layer in enumerate(self.layers):
                if output_hidden_states:
                    all_hidden_states += (hidden_states,)
                # MulT's `layer(x, x_k, x_v)`: keys of the first layer are its own input only in eval
                shared = key_value_states is hidden_states and index == 0
                hidden_states, attn_weights = layer(hidden_states, attention_mask,
                                                    None if shared else key_value_states)
                if output_attentions:
                    all_attentions += (attn_weights,)
            if mult:
                hidden_states = self.final_norm(hidden_states)
        if not mult:
            hidden_states = self.final_norm(hidden_states)
        if output_hidden_states:
            all_hidden_states += (hidden_states,)
        return BaseModelOutput(last_hidden_state=hidden_states, hidden_states=all_hidden_states,
                               attentions=all_attentions)


class SemiIINFusion(nn.Module):
    """Mixes the IntraMA and InterMA states at one position. gate: G = sigmoid(W1 z_intra + W2 z_inter + b),
    z = G * z_inter + (1 - G) * z_intra (paper, Eq. 16-17); add; concat: Linear([z_intra; z_inter]); dot: product."""

    def __init__(self, config: SemiIINConfig):
        super().__init__()
        self.mode = config.fusion
        if self.mode == "gate":
            self.intra_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
            self.inter_proj = nn.Linear(config.hidden_size, config.hidden_size)
        elif self.mode == "concat":
            self.concat_proj = nn.Linear(2 * config.hidden_size, config.hidden_size)

    def forward(self, intra: torch.Tensor, inter: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.mode == "gate":
            gate = torch.sigmoid(self.intra_proj(intra) + self.inter_proj(inter))
            return gate * inter + (1 - gate) * intra, gate
        if self.mode == "add":
            return intra + inter, None
        if self.mode == "concat":
            return self.concat_proj(torch.cat([intra, inter], dim=-1)), None
        return intra * inter, None


class SemiIINPreTrainedModel(AutoMapMixin, PreTrainedModel):
    config: SemiIINConfig
    config_class = SemiIINConfig
    base_model_prefix = "semi_iin"
    main_input_name = "text_features"
    accepts_loss_kwargs = False
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _no_split_modules = ["SemiIINLayer"]
    _auto_map_classes = {"AutoModel": "SemiIINModel",
                         "AutoModelForSequenceClassification": "SemiIINForSentimentAnalysis"}

    def _init_weights(self, module: nn.Module):
        """`config.initialization`: "official" (the official code: PyTorch's default for the convolutions, fusion and
        heads, Xavier-uniform with zero biases for the MulT attention and feed-forward, normal(0.05) type embeddings,
        truncated-normal(0.02) val/cls and positions) or "normal" (normal(`initializer_range`))."""
        if isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif self.config.initialization != "official":
            if isinstance(module, (nn.Linear, nn.Conv1d, nn.Embedding)):
                init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
                if getattr(module, "bias", None) is not None:
                    init.zeros_(module.bias)
        elif isinstance(module, nn.Linear) and module in (gains := self._mult_xavier_gains()):  # MulT's layers
            init.xavier_uniform_(module.weight, gain=gains[module])
            init.zeros_(module.bias)
        elif isinstance(module, (nn.Linear, nn.Conv1d)):  # PyTorch's default
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                bound = 1 / math.sqrt(module.weight[0].numel())
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.Embedding):
            embeddings = getattr(self, "semi_iin", self).embeddings
            if module is embeddings.modality_type_embeddings:
                init.normal_(module.weight, mean=0.0, std=0.05)
            elif module in (embeddings.special_tokens, embeddings.token_position_embeddings):  # val/cls, pos_embed
                init.trunc_normal_(module.weight, std=0.02, a=-2.0, b=2.0)  # timm's (absolute bounds)

    def _mult_xavier_gains(self) -> dict[nn.Module, float]:
        """MulT's Xavier-uniform layers (q/k/v: the bounds of its fused [3 * hidden, hidden] in_proj_weight), found by
        their parents' types: transformers initialises only the leaves of remote code (those holding parameters)."""
        gains, base, fused = {}, getattr(self, "semi_iin", self), math.sqrt(0.5)
        for part in (part for name, part in base.named_children() if name != "encoders"):
            for parent in part.modules():
                if isinstance(parent, SemiIINAttention):
                    gains.update({parent.q_proj: fused, parent.k_proj: fused, parent.v_proj: fused,
                                  parent.out_proj: 1.0})
                elif isinstance(parent, SemiIINFeedForward):
                    gains.update({parent.intermediate_dense: 1.0, parent.output_dense: 1.0})
        return gains


class SemiIINModel(FrozenEncodersMixin, SemiIINPreTrainedModel):
    """The Semi-IIN encoder (what `AutoModel` gives): embeddings, the IntraMA/InterMA branches (or the global
    ablation) and the val/cls fusion. Each modality takes precomputed frame features or, when the config bundles its
    encoder, raw inputs (`input_ids`, 16 kHz `input_values`, frames `pixel_values`). Masks: 1 real, 0 (right) padding;
    padding never changes an output. `validate_inputs` (default True) runs the data-dependent input checks
    ([`InputValueChecks`], one host sync per forward); off, a forward pass has no data-dependent host sync."""

    _keys_to_ignore_on_load_unexpected = [r"^(head_mlp|regression_head|emotion_head)\."]  # the heads' weights

    def __init__(self, config: SemiIINConfig):
        super().__init__(config)
        self.validate_inputs = True
        self.embeddings = SemiIINEmbeddings(config)
        if config.attention_mode == "intra_inter":
            self.intra_encoder = SemiIINEncoder(config)
            self.inter_encoder = SemiIINEncoder(config)
            self.val_fusion = SemiIINFusion(config)
            self.cls_fusion = SemiIINFusion(config)
        else:
            self.global_encoder = SemiIINEncoder(config)
        self.encoders = nn.ModuleDict({modality: build_encoder(getattr(config, f"{modality}_config"), modality)
                                       for modality in config.encoder_modalities})
        self.post_init()
        self._freeze_encoders_if_configured()

    def encode_inputs(self, **inputs: torch.Tensor | None) -> tuple[dict, dict]:
        """Per-modality frame features and masks ({"text": [B, N, D], ...}, masks or None): precomputed
        `*_features` as given, raw inputs run through the bundled encoders."""
        features = {name: inputs.get(f"{name}_features") for name in MODALITIES}
        masks = {name: inputs.get(f"{name}_attention_mask") for name in MODALITIES}
        encode_raw_inputs(self.encoders, features, masks, {name: inputs.get(name) for name in RAW_INPUT_NAMES},
                          self.config)
        return features, masks

    def branch_masks(self, tokens: torch.Tensor, sizes: tuple[int, ...], token_lengths: tuple[torch.Tensor, ...]):
        """Per branch, its attention mask in the form `config._attn_implementation` takes: `may_attend` and the
        padding keys, through `create_bidirectional_mask` (a flex `BlockMask` skips the blocked blocks)."""
        special = torch.ones(tokens.shape[0], NUM_SPECIAL_TOKENS, dtype=torch.bool, device=tokens.device)
        padding_mask = torch.cat([special] + [prefix_mask(n, size) for n, size in zip(token_lengths, sizes)], dim=1)
        group_ids = token_group_ids(sizes, tokens.device)
        return {
            branch: create_bidirectional_mask(
                config=self.config, inputs_embeds=tokens, attention_mask=padding_mask,
                and_mask_function=None if branch == "global" else interaction_mask_function(branch, group_ids),
                allow_is_bidirectional_skip=False,  # the skip test reads the mask on the host: a sync per forward
            )
            for branch in BRANCHES[self.config.attention_mode]
        }

    @can_return_tuple
    def forward(
        self,
        text_features: torch.Tensor | None = None,
        audio_features: torch.Tensor | None = None,
        vision_features: torch.Tensor | None = None,
        text_attention_mask: torch.Tensor | None = None,
        audio_attention_mask: torch.Tensor | None = None,
        vision_attention_mask: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        waveform_attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        frame_attention_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
    ) -> SemiIINModelOutput:
        r"""
        text_features / audio_features / vision_features: [B, N, Dt], [B, L, Da], [B, M, Dv] frame features.
        *_attention_mask: [B, len] with 1 for real frames and 0 for (right) padding; None = all real.
        input_ids / attention_mask / token_type_ids: Tokenized text, for a bundled text encoder.
        input_values / waveform_attention_mask: 16 kHz waveforms [B, S] and their mask, for a bundled audio encoder.
        pixel_values / frame_attention_mask: Frames [B, F, C, H, W] and their mask, for a bundled vision encoder.
        output_attentions: Return every layer's attention weights (needs `attn_implementation="eager"`).
        output_hidden_states: Return the token states of the branches (`hidden_states`).
        """
        config = self.config
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        if output_attentions and config._attn_implementation != "eager":  # the other kernels return no weights
            raise ValueError(f'output_attentions=True needs attn_implementation="eager", not '
                             f"{config._attn_implementation!r}.")
        features, masks = self.encode_inputs(
            text_features=text_features, audio_features=audio_features, vision_features=vision_features,
            text_attention_mask=text_attention_mask, audio_attention_mask=audio_attention_mask,
            vision_attention_mask=vision_attention_mask, input_ids=input_ids, attention_mask=attention_mask,
            token_type_ids=token_type_ids, input_values=input_values, waveform_attention_mask=waveform_attention_mask,
            pixel_values=pixel_values, frame_attention_mask=frame_attention_mask,
        )
        check_feature_shapes(features, masks, {name: getattr(config, f"{name}_feature_size") for name in MODALITIES})
        lengths = {name: lengths_from_mask(masks[name], features[name]) for name in MODALITIES}
        token_lengths = self.embeddings.token_lengths(lengths)
        if should_check_input_values(self):
            checks = InputValueChecks().features(features, masks)
            checks.fail_if((sum(token_lengths) == 0).any(),
                           "A sample has no real frame in any modality (all attention masks are 0 after projection).")
            checks.raise_if_failed()

        tokens, sizes, position_ids = self.embeddings(features, lengths)
        branch_masks = self.branch_masks(tokens, sizes, token_lengths)
        positions = None  # MulT's sinusoidal positions of the tokens' slots (slot + 1), shared by the branches
        if config.encoder_style == "mult" and config.sinusoidal_positions:
            positions = sinusoidal_positions(position_ids + 1, config.hidden_size).to(tokens.dtype)
        encoders = {"global": self.global_encoder} if config.attention_mode == "global" else {
            "intra": self.intra_encoder, "inter": self.inter_encoder}
        branches = [encoder(tokens, branch_masks[branch], positions, output_attentions, output_hidden_states)
                    for branch, encoder in encoders.items()]

        gate_values = None
        if config.attention_mode == "global":
            pooled = branches[0].last_hidden_state[:, :NUM_SPECIAL_TOKENS]
        else:
            intra, inter = (branch.last_hidden_state for branch in branches)
            val, val_gate = self.val_fusion(intra[:, 0], inter[:, 0])
            cls, cls_gate = self.cls_fusion(intra[:, 1], inter[:, 1])
            pooled = torch.stack([val, cls], dim=1)
            if val_gate is not None:
                gate_values = torch.stack([val_gate, cls_gate], dim=1)
        return SemiIINModelOutput(
            pooled_output=pooled, gate_values=gate_values,
            hidden_states=tuple(b.hidden_states for b in branches) if output_hidden_states else None,
            attentions=tuple(b.attentions for b in branches) if output_attentions else None,
        )


class SemiIINForSentimentAnalysis(FrozenEncodersMixin, SemiIINPreTrainedModel):
    """Semi-IIN with its heads: [`SemiIINModel`], a shared MLP, a regression head (intensity, at val) and a
    sentiment-class head (at cls), and the paper's loss. Takes the inputs of [`SemiIINModel`] plus labels."""

    def __init__(self, config: SemiIINConfig):
        super().__init__(config)
        self.semi_iin = SemiIINModel(config)
        self.head_mlp = nn.Sequential(nn.Linear(config.hidden_size, config.hidden_size),
                                      nn.Linear(config.hidden_size, config.head_hidden_size))
        self.regression_head = nn.Linear(config.head_hidden_size, 1)
        self.emotion_head = nn.Linear(config.head_hidden_size, config.num_emotion_classes)
        self.post_init()
        self._freeze_encoders_if_configured()

    @property
    def encoders(self) -> nn.ModuleDict:  # the bundled encoders
        return self.semi_iin.encoders

    @property
    def validate_inputs(self) -> bool:  # see [`SemiIINModel`]
        return self.semi_iin.validate_inputs

    @validate_inputs.setter
    def validate_inputs(self, value: bool) -> None:
        self.semi_iin.validate_inputs = value

    @can_return_tuple
    def forward(self, labels: torch.Tensor | None = None, emotion_labels: torch.Tensor | None = None,
                pseudo_label_mask: torch.Tensor | None = None, **model_inputs) -> SemiIINOutput:
        r"""
        model_inputs: The inputs of [`SemiIINModel.forward`] (features, masks, raw inputs, output_* flags).
        labels: [B] float sentiment intensities in [-3, 3].
        emotion_labels: [B] class ids; derived from `labels` when omitted.
        pseudo_label_mask: [B] bool, True for pseudo-labelled samples: they add only
            `pseudo_label_loss_weight * CE(emotion_logits, emotion_labels)` (no regression loss).
        """
        base = self.semi_iin(**model_inputs, return_dict=True)
        head_states = self.head_mlp(base.pooled_output)
        logits = self.regression_head(head_states[:, 0]).squeeze(-1)
        emotion_logits = self.emotion_head(head_states[:, 1])
        loss = None
        if labels is not None or emotion_labels is not None:
            loss = self.compute_loss(logits, emotion_logits, labels, emotion_labels, pseudo_label_mask)
        return SemiIINOutput(
            loss=loss, logits=logits, emotion_logits=emotion_logits, gate_values=base.gate_values,
            pooled_output=base.pooled_output, hidden_states=base.hidden_states, attentions=base.attentions,
        )

    def compute_loss(self, logits: torch.Tensor, emotion_logits: torch.Tensor, labels: torch.Tensor | None,
                     emotion_labels: torch.Tensor | None, pseudo_label_mask: torch.Tensor | None) -> torch.Tensor:
        """lambda_1 * MSE + (1 - lambda_1) * CE on labelled samples, + lambda_2 * CE on pseudo-labelled ones.

        Written with per-sample weights instead of boolean indexing, so it needs no host sync; a term whose samples
        are absent from the batch contributes exactly 0 (and no gradient)."""
        config = self.config
        if emotion_labels is None:
            if labels is None:
                raise ValueError("compute_loss needs `labels` or `emotion_labels`.")
            emotion_labels = intensity_to_class(labels, config.num_emotion_classes)
        emotion_labels = emotion_labels.to(device=logits.device, dtype=torch.long)
        pseudo = torch.zeros_like(logits, dtype=torch.bool) if pseudo_label_mask is None else \
            pseudo_label_mask.to(device=logits.device, dtype=torch.bool)
        real = (~pseudo).to(logits.dtype)
        if labels is None:  # only emotion labels: valid when every sample is pseudo-labelled (one check, rare path)
            if pseudo_label_mask is None or not bool(pseudo.all()):
                raise ValueError("`labels` (float intensities) are required for samples that are not pseudo-labelled.")
            labels = torch.zeros_like(logits)
        labels = labels.to(device=logits.device, dtype=logits.dtype)
        cross_entropy = F.cross_entropy(emotion_logits, emotion_labels, reduction="none")
        squared_error = (logits - torch.where(pseudo, 0.0, labels)) ** 2
        weight = config.regression_loss_weight
        loss = weight * _masked_mean(squared_error, real) + (1 - weight) * _masked_mean(cross_entropy, real)
        return loss + config.pseudo_label_loss_weight * _masked_mean(cross_entropy, pseudo.to(logits.dtype))


def _masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean of `values` over the samples whose 0/1 `weights` are 1; exactly 0 (and no gradient) when there are none."""
    return (values * weights).sum() / weights.sum().clamp(min=1)


__all__ = ["SemiIINEmbeddings", "SemiIINForSentimentAnalysis", "SemiIINModel", "SemiIINModelOutput", "SemiIINOutput",
           "SemiIINPreTrainedModel", "build_interaction_masks", "may_attend"]
