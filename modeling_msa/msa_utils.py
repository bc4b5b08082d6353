"""Input checks, length/mask helpers and label binning shared by the msa-hub models."""

import torch

MODALITIES = ("text", "audio", "vision")  # the one modality tuple of msa-hub


def prefix_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """[B, size] boolean mask, True for the first `lengths[b]` positions of each row."""
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]


def conv_output_lengths(lengths: torch.Tensor, kernel_size: int, stride: int, padding: int) -> torch.Tensor:
    """Number of outputs of a Conv1d whose receptive field starts inside the real frames (clamped at 0)."""
    return torch.clamp(torch.div(lengths + 2 * padding - kernel_size, stride, rounding_mode="floor") + 1, min=0)


def intensity_to_class(labels: torch.Tensor, num_classes: int = 7) -> torch.Tensor:
    """Bin intensities into `num_classes` unit-wide classes centred on -half..half; odd counts round as MMSA's Acc-7
    (np.round, half to even: -1.5 -> -2, 0.5 -> 0, 2.5 -> 2); values beyond the range go to the end classes."""
    half = (num_classes - 1) / 2
    if num_classes % 2:
        return (torch.round(labels.detach().to(torch.float64).nan_to_num().clamp(-half, half)) + half).long()
    boundaries = torch.arange(-half + 0.5, half, 1.0, device=labels.device, dtype=torch.float64)
    return torch.bucketize(labels.detach().to(torch.float64), boundaries, right=True)


def check_feature_shapes(
    features: dict[str, torch.Tensor], masks: dict[str, torch.Tensor | None], expected_sizes: dict[str, int]
) -> int:
    """Validate per-modality tensors by their metadata (rank, dtype, feature size, batch, mask shape); returns
    the batch size. Reads no tensor data, so it never synchronises with the device. Errors name the field."""
    batch = None
    for name, tensor in features.items():
        field = f"{name}_features"
        if not isinstance(tensor, torch.Tensor) or tensor.dim() != 3:
            shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise ValueError(f"{field} must be a float tensor [batch, frames, {expected_sizes[name]}], got {shape}.")
        if not tensor.is_floating_point():
            raise ValueError(f"{field} must be a floating-point tensor, got dtype {tensor.dtype}.")
        if tensor.shape[-1] != expected_sizes[name]:
            raise ValueError(f"{field} has feature size {tensor.shape[-1]} but the config expects {name}_feature_size="
                             f"{expected_sizes[name]}: use features of that size or a config built for them.")
        if batch is None:
            batch = tensor.shape[0]
        elif tensor.shape[0] != batch:
            sizes = {f"{key}_features": value.shape[0] for key, value in features.items()}
            raise ValueError(f"Batch sizes differ between modalities: {sizes}.")
        mask = masks.get(name)
        if mask is not None and tuple(mask.shape) != tuple(tensor.shape[:2]):
            raise ValueError(f"{name}_attention_mask has shape {tuple(mask.shape)} but {field} is "
                             f"{tuple(tensor.shape)}: the mask must be [batch, frames].")
    return batch


def lengths_from_mask(mask: torch.Tensor | None, features: torch.Tensor) -> torch.Tensor:
    """Real lengths [B] from a right-padded 0/1 mask (all frames real when the mask is None); no host sync.
    The mask's form is checked by [`InputValueChecks`], not here."""
    batch, frames = features.shape[:2]
    if mask is None:
        return torch.full((batch,), frames, dtype=torch.long, device=features.device)
    return mask.to(device=features.device).ne(0).sum(-1)


