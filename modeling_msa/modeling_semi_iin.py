"""Semi-IIN: Semi-supervised Intra-inter modal Interaction learning Network (arXiv 2412.09784).

Token sequence Z = [val; cls; audio; text; vision]. Two masked-attention branches read it:
IntraMA (a modality token sees the special tokens and its own modality) and InterMA (a modality token
sees the special tokens and the other modalities). A sigmoid gate mixes the two branches at the val
position (regression head) and at the cls position (7-class head).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_semi_iin import SemiIINConfig
from .modeling_encoders import FrozenEncodersMixin, build_encoder, encode_raw_inputs, load_encoder_weights
from .msa_utils import (
    check_features,
    conv_output_lengths,
    intensity_to_class,
    lengths_from_mask,
    prefix_mask,
)

NUM_SPECIAL_TOKENS = 2  # val (regression) and cls (sentiment class)
AUDIO_TYPE, TEXT_TYPE, VISION_TYPE = 0, 1, 2


def build_interaction_masks(audio_len: int, text_len: int, vision_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean "may attend" matrices `(intra, inter)` of shape [T, T], T = 2 + audio_len + text_len + vision_len.

    Rows are queries, columns keys, token order [val, cls, audio, text, vision]. With S = {val, cls}:
    - IntraMA blocks S x S and every cross-modality block: a modality token sees S and its own modality.
    - InterMA blocks S x S and every same-modality block: a modality token sees S and the other modalities.
    The special tokens see every modality token in both masks.
    """
    sizes = (NUM_SPECIAL_TOKENS, audio_len, text_len, vision_len)
    group = torch.repeat_interleave(torch.arange(4), torch.tensor(sizes))  # 0 = special, 1..3 = modalities
    query, key = group[:, None], group[None, :]
    special_pair = (query == 0) & (key == 0)
    touches_special = (query == 0) | (key == 0)
    same_modality = (query == key) & ~touches_special
    intra = ~special_pair & (touches_special | same_modality)
    inter = ~special_pair & (touches_special | ~same_modality)
    return intra, inter


# Which token groups (0 = specials, 1..3 = audio, text, vision) each query group may see: the block form of
# `build_interaction_masks`, which lets attention skip the blocked blocks instead of masking them.
BRANCH_KEY_GROUPS = {
    "intra": ((1, 2, 3), (0, 1), (0, 2), (0, 3)),
    "inter": ((1, 2, 3), (0, 2, 3), (0, 1, 3), (0, 1, 2)),
}


@dataclass
class AttentionPlan:
    """Block-sparse attention: for each query group (a contiguous slice of the sequence, in order), the key
    slices it may see and the additive padding mask of those keys ([B, 1, 1, keys]: 0 real, -inf padding)."""

    groups: list[tuple[slice, list[slice], torch.Tensor]]


