"""Input checks, length/mask helpers and label binning shared by the msa-hub models."""

import torch


def prefix_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """[B, size] boolean mask, True for the first `lengths[b]` positions of each row."""
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]


def conv_output_lengths(lengths: torch.Tensor, kernel_size: int, stride: int, padding: int) -> torch.Tensor:
    """Number of outputs of a Conv1d whose receptive field starts inside the real frames (clamped at 0)."""
    return torch.clamp(torch.div(lengths + 2 * padding - kernel_size, stride, rounding_mode="floor") + 1, min=0)


def intensity_to_class(labels: torch.Tensor, num_classes: int = 7) -> torch.Tensor:
    """Bin intensities into `num_classes` unit-wide classes centred on integers.

    For 7 classes: [-3,-2.5) -> 0, [-2.5,-1.5) -> 1, ..., [-0.5,0.5) -> 3, ..., [2.5,3] -> 6
    (left-closed bins; values beyond the range go to the end classes).
    """
    half = (num_classes - 1) / 2
    boundaries = torch.arange(-half + 0.5, half, 1.0, device=labels.device, dtype=torch.float64)
    return torch.bucketize(labels.detach().to(torch.float64), boundaries, right=True)


def check_features(
    features: dict[str, torch.Tensor], masks: dict[str, torch.Tensor | None], expected_sizes: dict[str, int]
) -> int:
    """Validate per-modality feature tensors; returns the batch size. Errors name the offending field."""
    batch = None
    for name, tensor in features.items():
        field = f"{name}_features"
        if not isinstance(tensor, torch.Tensor) or tensor.dim() != 3:
            shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise ValueError(f"{field} must be a float tensor [batch, frames, {expected_sizes[name]}], got {shape}.")
        if not tensor.is_floating_point():
            raise ValueError(f"{field} must be a floating-point tensor, got dtype {tensor.dtype}.")
        if tensor.shape[-1] != expected_sizes[name]:
            raise ValueError(
                f"{field} has feature size {tensor.shape[-1]} but the config expects {name}_feature_size="
                f"{expected_sizes[name]}: use features of that size or a config built for them."
            )
        if batch is None:
            batch = tensor.shape[0]
        elif tensor.shape[0] != batch:
            sizes = {f"{key}_features": value.shape[0] for key, value in features.items()}
            raise ValueError(f"Batch sizes differ between modalities: {sizes}.")
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError(
                f"{field} contains NaN or inf values: clean the features (MMSA sets audio -inf to 0) before the model."
            )
        mask = masks.get(name)
        if mask is not None and tuple(mask.shape) != tuple(tensor.shape[:2]):
            raise ValueError(
                f"{name}_attention_mask has shape {tuple(mask.shape)} but {field} is {tuple(tensor.shape)}: "
                "the mask must be [batch, frames]."
            )
    return batch


def lengths_from_mask(mask: torch.Tensor | None, features: torch.Tensor, field: str) -> torch.Tensor:
    """Real lengths from a right-padded 0/1 mask (all frames real when the mask is None)."""
    batch, frames = features.shape[:2]
    if mask is None:
        return torch.full((batch,), frames, dtype=torch.long, device=features.device)
    mask = mask.to(device=features.device).bool()
    lengths = mask.sum(-1)
    if not torch.equal(mask, prefix_mask(lengths, frames)):
        raise ValueError(f"{field} must be right-padded: 1 for real frames first, then 0 for padding.")
    return lengths


def encoder_output_size(config) -> int:
    """Width of the per-token (text/audio) or per-frame (vision) features an encoder config produces."""
    if config.model_type == "msa_face_cnn":
        return config.embedding_size
    if getattr(config, "hidden_sizes", None):
        return config.hidden_sizes[-1]
    return config.hidden_size


def bundled_encoder_modalities(config, candidates: tuple[str, ...]) -> tuple[str, ...]:
    """The `candidates` modalities whose `<modality>_config` (a bundled encoder) is set."""
    return tuple(name for name in candidates if getattr(config, f"{name}_config") is not None)


def sync_encoder_feature_sizes(config, candidates: tuple[str, ...]) -> None:
    """Set `<modality>_feature_size` to the output width of each bundled encoder among `candidates`."""
    for name in bundled_encoder_modalities(config, candidates):
        setattr(config, f"{name}_feature_size", encoder_output_size(getattr(config, f"{name}_config")))


def check_config_keys(config, extra_keys) -> None:
    """Reject keys that look like typos of a real field ("hiden_size"); warn about other unknown keys."""
    import dataclasses
    import difflib
    import logging

    fields = [f.name for f in dataclasses.fields(type(config))]
    for key in extra_keys:
        if key.startswith("_") or key in TRANSFORMERS_EXTRA_KEYS:
            continue
        close = difflib.get_close_matches(key, fields, n=1, cutoff=0.85)
        if close:
            raise ValueError(f"{type(config).__name__} got unknown key {key!r}: did you mean {close[0]!r}?")
        logging.getLogger(__name__).warning("%s: unknown key %r is kept as an attribute but no model part reads it.",
                                            type(config).__name__, key)


TRANSFORMERS_EXTRA_KEYS = {"auto_map", "model_type", "name_or_path", "transformers_version", "attn_implementation",
                           "torch_dtype", "dtype", "num_labels", "trust_remote_code", "output_attentions",
                           "output_hidden_states", "return_dict", "custom_pipelines"}