class InputValueChecks:
    """The data-dependent input checks of a forward pass (finite features, 0/1 right-padded masks, a real frame per
    sample), collected as device tensors and read with ONE host sync by [`raise_if_failed`]. Run while
    `model.validate_inputs` (default True), not under `torch.compile`; `MSATrainer` turns them off (its collator has
    checked the same on the CPU)."""

    def __init__(self):
        self._checks: list[tuple[str, torch.Tensor]] = []

    def fail_if(self, condition: torch.Tensor, message: str) -> None:
        """Record `condition` (a boolean scalar tensor, True = invalid) and the error it raises."""
        self._checks.append((message, condition))

    def features(self, features: dict[str, torch.Tensor], masks: dict[str, torch.Tensor | None]) -> "InputValueChecks":
        for name, tensor in features.items():
            self.fail_if(~torch.isfinite(tensor).all(), f"{name}_features contains NaN or inf values: clean the "
                         "features (MMSA sets audio -inf to 0) before the model.")
            mask = masks.get(name)
            if mask is None:
                continue
            field = f"{name}_attention_mask"
            binary = (mask == 0) | (mask == 1)
            self.fail_if(~binary.all(), f"{field} must hold only 0 (padding) and 1 (real frame).")
            real = mask.ne(0)
            self.fail_if((real != prefix_mask(real.sum(-1), real.shape[-1])).any(),
                         f"{field} must be right-padded: 1 for real frames first, then 0 for padding.")
        return self

    def raise_if_failed(self) -> None:
        if not self._checks:
            return
        device = self._checks[0][1].device
        failed = torch.stack([condition.to(device) for _, condition in self._checks]).tolist()  # the one sync
        for (message, _), bad in zip(self._checks, failed):
            if bad:
                raise ValueError(message)


def should_check_input_values(model) -> bool:
    """Whether `model`'s forward runs its [`InputValueChecks`] (eager mode with `validate_inputs` on)."""
    return getattr(model, "validate_inputs", True) and not torch.compiler.is_compiling()


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


def resolve_encoder_configs(config, default_model_types: dict[str, str]) -> None:
    """Turn each bundled-encoder sub-config given as a dict (as config.json holds it) into the config class of its
    `model_type` (else the default one); None stays None. transformers' `SubConfigSpec` would do it from 5.20 on;
    this also works on 5.17-5.19 (pyproject's floor)."""
    from transformers import AutoConfig

    for key, default_model_type in default_model_types.items():
        value = getattr(config, key)
        if isinstance(value, dict):
            value = dict(value)
            model_type = value.pop("model_type", default_model_type)
            try:
                setattr(config, key, AutoConfig.for_model(model_type, **value))
            except ValueError as error:
                if "Unrecognized model identifier" not in str(error):
                    raise
                raise ValueError(f"{type(config).__name__}.{key}: model_type {model_type!r} is not a transformers "
                                 "config type (a newer transformers, or a typo?); give one AutoConfig knows, e.g. "
                                 f"{default_model_type!r}.") from None


# Written into config.json by transformers' registries rather than by a config field: `register_for_auto_class`
# (auto_map) and `PIPELINE_REGISTRY` (custom_pipelines). Everything else transformers knows is consumed by
# `PreTrainedConfig.__post_init__` (generation defaults such as use_cache, torch_dtype, name_or_path, ...).
REGISTRY_KEYS = frozenset({"auto_map", "custom_pipelines"})


def check_unknown_config_keys(config, given_keys) -> None:
    """Call after `PreTrainedConfig.__post_init__`: the given keys it left behind as plain attributes are neither
    fields nor keys transformers consumed. One that looks like a typo of a field ("hiden_size") is an error; any
    other is kept, with a warning."""
    import dataclasses
    import difflib
    import logging

    fields = {f.name for f in dataclasses.fields(type(config))}
    for key in given_keys:
        known = key in fields or key in REGISTRY_KEYS or hasattr(type(config), key)  # e.g. the class's model_type
        if key.startswith("_") or known or key not in vars(config):
            continue
        close = difflib.get_close_matches(key, sorted(fields), n=1, cutoff=0.85)
        if close:
            raise ValueError(f"{type(config).__name__} got unknown key {key!r}: did you mean {close[0]!r}?")
        logging.getLogger(__name__).warning("%s: unknown key %r is kept as an attribute but no model part reads it.",
                                            type(config).__name__, key)


class AutoMapMixin:
    """Saved with remote code, a model writes every Auto class of its family into `auto_map`, not only its own:
    `_auto_map_classes` maps an Auto class name to a class name of the same module."""

    _auto_map_classes: dict[str, str] = {}

    def save_pretrained(self, save_directory, *args, **kwargs):
        if getattr(self, "_auto_class", None) is not None:
            module = type(self).__module__.split(".")[-1]
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            auto_map.update({auto: f"{module}.{name}" for auto, name in self._auto_map_classes.items()})
            self.config.auto_map = auto_map
        return super().save_pretrained(save_directory, *args, **kwargs)