@dataclass
class SemiIINOutput(ModelOutput):
    """Outputs of [`SemiIINForSentimentAnalysis`].

    loss: Supervised (and pseudo-label) loss, when labels are given.
    logits: Predicted sentiment intensity, [B].
    emotion_logits: Scores of the sentiment classes, [B, num_emotion_classes].
    gate_values: Gate G at the val and cls positions, [B, 2, hidden] (None unless fusion == "gate").
    pooled_output: Fused val/cls states fed to the heads, [B, 2, hidden].
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    emotion_logits: torch.Tensor | None = None
    gate_values: torch.Tensor | None = None
    pooled_output: torch.Tensor | None = None


class SemiIINFeatureProjection(nn.Module):
    """Input dropout and a stack of bias-free Conv1d layers; frames past each sample's length are zeroed
    before every convolution so that padding never changes the real outputs."""

    def __init__(self, in_size: int, hidden_size: int, kernels, strides, paddings, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        channels = [in_size] + [hidden_size] * len(kernels)
        self.convs = nn.ModuleList(
            nn.Conv1d(channels[i], channels[i + 1], kernel_size=k, stride=s, padding=p, bias=False)
            for i, (k, s, p) in enumerate(zip(kernels, strides, paddings))
        )

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.dropout(features).transpose(1, 2)  # [B, C, L]
        for conv in self.convs:
            hidden = hidden * prefix_mask(lengths, hidden.shape[-1]).unsqueeze(1).to(hidden.dtype)
            hidden = conv(hidden)
            lengths = conv_output_lengths(lengths, conv.kernel_size[0], conv.stride[0], conv.padding[0])
        return hidden.transpose(1, 2), lengths


class SemiIINAttention(nn.Module):
    """Multi-head self-attention through `torch.nn.functional.scaled_dot_product_attention`."""

    def __init__(self, config: SemiIINConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.dropout = config.attention_dropout
        self.qkv_proj = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor, plan: AttentionPlan) -> torch.Tensor:
        batch, length, width = hidden.shape
        query, key, value = self.qkv_proj(hidden).view(batch, length, 3, self.num_heads, self.head_dim).permute(
            2, 0, 3, 1, 4
        )
        dropout = self.dropout if self.training else 0.0
        outputs = []
        for query_slice, key_slices, key_mask in plan.groups:
            if len(key_slices) == 1:
                keys, values = key[:, :, key_slices[0]], value[:, :, key_slices[0]]
            else:
                keys = torch.cat([key[:, :, part] for part in key_slices], dim=2)
                values = torch.cat([value[:, :, part] for part in key_slices], dim=2)
            outputs.append(F.scaled_dot_product_attention(
                query[:, :, query_slice], keys, values, attn_mask=key_mask, dropout_p=dropout
            ))
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
            nn.Dropout(config.relu_dropout),
            nn.Linear(config.intermediate_size, config.hidden_size),
        )
        self.residual_dropout = nn.Dropout(config.residual_dropout)

    def forward(self, hidden: torch.Tensor, plan: AttentionPlan) -> torch.Tensor:
        hidden = hidden + self.residual_dropout(self.attention(self.attention_norm(hidden), plan))
        return hidden + self.residual_dropout(self.feed_forward(self.feed_forward_norm(hidden)))


class SemiIINEncoder(nn.Module):
    """One attention branch: a layer stack applied `layer_repeats` times with tied weights, then LayerNorm."""

    def __init__(self, config: SemiIINConfig):
        super().__init__()
        self.layers = nn.ModuleList(SemiIINLayer(config) for _ in range(config.num_hidden_layers))
        self.layer_repeats = config.layer_repeats
        self.final_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden: torch.Tensor, plan: AttentionPlan) -> torch.Tensor:
        for _ in range(self.layer_repeats):
            for layer in self.layers:
                hidden = layer(hidden, plan)
        return self.final_norm(hidden)


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


class SemiIINPreTrainedModel(PreTrainedModel):
    config: SemiIINConfig
    config_class = SemiIINConfig
    base_model_prefix = "semi_iin"
    main_input_name = "text_features"
    accepts_loss_kwargs = False
    _supports_sdpa = True
    _no_split_modules = ["SemiIINLayer"]

    def _init_weights(self, module: nn.Module):
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


class SemiIINForSentimentAnalysis(FrozenEncodersMixin, SemiIINPreTrainedModel):
    """Semi-IIN; predicts an intensity and a sentiment class.

    Each modality takes precomputed frame-level features or, when the config bundles its encoder
    (`text_config` / `audio_config` / `vision_config`), raw inputs: `input_ids`, 16 kHz `input_values`,
    video frames `pixel_values`. Masks use 1 for real frames and 0 for (right) padding; padding never
    changes a prediction.
    """

    def __init__(self, config: SemiIINConfig):
        super().__init__(config)
        hidden = config.hidden_size
        self.text_projection = SemiIINFeatureProjection(
            config.text_feature_size, hidden, [config.text_kernel_size], [1], [config.text_kernel_size // 2],
            config.input_dropout,
        )
        self.audio_projection = SemiIINFeatureProjection(
            config.audio_feature_size, hidden, config.audio_kernel_sizes, config.audio_strides,
            config.audio_paddings, config.input_dropout,
        )
        self.vision_projection = SemiIINFeatureProjection(
            config.vision_feature_size, hidden, [config.vision_kernel_size], [1], [config.vision_kernel_size // 2],
            config.input_dropout,
        )
        self.modality_type_embeddings = nn.Embedding(3, hidden)
        self.special_tokens = nn.Embedding(NUM_SPECIAL_TOKENS, hidden)
        num_positions = NUM_SPECIAL_TOKENS + config.max_audio_tokens + config.max_text_tokens + config.max_vision_tokens
        self.token_position_embeddings = nn.Embedding(num_positions, hidden)
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        if config.attention_mode == "intra_inter":
            self.intra_encoder = SemiIINEncoder(config)
            self.inter_encoder = SemiIINEncoder(config)
            self.val_fusion = SemiIINFusion(config)
            self.cls_fusion = SemiIINFusion(config)
        else:
            self.global_encoder = SemiIINEncoder(config)
        self.head_mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.Linear(hidden, config.head_hidden_size))
        self.regression_head = nn.Linear(config.head_hidden_size, 1)
        self.emotion_head = nn.Linear(config.head_hidden_size, config.num_emotion_classes)
        self.encoders = nn.ModuleDict({
            modality: build_encoder(getattr(config, f"{modality}_config"), modality)
            for modality in config.encoder_modalities
        })
        self.post_init()
        self._freeze_encoders_if_configured()

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
        """Load pretrained weights into bundled encoders, e.g. `text="FacebookAI/roberta-large"`."""
        for modality, name_or_path in names_or_paths.items():
            if name_or_path is None:
                continue
            if modality not in self.encoders:
                raise ValueError(f"load_pretrained_encoders: the config has no {modality}_config (no {modality} encoder).")
            load_encoder_weights(self.encoders[modality], name_or_path, f"{modality}_config")

    def _frozen_encoders(self) -> list[nn.Module]:
        return [self.encoders]

    def _position_ids(self, audio_len: int, text_len: int, vision_len: int, device) -> torch.Tensor:
        """Fixed position slots per modality (as in the official code), so padding shifts nothing."""
        audio_start = NUM_SPECIAL_TOKENS
        text_start = audio_start + self.config.max_audio_tokens
        vision_start = text_start + self.config.max_text_tokens
        return torch.cat([
            torch.arange(NUM_SPECIAL_TOKENS, device=device),
            audio_start + torch.arange(audio_len, device=device),
            text_start + torch.arange(text_len, device=device),
            vision_start + torch.arange(vision_len, device=device),
        ])

    def _attention_plans(
        self, lengths: tuple[torch.Tensor, ...], sizes: tuple[int, ...], dtype: torch.dtype
    ) -> dict[str, AttentionPlan]:
        """Per branch, the query groups and the keys each may see (`BRANCH_KEY_GROUPS`, or everything for
        "global"), with padding keys masked. Real tokens get exactly the dense masked attention of
        `build_interaction_masks`; the blocked blocks are never computed. Padding queries see real keys (never
        an empty row); their outputs never reach a real token."""
        batch, device = lengths[0].shape[0], lengths[0].device
        special = torch.ones(batch, NUM_SPECIAL_TOKENS, dtype=torch.bool, device=device)
        token_valid = torch.cat([special] + [prefix_mask(n, size) for n, size in zip(lengths, sizes)], dim=1)
        additive = torch.zeros(token_valid.shape, dtype=dtype, device=device).masked_fill_(~token_valid, float("-inf"))
        bounds = torch.tensor((NUM_SPECIAL_TOKENS, *sizes)).cumsum(0).tolist()
        group_slices = [slice(start, stop) for start, stop in zip([0] + bounds[:-1], bounds)]

        def key_mask(key_slices: list[slice]) -> torch.Tensor:
            return torch.cat([additive[:, part] for part in key_slices], dim=1)[:, None, None, :]

        if self.config.attention_mode == "global":
            everything = [slice(0, bounds[-1])]
            return {"global": AttentionPlan([(everything[0], everything, key_mask(everything))])}
        plans = {}
        for branch, key_groups in BRANCH_KEY_GROUPS.items():
            groups = []
            for query_group, visible in enumerate(key_groups):
                query_slice = group_slices[query_group]
                if query_slice.stop > query_slice.start:
                    key_slices = [group_slices[g] for g in visible if group_slices[g].stop > group_slices[g].start]
                    groups.append((query_slice, key_slices, key_mask(key_slices)))
            plans[branch] = AttentionPlan(groups)
        return plans

    def forward(
        self,
        text_features: torch.Tensor | None = None,
        audio_features: torch.Tensor | None = None,
        vision_features: torch.Tensor | None = None,
        text_attention_mask: torch.Tensor | None = None,
        audio_attention_mask: torch.Tensor | None = None,
        vision_attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        emotion_labels: torch.Tensor | None = None,
        pseudo_label_mask: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        waveform_attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        frame_attention_mask: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> SemiIINOutput | tuple:
        r"""
        text_features / audio_features / vision_features: [B, N, Dt], [B, L, Da], [B, M, Dv] frame features.
        *_attention_mask: [B, len] with 1 for real frames and 0 for (right) padding; None = all real.
        input_ids / attention_mask / token_type_ids: Tokenized text, for a bundled text encoder.
        input_values / waveform_attention_mask: 16 kHz waveforms [B, S] and their mask, for a bundled audio encoder.
        pixel_values / frame_attention_mask: Frames [B, F, C, H, W] and their mask, for a bundled vision encoder.
        labels: [B] float sentiment intensities in [-3, 3].
        emotion_labels: [B] class ids; derived from `labels` when omitted.
        pseudo_label_mask: [B] bool, True for pseudo-labelled samples: they add only
            `pseudo_label_loss_weight * CE(emotion_logits, emotion_labels)` (no regression loss).
        """
        config = self.config
        features = {"text": text_features, "audio": audio_features, "vision": vision_features}
        masks = {"text": text_attention_mask, "audio": audio_attention_mask, "vision": vision_attention_mask}
        raw = {
            "input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids,
            "input_values": input_values, "waveform_attention_mask": waveform_attention_mask,
            "pixel_values": pixel_values, "frame_attention_mask": frame_attention_mask,
        }
        encode_raw_inputs(self.encoders, features, masks, raw, config)
        expected = {
            "text": config.text_feature_size, "audio": config.audio_feature_size, "vision": config.vision_feature_size
        }
        batch = check_features(features, masks, expected)
        lengths = {name: lengths_from_mask(masks[name], features[name], f"{name}_attention_mask") for name in features}

        text, text_len = self.text_projection(features["text"], lengths["text"])
        audio, audio_len = self.audio_projection(features["audio"], lengths["audio"])
        vision, vision_len = self.vision_projection(features["vision"], lengths["vision"])
        sizes = (audio.shape[1], text.shape[1], vision.shape[1])
        for name, size, limit in zip(
            ("audio", "text", "vision"), sizes, (config.max_audio_tokens, config.max_text_tokens, config.max_vision_tokens)
        ):
            if size > limit:
                raise ValueError(
                    f"{name}_features give {size} tokens but max_{name}_tokens={limit}: truncate the input "
                    f"(data collator `max_{name}_length`) or build the model with a larger max_{name}_tokens."
                )
        if bool(((audio_len + text_len + vision_len) == 0).any()):
            raise ValueError("A sample has no real frame in any modality (all attention masks are 0 after projection).")

        type_ids = torch.tensor([AUDIO_TYPE, TEXT_TYPE, VISION_TYPE], device=text.device)
        type_embeddings = self.modality_type_embeddings(type_ids)
        tokens = torch.cat(
            [
                self.special_tokens.weight.unsqueeze(0).expand(batch, -1, -1),
                audio + type_embeddings[0],
                text + type_embeddings[1],
                vision + type_embeddings[2],
            ],
            dim=1,
        )
        tokens = tokens + self.token_position_embeddings(self._position_ids(*sizes, device=tokens.device))
        tokens = self.embedding_dropout(tokens)
        attention_plans = self._attention_plans((audio_len, text_len, vision_len), sizes, tokens.dtype)

        gate_values = None
        if config.attention_mode == "global":
            pooled = self.global_encoder(tokens, attention_plans["global"])[:, :NUM_SPECIAL_TOKENS]
        else:
            intra = self.intra_encoder(tokens, attention_plans["intra"])
            inter = self.inter_encoder(tokens, attention_plans["inter"])
            val, val_gate = self.val_fusion(intra[:, 0], inter[:, 0])
            cls, cls_gate = self.cls_fusion(intra[:, 1], inter[:, 1])
            pooled = torch.stack([val, cls], dim=1)
            if val_gate is not None:
                gate_values = torch.stack([val_gate, cls_gate], dim=1)

        head_states = self.head_mlp(pooled)
        logits = self.regression_head(head_states[:, 0]).squeeze(-1)
        emotion_logits = self.emotion_head(head_states[:, 1])

        loss = None
        if labels is not None or emotion_labels is not None:
            loss = self.compute_loss(logits, emotion_logits, labels, emotion_labels, pseudo_label_mask)
        output = SemiIINOutput(
            loss=loss, logits=logits, emotion_logits=emotion_logits, gate_values=gate_values, pooled_output=pooled
        )
        return output if return_dict is not False else output.to_tuple()

    def compute_loss(
        self,
        logits: torch.Tensor,
        emotion_logits: torch.Tensor,
        labels: torch.Tensor | None,
        emotion_labels: torch.Tensor | None,
        pseudo_label_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """lambda_1 * MSE + (1 - lambda_1) * CE on labelled samples, + lambda_2 * CE on pseudo-labelled ones."""
        config = self.config
        batch = logits.shape[0]
        if emotion_labels is None:
            if labels is None:
                raise ValueError("compute_loss needs `labels` or `emotion_labels`.")
            emotion_labels = intensity_to_class(labels, config.num_emotion_classes)
        emotion_labels = emotion_labels.to(device=logits.device, dtype=torch.long)
        pseudo = (
            torch.zeros(batch, dtype=torch.bool, device=logits.device)
            if pseudo_label_mask is None
            else pseudo_label_mask.to(device=logits.device, dtype=torch.bool)
        )
        real = ~pseudo
        loss = logits.new_zeros(())
        if real.any():
            if labels is None:
                raise ValueError("`labels` (float intensities) are required for samples that are not pseudo-labelled.")
            labels = labels.to(device=logits.device, dtype=logits.dtype)
            regression = F.mse_loss(logits[real], labels[real])
            classification = F.cross_entropy(emotion_logits[real], emotion_labels[real])
            weight = config.regression_loss_weight
            loss = loss + weight * regression + (1 - weight) * classification
        if pseudo.any():
            loss = loss + config.pseudo_label_loss_weight * F.cross_entropy(emotion_logits[pseudo], emotion_labels[pseudo])
        return loss


__all__ = ["SemiIINForSentimentAnalysis", "SemiIINOutput", "SemiIINPreTrainedModel", "build_interaction_masks"]
