"""Semi-IIN: Semi-supervised Intra-inter modal Interaction learning Network (arXiv 2412.09784).

Token sequence Z = [val; cls; audio; text; vision]. Two masked-attention branches read it:
IntraMA (a modality token sees the special tokens and its own modality) and InterMA (a modality token
sees the special tokens and the other modalities). A sigmoid gate mixes the two branches at the val
position (regression head) and at the cls position (7-class head).
"""

import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_semi_iin import SemiIINConfig
from .modeling_encoders import (
    RAW_INPUT_NAMES,
    FrozenEncodersMixin,
    build_encoder,
    encode_raw_inputs,
    load_encoder_weights,
)
from .msa_utils import (
    MODALITIES,
    AutoMapMixin,
    Dropout,
    InputValueChecks,
    check_feature_shapes,
    conv_output_lengths,
    drop_attention_weights,
    intensity_to_class,
    lengths_from_mask,
    prefix_mask,
    samples_words,
    should_check_input_values,
    word_dropout_scale,
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
    The dense [T, T] masks and the block-sparse attention plans are both derived from it."""
    if branch == "global":
        return True
    if "special" in (query_group, key_group):
        return not query_group == key_group == "special"
    same_modality = query_group == key_group
    return same_modality if branch == "intra" else not same_modality


def visible_key_groups(branch: str) -> list[list[int]]:
    """For each query group (index into `TOKEN_GROUPS`), the key groups `may_attend` allows."""
    return [[k for k, key in enumerate(TOKEN_GROUPS) if may_attend(branch, query, key)] for query in TOKEN_GROUPS]


def build_interaction_masks(audio_len: int, text_len: int, vision_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean "may attend" matrices `(intra, inter)` of shape [T, T], T = 2 + audio_len + text_len + vision_len
    (rows are queries, columns keys, token order [val, cls, audio, text, vision]), from `may_attend`."""
    sizes = torch.tensor((NUM_SPECIAL_TOKENS, audio_len, text_len, vision_len))
    group = torch.repeat_interleave(torch.arange(len(TOKEN_GROUPS)), sizes)
    masks = []
    for branch in ("intra", "inter"):
        table = torch.tensor([[may_attend(branch, q, k) for k in TOKEN_GROUPS] for q in TOKEN_GROUPS])
        masks.append(table[group[:, None], group[None, :]])
    return masks[0], masks[1]


@dataclass
class AttentionPlan:
    """Block-sparse attention over the sequence split into its non-empty token groups (`piece_sizes`, in order):
    for each query group (one or more adjacent pieces, in order), the key pieces it may see and the additive
    padding mask of those keys ([B, 1, 1, keys]: 0 real, -inf padding). Pieces are taken with `split` and joined
    with `cat`, whose gradients are plain concatenations and views (slicing would zero-fill a full-size gradient
    for every slice in backward)."""

    piece_sizes: list[int]
    groups: list[tuple[tuple[int, ...], tuple[int, ...], torch.Tensor]]


def build_attention_plans(
    attention_mode: str, token_lengths: tuple[torch.Tensor, ...], sizes: tuple[int, ...], dtype: torch.dtype
) -> dict[str, AttentionPlan]:
    """Per branch of `attention_mode`, the query groups and the keys `may_attend` lets each see, with padding
    keys masked. Real tokens get exactly the dense attention masked with `build_interaction_masks`; the blocked
    blocks are never computed. Padding queries see real keys (never an empty row); their outputs reach no real
    token. `token_lengths` are the real audio/text/vision tokens per sample, `sizes` the padded ones."""
    batch, device = token_lengths[0].shape[0], token_lengths[0].device
    special = torch.ones(batch, NUM_SPECIAL_TOKENS, dtype=torch.bool, device=device)
    token_valid = torch.cat([special] + [prefix_mask(n, size) for n, size in zip(token_lengths, sizes)], dim=1)
    additive = torch.zeros(token_valid.shape, dtype=dtype, device=device).masked_fill_(~token_valid, float("-inf"))
    group_sizes = (NUM_SPECIAL_TOKENS, *sizes)
    present = [g for g, size in enumerate(group_sizes) if size > 0]
    piece = {g: i for i, g in enumerate(present)}  # token group -> index among the non-empty pieces
    key_masks = additive.split([group_sizes[g] for g in present], dim=1)
    plans = {}
    for branch in BRANCHES[attention_mode]:
        groups = [((piece[query],), tuple(piece[k] for k in visible if k in piece))
                  for query, visible in enumerate(visible_key_groups(branch)) if query in piece]
        plans[branch] = AttentionPlan([group_sizes[g] for g in present], [
            (query_pieces, key_pieces, torch.cat([key_masks[k] for k in key_pieces], dim=1)[:, None, None, :])
            for query_pieces, key_pieces in _merge_equal_queries(groups)
        ])
    return plans


PieceGroup = tuple[tuple[int, ...], tuple[int, ...]]  # (query pieces, key pieces)


def _merge_equal_queries(groups: list[PieceGroup]) -> list[PieceGroup]:
    """Adjacent query groups that see the same keys become one group (the global branch: one SDPA call)."""
    merged = [groups[0]]
    for query_pieces, key_pieces in groups[1:]:
        previous_query, previous_keys = merged[-1]
        if previous_keys == key_pieces:
            merged[-1] = (previous_query + query_pieces, key_pieces)
        else:
            merged.append((query_pieces, key_pieces))
    return merged


def _join(whole: torch.Tensor, pieces: tuple[torch.Tensor, ...], indices: tuple[int, ...]) -> torch.Tensor:
    """The pieces at `indices` joined along the sequence (dim 2); all of them: `whole` itself."""
    if len(indices) == len(pieces):
        return whole
    return pieces[indices[0]] if len(indices) == 1 else torch.cat([pieces[i] for i in indices], dim=2)


@dataclass
class SemiIINModelOutput(ModelOutput):
    """Outputs of [`SemiIINModel`].

    pooled_output: Fused val/cls states fed to the heads, [B, 2, hidden].
    gate_values: Gate G at the val and cls positions, [B, 2, hidden] (None unless fusion == "gate").
    branch_hidden_states: With `output_hidden_states=True`, the final token states of each branch, [B, T, hidden]:
        (IntraMA, InterMA), or (global,) for the global ablation.
    """

    pooled_output: torch.Tensor | None = None
    gate_values: torch.Tensor | None = None
    branch_hidden_states: tuple[torch.Tensor, ...] | None = None


@dataclass
class SemiIINOutput(ModelOutput):
    """Outputs of [`SemiIINForSentimentAnalysis`].

    loss: Supervised (and pseudo-label) loss, when labels are given.
    logits: Predicted sentiment intensity, [B].
    emotion_logits: Scores of the sentiment classes, [B, num_emotion_classes].
    gate_values: Gate G at the val and cls positions, [B, 2, hidden] (None unless fusion == "gate").
    pooled_output: Fused val/cls states fed to the heads, [B, 2, hidden].
    branch_hidden_states: See [`SemiIINModelOutput`].
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    emotion_logits: torch.Tensor | None = None
    gate_values: torch.Tensor | None = None
    pooled_output: torch.Tensor | None = None
    branch_hidden_states: tuple[torch.Tensor, ...] | None = None


def conv1d_frames_last(
    frames: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, frame_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """`Conv1d` (no bias; zero padding) of `frames` [B, L, C] with `weight` [O, C, k], returned as [B, L_out, O],
    without transposing the frames: frames m*stride + r (one residue r at a time, a strided view that BLAS reads
    in place) are multiplied by all the kernel taps that can meet them in one matmul, and each tap's product is
    shifted to the outputs it feeds. `frame_mask` [B, L] (1 real, 0 padding) zeroes frames, applied to the
    products (one row per frame) rather than the wider inputs. With fewer frames than the kernel the input is
    zero-extended to one output. Equal to `F.conv1d(masked frames.transpose(1, 2), ...)` up to float rounding
    (tested); for 1024-wide features 2-3x faster in training, where the transposed copy and the convolution's
    weight gradient dominated. Compiled, the frames are zero-extended to exactly the rows the outputs read
    ([`_conv1d_frames_last_compiled`]): the same sums, and no branch on the frame count that would make a dynamic-shape
    graph recompile."""
    if torch.compiler.is_compiling():
        return _conv1d_frames_last_compiled(frames, weight, stride, padding, frame_mask)
    return _conv1d_frames_last_eager(frames, weight, stride, padding, frame_mask)


def _conv1d_frames_last_eager(
    frames: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, frame_mask: torch.Tensor | None
) -> torch.Tensor:
    """[`conv1d_frames_last`] outside compiled graphs: zero frames added only where the count is not a multiple of
    the stride, products sliced to the rows that reach an output."""
    batch, length, channels = frames.shape
    out_channels, _, kernel = weight.shape
    out_length = max(length + 2 * padding - kernel, 0) // stride + 1
    rows = -(-length // stride)
    if rows * stride != length:
        frames = F.pad(frames, (0, 0, 0, rows * stride - length))
        frame_mask = None if frame_mask is None else F.pad(frame_mask, (0, rows * stride - length))
    by_residue = frames.reshape(batch, rows, stride, channels)  # a view of contiguous frames
    mask_by_residue = None if frame_mask is None else frame_mask.view(batch, rows, stride, 1).to(frames.dtype)
    output = None
    for shift, products in _tap_products(by_residue, mask_by_residue, weight, stride, padding):
        first, last = max(shift, 0), min(shift + out_length, rows)  # the rows that reach an output
        if last <= first:
            continue
        part = F.pad(products[:, first:last], (0, 0, first - shift, shift + out_length - last))
        output = part if output is None else output + part
    return frames.new_zeros(batch, out_length, out_channels) if output is None else output


def _conv1d_frames_last_compiled(
    frames: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, frame_mask: torch.Tensor | None
) -> torch.Tensor:
    """[`conv1d_frames_last`] inside a compiled graph: every size one closed formula of the frame count L. The eager
    version's branches on L (is it a multiple of the stride, which rows reach an output) become guards on L's
    residues under dynamic shapes, so each new residue recompiled the graph (minutes on a CPU, every few steps with
    variable-length batches). Here the frames are zero-extended by a fixed amount and cut to exactly the rows the
    outputs read (in training inductor writes the extension in the input dropout's kernel); zero frames add zero
    products, so the sums are the eager version's."""
    batch, length, channels = frames.shape
    out_channels, _, kernel = weight.shape
    if length + 2 * padding < kernel:  # fewer frames than the kernel: one guard, false for any real clip
        frames = F.pad(frames, (0, 0, 0, kernel - 2 * padding - length))
        frame_mask = None if frame_mask is None else F.pad(frame_mask, (0, kernel - 2 * padding - length))
        length = kernel - 2 * padding
    out_length = (length + 2 * padding - kernel) // stride + 1
    last_shift = max((kernel - 1 - padding) // stride, 0)  # output t reads row t + shift, shift <= last_shift
    rows = out_length + last_shift  # the rows any output reads
    # rows * stride <= length + 2 * padding - kernel + stride * (1 + last_shift): enough zero frames for any L
    extension = (last_shift + 1) * stride + max(2 * padding - kernel, 0)
    by_residue = F.pad(frames, (0, 0, 0, extension))[:, : rows * stride].reshape(batch, rows, stride, channels)
    mask_by_residue = None
    if frame_mask is not None:
        frame_mask = F.pad(frame_mask, (0, extension))[:, : rows * stride]
        mask_by_residue = frame_mask.reshape(batch, rows, stride, 1).to(frames.dtype)
    output = frames.new_zeros(batch, out_length, out_channels)
    for shift, products in _tap_products(by_residue, mask_by_residue, weight, stride, padding):
        first = max(shift, 0)  # rows before `first` would feed outputs before 0
        if shift + out_length <= first:  # no row reaches an output (a few frames, wide padding)
            continue
        output = output + F.pad(products[:, first:shift + out_length], (0, 0, first - shift, 0))
    return output


def _tap_products(by_residue: torch.Tensor, mask_by_residue: torch.Tensor | None, weight: torch.Tensor, stride: int,
                  padding: int):
    """(shift, [B, rows, O] products of one kernel tap's weights with the rows of its residue) for every tap, from
    one matmul per residue over all its taps (`by_residue` [B, rows, stride, C], frames-last). Output t of the
    convolution reads row t + shift."""
    out_channels, channels, kernel = weight.shape
    for residue in range(stride):
        taps = [tap for tap in range(kernel) if (tap - padding) % stride == residue]
        if not taps:
            continue
        # taps[0], taps[0] + stride, ...: a strided slice (an index list's backward is a slow index_put)
        tap_weights = weight[:, :, taps[0]::stride].permute(2, 0, 1).reshape(len(taps) * out_channels, channels)
        products = by_residue[:, :, residue] @ tap_weights.t()  # [B, rows, taps * O]
        if mask_by_residue is not None:
            products = products * mask_by_residue[:, :, residue]
        for position, tap in enumerate(taps):
            yield (tap - padding) // stride, products[..., position * out_channels:(position + 1) * out_channels]


class SemiIINFeatureProjection(nn.Module):
    """Input dropout and a stack of bias-free Conv1d layers (computed frames-last by [`conv1d_frames_last`]);
    frames past each sample's length are zeroed before every convolution so that padding never changes the
    real outputs."""

    def __init__(self, in_size: int, hidden_size: int, kernels, strides, paddings, dropout: float,
                 fast_cpu_dropout: bool = True):
        super().__init__()
        self.dropout = Dropout(dropout, fast_cpu_dropout)
        channels = [in_size] + [hidden_size] * len(kernels)
        self.convs = nn.ModuleList(
            nn.Conv1d(channels[i], channels[i + 1], kernel_size=k, stride=s, padding=p, bias=False)
            for i, (k, s, p) in enumerate(zip(kernels, strides, paddings))
        )

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Real output tokens per sample for `lengths` real input frames."""
        for conv in self.convs:
            lengths = conv_output_lengths(lengths, conv.kernel_size[0], conv.stride[0], conv.padding[0])
        return lengths

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        hidden = self.dropout(features.to(self.convs[0].weight.dtype))  # [B, L, C]
        for conv in self.convs:
            mask = prefix_mask(lengths, hidden.shape[1])
            hidden = conv1d_frames_last(hidden, conv.weight, conv.stride[0], conv.padding[0], mask)
            lengths = conv_output_lengths(lengths, conv.kernel_size[0], conv.stride[0], conv.padding[0])
        return hidden


def attention_with_word_dropout(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key_mask: torch.Tensor, p: float
) -> torch.Tensor:
    """What SDPA's math kernel computes in training, softmax(q k^T / sqrt(d) + mask) with dropout on the weights,
    times v, with the weights' dropout mask drawn by [`dropout_keep_mask`] instead of `bernoulli_` (at MMSA's T ~ 600
    SDPA's masks made a paper-recipe step 1.8x slower than one without attention dropout; benchmarks/RESULTS.md),
    applied by [`drop_attention_weights`] (no mask kept for backward).
    The T x T terms stay in the scores' dtype (bf16 under autocast: the additive mask is cast, 0 and -inf are
    exact); the 0/1 mask is exact in any dtype, and the dropout scale multiplies the (d-wide) output, where a
    python float keeps it unrounded (1 / 0.9 in bf16 would be 1.109375)."""
    scores = torch.matmul(query * query.shape[-1] ** -0.5, key.transpose(-2, -1))
    weights = (scores + key_mask.to(scores.dtype)).softmax(dim=-1)
    attended = torch.matmul(drop_attention_weights(weights, p), value)
    return attended if word_dropout_scale(p) == 1.0 else attended * word_dropout_scale(p)


class SemiIINAttention(nn.Module):
    """Multi-head self-attention through `torch.nn.functional.scaled_dot_product_attention` (in CPU training with
    attention dropout and `fast_cpu_dropout`: [`attention_with_word_dropout`])."""

    def __init__(self, config: SemiIINConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.dropout = config.attention_dropout
        self.fast_cpu_dropout = config.fast_cpu_dropout
        self.qkv_proj = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.qkv_proj.official_init = self.out_proj.official_init = "xavier"  # MulT's MultiheadAttention

    def forward(self, hidden: torch.Tensor, plan: AttentionPlan) -> torch.Tensor:
        batch, length, width = hidden.shape
        query, key, value = self.qkv_proj(hidden).view(batch, length, 3, self.num_heads, self.head_dim).permute(
            2, 0, 3, 1, 4
        )
        dropout = self.dropout if self.training else 0.0
        attend = F.scaled_dot_product_attention
        if dropout > 0 and samples_words(self.fast_cpu_dropout, hidden):
            attend = attention_with_word_dropout
        queries, keys, values = (part.split(plan.piece_sizes, dim=2) for part in (query, key, value))
        outputs = [
            attend(_join(query, queries, query_pieces), _join(key, keys, key_pieces), _join(value, values, key_pieces),
                   key_mask, dropout)
            for query_pieces, key_pieces, key_mask in plan.groups
        ]
        attended = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=2)
        return self.out_proj(attended.transpose(1, 2).reshape(batch, length, width))


class SemiIINLayer(nn.Module):
    """Pre-LN transformer layer (attention and ReLU feed-forward, each with a residual)."""

    def __init__(self, config: SemiIINConfig):
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = SemiIINAttention(config)
        self.feed_forward_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = nn.Sequential(
            nn.Linear(config.hidden_size, config.intermediate_size),
            nn.ReLU(),
            Dropout(config.relu_dropout, config.fast_cpu_dropout),
            nn.Linear(config.intermediate_size, config.hidden_size),
        )
        self.residual_dropout = Dropout(config.residual_dropout, config.fast_cpu_dropout)
        self.feed_forward[0].official_init = self.feed_forward[3].official_init = "xavier"  # MulT's Linear()

    def forward(self, hidden: torch.Tensor, plan: AttentionPlan) -> torch.Tensor:
        hidden = hidden + self.residual_dropout(self.attention(self.attention_norm(hidden), plan))
        expand, _, relu_dropout, contract = self.feed_forward  # Linear, ReLU, Dropout, Linear
        feed_forward = contract(relu_dropout.after_relu(expand(self.feed_forward_norm(hidden))))
        return hidden + self.residual_dropout(feed_forward)


def sinusoidal_positions(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """fairseq's (and MulT's) sinusoidal table at `positions` (>= 1; row 0 is its padding row): [len(positions), dim],
    sines then cosines, frequencies exp(-i * log(10000) / (dim / 2 - 1))."""
    half = dim // 2
    frequencies = torch.exp(torch.arange(half, device=positions.device, dtype=torch.float32)
                            * -(math.log(10000) / (half - 1)))
    angles = positions.to(torch.float32)[:, None] * frequencies[None]
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    return F.pad(table, (0, dim % 2))


class SemiIINEncoder(nn.Module):
    """One attention branch: a stack of `num_hidden_layers` layers applied `layer_repeats` times with tied weights.

    "mult" (the official code, MulT's `TransformerEncoder` applied `sharing_num` times): each application scales its
    input by sqrt(hidden), adds sinusoidal positions (optional), applies the embedding dropout, the layers and a final
    LayerNorm. "pre_ln": the layers applied `layer_repeats` times, then one LayerNorm."""

    def __init__(self, config: SemiIINConfig):
        super().__init__()
        self.layers = nn.ModuleList(SemiIINLayer(config) for _ in range(config.num_hidden_layers))
        self.layer_repeats = config.layer_repeats
        self.final_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.style = config.encoder_style
        self.embed_scale = math.sqrt(config.hidden_size)
        self.dropout = Dropout(config.embedding_dropout if config.encoder_style == "mult" else 0.0,
                               config.fast_cpu_dropout)

    def forward(self, hidden: torch.Tensor, plan: AttentionPlan, positions: torch.Tensor | None = None) -> torch.Tensor:
        """hidden: [B, T, hidden] tokens; positions: the [T, hidden] sinusoidal table "mult" adds in each application
        (`SemiIINModel.sinusoidal_table`; None adds none)."""
        if self.style == "pre_ln":
            for _ in range(self.layer_repeats):
                for layer in self.layers:
                    hidden = layer(hidden, plan)
            return self.final_norm(hidden)
        positions = 0 if positions is None else positions
        for _ in range(self.layer_repeats):
            hidden = self.dropout(self.embed_scale * hidden + positions)
            for layer in self.layers:
                hidden = layer(hidden, plan)
            hidden = self.final_norm(hidden)
        return hidden


class SemiIINFusion(nn.Module):
    """Mixes the IntraMA and InterMA states at one position.

    gate: G = sigmoid(W1 z_intra + W2 z_inter + b), z = G * z_inter + (1 - G) * z_intra (paper, Eq. 16-17);
    add: z_intra + z_inter; concat: Linear([z_intra; z_inter]); dot: z_intra * z_inter.
    """

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


class SemiIINEmbeddings(nn.Module):
    """Tokens of the sequence [val; cls; audio; text; vision]: per-modality Conv1d projections plus modality type
    embeddings, the learned val/cls tokens, and position embeddings in fixed per-modality slots (as the official
    code's 2 + 100 + 100 + 50 table), so padding shifts nothing."""

    def __init__(self, config: SemiIINConfig):
        super().__init__()
        hidden = config.hidden_size
        self.config = config
        self.text_projection = SemiIINFeatureProjection(
            config.text_feature_size, hidden, [config.text_kernel_size], [1], [config.text_kernel_size // 2],
            config.input_dropout, config.fast_cpu_dropout,
        )
        self.audio_projection = SemiIINFeatureProjection(
            config.audio_feature_size, hidden, config.audio_kernel_sizes, config.audio_strides,
            config.audio_paddings, config.input_dropout, config.fast_cpu_dropout,
        )
        self.vision_projection = SemiIINFeatureProjection(
            config.vision_feature_size, hidden, [config.vision_kernel_size], [1], [config.vision_kernel_size // 2],
            config.input_dropout, config.fast_cpu_dropout,
        )
        self.modality_type_embeddings = nn.Embedding(len(SEQUENCE_MODALITIES), hidden)
        self.special_tokens = nn.Embedding(NUM_SPECIAL_TOKENS, hidden)
        self.token_position_embeddings = (
            nn.Embedding(NUM_SPECIAL_TOKENS + sum(self.max_tokens.values()), hidden)
            if config.uses_position_embeddings else None
        )
        self.modality_type_embeddings.official_init = "normal_0.05"  # the official init_weights
        self.special_tokens.official_init = "trunc_normal_0.02"  # val_token / cls_token
        if self.token_position_embeddings is not None:
            self.token_position_embeddings.official_init = "trunc_normal_0.02"  # pos_embed
        # "mult" applies the embedding dropout inside each encoder application instead.
        self.dropout = Dropout(config.embedding_dropout if config.encoder_style == "pre_ln" else 0.0,
                               config.fast_cpu_dropout)

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

    def forward(
        self, features: dict[str, torch.Tensor], lengths: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[int, ...], torch.Tensor]:
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
        sequence = torch.cat(
            [self.special_tokens.weight.unsqueeze(0).expand(batch, -1, -1)]
            + [part + type_embeddings[i] for i, part in enumerate(tokens)],
            dim=1,
        )
        sizes = tuple(part.shape[1] for part in tokens)
        position_ids = self.position_ids(sizes, sequence.device)
        if self.token_position_embeddings is not None:
            sequence = sequence + self.token_position_embeddings(position_ids)
        return self.dropout(sequence), sizes, position_ids


class SemiIINPreTrainedModel(AutoMapMixin, PreTrainedModel):
    config: SemiIINConfig
    config_class = SemiIINConfig
    base_model_prefix = "semi_iin"
    main_input_name = "text_features"
    accepts_loss_kwargs = False
    _supports_sdpa = True
    _no_split_modules = ["SemiIINLayer"]
    _auto_map_classes = {"AutoModel": "SemiIINModel", "AutoModelForSequenceClassification": "SemiIINForSentimentAnalysis"}

    def _init_weights(self, module: nn.Module):
        """`config.initialization`: "official" (see [`SemiIINConfig`]; the modules whose official init differs from
        PyTorch's default carry an `official_init` tag) or "normal"."""
        if self.config.initialization == "official":
            self._init_official(module)
            return
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv1d)):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)

    @staticmethod
    def _init_official(module: nn.Module) -> None:
        tag = getattr(module, "official_init", None)
        if tag == "xavier":  # MulT: Xavier-uniform weights, zero biases
            init.xavier_uniform_(module.weight)
            init.zeros_(module.bias)
        elif tag == "normal_0.05":
            init.normal_(module.weight, mean=0.0, std=0.05)
        elif tag == "trunc_normal_0.02":
            init.trunc_normal_(module.weight, std=0.02, a=-2.0, b=2.0)  # timm's trunc_normal_ (absolute bounds)
        elif isinstance(module, (nn.Linear, nn.Conv1d)):  # PyTorch's default: the convolutions, gate, heads
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                bound = 1 / math.sqrt(module.weight[0].numel())
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


# Folders saved before the base/heads split (every module at the top level) load through these renamings.
_FLAT_EMBEDDINGS = r"(text_projection|audio_projection|vision_projection|modality_type_embeddings|special_tokens|token_position_embeddings)"
_FLAT_BASE = r"(intra_encoder|inter_encoder|val_fusion|cls_fusion|global_encoder|encoders)"
_FLAT_TO_BASE = {rf"^{_FLAT_EMBEDDINGS}\.": r"embeddings.\1.", rf"^{_FLAT_BASE}\.": r"\1."}
FLAT_CHECKPOINT_KEYS = {
    "SemiIINModel": _FLAT_TO_BASE,
    "SemiIINForSentimentAnalysis": {old: f"{SemiIINPreTrainedModel.base_model_prefix}.{new}"
                                    for old, new in _FLAT_TO_BASE.items()},
}


class FlatCheckpointMixin:
    """`from_pretrained` also reads folders saved before the base/heads split (`FLAT_CHECKPOINT_KEYS`); the model
    is then saved in the current layout."""

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        kwargs.setdefault("key_mapping", FLAT_CHECKPOINT_KEYS[cls.__name__])
        model = super().from_pretrained(*args, **kwargs)
        # transformers keeps a used key_mapping to save in the loaded layout; save in the current one instead.
        model._weight_conversions = []
        return model


class SemiIINModel(FlatCheckpointMixin, FrozenEncodersMixin, SemiIINPreTrainedModel):
    """The Semi-IIN encoder: embeddings, the IntraMA/InterMA branches (or the global ablation) and the val/cls
    fusion; returns the fused val/cls states. `AutoModel` gives this model, [`SemiIINForSentimentAnalysis`] adds
    the heads.

    Each modality takes precomputed frame-level features or, when the config bundles its encoder
    (`text_config` / `audio_config` / `vision_config`), raw inputs: `input_ids`, 16 kHz `input_values`,
    video frames `pixel_values`. Masks use 1 for real frames and 0 for (right) padding; padding never
    changes an output.

    `validate_inputs` (default True): run the data-dependent input checks ([`InputValueChecks`]: one host sync
    per forward). Off, the forward pass has no data-dependent host sync.
    """

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
        self.encoders = nn.ModuleDict({
            modality: build_encoder(getattr(config, f"{modality}_config"), modality)
            for modality in config.encoder_modalities
        })
        self.post_init()
        self._freeze_encoders_if_configured()

    def _frozen_encoders(self) -> list[nn.Module]:
        return [self.encoders]

    def load_pretrained_encoders(self, **names_or_paths: str | None) -> None:
        """Load pretrained weights into bundled encoders, e.g. `text="FacebookAI/roberta-large"`."""
        for modality, name_or_path in names_or_paths.items():
            if name_or_path is None:
                continue
            if modality not in self.encoders:
                raise ValueError(f"load_pretrained_encoders: the config has no {modality}_config (no {modality} encoder).")
            load_encoder_weights(self.encoders[modality], name_or_path, f"{modality}_config")

    def sinusoidal_table(self, position_ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
        """MulT's sinusoidal positions of the tokens' slots (position = slot + 1), shared by both branches; None when
        the encoder adds none (`pre_ln`, or `sinusoidal_positions=False`)."""
        if self.config.encoder_style != "mult" or not self.config.sinusoidal_positions:
            return None
        return sinusoidal_positions(position_ids + 1, self.config.hidden_size).to(dtype)

    def encode_inputs(self, **inputs: torch.Tensor | None) -> tuple[dict, dict]:
        """Per-modality frame features and masks ({"text": [B, N, D], ...}, masks or None): precomputed
        `*_features` as given, raw inputs run through the bundled encoders."""
        features = {name: inputs.get(f"{name}_features") for name in MODALITIES}
        masks = {name: inputs.get(f"{name}_attention_mask") for name in MODALITIES}
        encode_raw_inputs(self.encoders, features, masks, {name: inputs.get(name) for name in RAW_INPUT_NAMES},
                          self.config)
        return features, masks

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
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> SemiIINModelOutput | tuple:
        r"""
        text_features / audio_features / vision_features: [B, N, Dt], [B, L, Da], [B, M, Dv] frame features.
        *_attention_mask: [B, len] with 1 for real frames and 0 for (right) padding; None = all real.
        input_ids / attention_mask / token_type_ids: Tokenized text, for a bundled text encoder.
        input_values / waveform_attention_mask: 16 kHz waveforms [B, S] and their mask, for a bundled audio encoder.
        pixel_values / frame_attention_mask: Frames [B, F, C, H, W] and their mask, for a bundled vision encoder.
        output_hidden_states: Also return both branches' final token states (`branch_hidden_states`).
        """
        config = self.config
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
        plans = build_attention_plans(config.attention_mode, token_lengths, sizes, tokens.dtype)
        positions = self.sinusoidal_table(position_ids, tokens.dtype)

        gate_values = None
        if config.attention_mode == "global":
            branch_states = (self.global_encoder(tokens, plans["global"], positions),)
            pooled = branch_states[0][:, :NUM_SPECIAL_TOKENS]
        else:
            branch_states = (self.intra_encoder(tokens, plans["intra"], positions),
                             self.inter_encoder(tokens, plans["inter"], positions))
            intra, inter = branch_states
            val, val_gate = self.val_fusion(intra[:, 0], inter[:, 0])
            cls, cls_gate = self.cls_fusion(intra[:, 1], inter[:, 1])
            pooled = torch.stack([val, cls], dim=1)
            if val_gate is not None:
                gate_values = torch.stack([val_gate, cls_gate], dim=1)
        output = SemiIINModelOutput(
            pooled_output=pooled, gate_values=gate_values,
            branch_hidden_states=branch_states if output_hidden_states else None,
        )
        return output if return_dict is not False else output.to_tuple()


class SemiIINForSentimentAnalysis(FlatCheckpointMixin, FrozenEncodersMixin, SemiIINPreTrainedModel):
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
    def encoders(self) -> nn.ModuleDict:
        """The bundled encoders (`semi_iin.encoders`)."""
        return self.semi_iin.encoders

    @property
    def validate_inputs(self) -> bool:
        """See [`SemiIINModel`]."""
        return self.semi_iin.validate_inputs

    @validate_inputs.setter
    def validate_inputs(self, value: bool) -> None:
        self.semi_iin.validate_inputs = value

    def _frozen_encoders(self) -> list[nn.Module]:
        return [self.semi_iin.encoders]

    @classmethod
    def from_pretrained_encoders(
        cls, text: str | None = None, audio: str | None = None, vision: str | None = None, **config_kwargs
    ) -> "SemiIINForSentimentAnalysis":
        """A new Semi-IIN whose encoders start from pretrained checkpoints (Hub ids or folders); the fusion
        part is randomly initialised. `vision="face_cnn"` builds the random FabNet-style CNN. A modality
        given as None takes precomputed features. Paper: `text="FacebookAI/roberta-large",
        audio="facebook/hubert-large-ll60k"` (see `PAPER_ENCODERS`)."""
        config = SemiIINConfig.from_encoders(text=text, audio=audio, vision=vision, **config_kwargs)
        model = cls(config)
        model.load_pretrained_encoders(text=text, audio=audio, vision=None if vision == "face_cnn" else vision)
        return model

    def load_pretrained_encoders(self, **names_or_paths: str | None) -> None:
        """See [`SemiIINModel.load_pretrained_encoders`]."""
        self.semi_iin.load_pretrained_encoders(**names_or_paths)

    def forward(
        self,
        labels: torch.Tensor | None = None,
        emotion_labels: torch.Tensor | None = None,
        pseudo_label_mask: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **model_inputs,
    ) -> SemiIINOutput | tuple:
        r"""
        model_inputs: The inputs of [`SemiIINModel.forward`] (features, masks, raw inputs, output_hidden_states).
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
        output = SemiIINOutput(
            loss=loss, logits=logits, emotion_logits=emotion_logits, gate_values=base.gate_values,
            pooled_output=base.pooled_output, branch_hidden_states=base.branch_hidden_states,
        )
        return output if return_dict is not False else output.to_tuple()

    @torch.no_grad()
    def modality_contributions(self, **model_inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """How much each modality moves the predicted intensity: `score(all) - score(modality masked out)`, [B] per
        modality. Masking out replaces the modality by one all-zero frame (the model has no "missing modality"
        input), so this is an occlusion estimate, not an exact attribution; the encoders run once."""
        features, masks = self.semi_iin.encode_inputs(**model_inputs)
        inputs = {f"{name}_{kind}": value for name in MODALITIES
                  for kind, value in (("features", features[name]), ("attention_mask", masks[name]))}
        full = self(**inputs, return_dict=True).logits
        contributions = {}
        for name in MODALITIES:
            batch, _, size = features[name].shape
            occluded = {**inputs, f"{name}_features": features[name].new_zeros(batch, 1, size),
                        f"{name}_attention_mask": torch.ones(batch, 1, dtype=torch.long, device=full.device)}
            contributions[name] = full - self(**occluded, return_dict=True).logits
        return contributions

    def compute_loss(
        self,
        logits: torch.Tensor,
        emotion_logits: torch.Tensor,
        labels: torch.Tensor | None,
        emotion_labels: torch.Tensor | None,
        pseudo_label_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """lambda_1 * MSE + (1 - lambda_1) * CE on labelled samples, + lambda_2 * CE on pseudo-labelled ones.

        Written with per-sample weights instead of boolean indexing, so it needs no host sync; a term whose samples
        are absent from the batch contributes exactly 0 (and no gradient)."""
        config = self.config
        if emotion_labels is None:
            if labels is None:
                raise ValueError("compute_loss needs `labels` or `emotion_labels`.")
            emotion_labels = intensity_to_class(labels, config.num_emotion_classes)
        emotion_labels = emotion_labels.to(device=logits.device, dtype=torch.long)
        pseudo = (
            torch.zeros_like(logits, dtype=torch.bool)
            if pseudo_label_mask is None
            else pseudo_label_mask.to(device=logits.device, dtype=torch.bool)
        )
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


__all__ = [
    "SemiIINEmbeddings",
    "SemiIINForSentimentAnalysis",
    "SemiIINModel",
    "SemiIINModelOutput",
    "SemiIINOutput",
    "SemiIINPreTrainedModel",
    "build_attention_plans",
    "build_interaction_masks",
    "may_attend",
]
