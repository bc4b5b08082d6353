"""Loading folders saved by earlier versions of msa-hub with the installed package. Not part of the remote code: a
saved folder carries the code it was written with, and the model files hold no legacy handling.

`enable_legacy_checkpoints` (applied by `modeling_msa/__init__.py`) lets a class's `from_pretrained`, and so the Auto
classes, read an old folder: its weights are renamed on load (`key_mapping`), MulT's fused `qkv_proj` is split into
`q_proj`/`k_proj`/`v_proj`, and `save_pretrained` then writes the current layout. Old configs get
behaviour-preserving defaults in `SemiIINConfig.from_dict`.
"""

import re

import torch
from transformers.utils import cached_file
from transformers.utils import logging as transformers_logging

# Before the base/heads split every module sat at the top level.
_FLAT_EMBEDDINGS = (r"(text_projection|audio_projection|vision_projection|modality_type_embeddings|special_tokens"
                    r"|token_position_embeddings)")
_FLAT_BASE = r"(intra_encoder|inter_encoder|val_fusion|cls_fusion|global_encoder|encoders)"
# Before the feed-forward module: an nn.Sequential (Linear, ReLU, Dropout, Linear).
_FEED_FORWARD = {r"\.feed_forward\.0\.": ".feed_forward.intermediate_dense.",
                 r"\.feed_forward\.3\.": ".feed_forward.output_dense."}

LEGACY_KEY_RENAMES = {
    "SemiIINModel": {rf"^{_FLAT_EMBEDDINGS}\.": r"embeddings.\1.", rf"^{_FLAT_BASE}\.": r"\1.", **_FEED_FORWARD},
    "SemiIINForSentimentAnalysis": {rf"^{_FLAT_EMBEDDINGS}\.": r"semi_iin.embeddings.\1.",
                                    rf"^{_FLAT_BASE}\.": r"semi_iin.\1.", **_FEED_FORWARD},
}
_FUSED = ".attention.qkv_proj."  # MulT's [q; k; v] input projection, one Linear before issue #32


# Integer buffers a checkpoint may hold; every other tensor of these models is floating point.
INTEGER_BUFFERS = ("num_batches_tracked", "position_ids", "token_type_ids")


def checkpoint_file(name_or_path, **hub_kwargs) -> str | None:
    """The model.safetensors of a folder or Hub id; None for a missing or unreadable one, which `from_pretrained` then
    handles (and reports) as usual."""
    try:
        return cached_file(str(name_or_path), "model.safetensors", _raise_exceptions_for_missing_entries=False,
                           **hub_kwargs)
    except (OSError, ValueError):
        return None


def refuse_non_float_weights(path: str, name_or_path) -> None:
    """A weight stored as an integer or boolean (which loading would cast to float without a word) is refused, naming
    the tensor; only the file's header is read."""
    from safetensors import safe_open

    with safe_open(path, "pt") as checkpoint:
        for key in checkpoint.keys():
            dtype = checkpoint.get_slice(key).get_dtype()
            if not dtype.startswith(("F", "BF")) and not key.endswith(INTEGER_BUFFERS):
                raise ValueError(f"{name_or_path}: tensor {key!r} in model.safetensors is stored as {dtype}, not as "
                                 "floating point: the file is damaged or not this model's; re-save it from the model.")


def fused_qkv_tensors(path: str) -> dict[str, torch.Tensor]:
    """The fused `qkv_proj` tensors of a checkpoint file; {} for a current one."""
    from safetensors import safe_open

    with safe_open(path, "pt") as checkpoint:
        return {key: checkpoint.get_tensor(key) for key in checkpoint.keys() if _FUSED in key}


def mismatched_shapes(model_class, name_or_path, renames: dict[str, str], **hub_kwargs) -> str:
    """'name: checkpoint [..] vs model [..]' for each tensor of the checkpoint whose shape the config does not give."""
    from safetensors import safe_open

    config = model_class.config_class.from_pretrained(name_or_path, **hub_kwargs)
    with torch.device("meta"):
        expected = {key: tuple(value.shape) for key, value in model_class(config).state_dict().items()}
    found = []
    with safe_open(checkpoint_file(name_or_path, **hub_kwargs), "pt") as checkpoint:
        for key in checkpoint.keys():
            name = key
            for pattern, replacement in renames.items():
                name = re.sub(pattern, replacement, name)
            shape = tuple(checkpoint.get_slice(key).get_shape())
            if name in expected and expected[name] != shape:
                found.append(f"{key}: checkpoint {list(shape)} vs model {list(expected[name])}")
    return "; ".join(found[:5]) or "see the report above"


def split_fused_qkv(model, fused: dict[str, torch.Tensor], renames: dict[str, str]) -> set[str]:
    """Copy each fused tensor's q, k and v rows into the model's `q_proj`/`k_proj`/`v_proj`; returns the names filled."""
    parameters, prefix, filled = dict(model.named_parameters()), model.base_model_prefix + ".", set()
    for key, tensor in fused.items():
        for pattern, replacement in renames.items():
            key = re.sub(pattern, replacement, key)
        for name, rows in zip(("q_proj", "k_proj", "v_proj"), tensor.chunk(3)):
            target = key.replace(_FUSED, f".attention.{name}.")
            for candidate in (target, target.removeprefix(prefix), prefix + target):
                if candidate in parameters:
                    with torch.no_grad():
                        parameters[candidate].copy_(rows)
                    filled.add(candidate)
                    break
    return filled


def enable_legacy_checkpoints(model_class: type) -> None:
    """`model_class.from_pretrained` also reads the layouts of `LEGACY_KEY_RENAMES[model_class.__name__]` and a fused
    `qkv_proj`."""
    load = model_class.from_pretrained.__func__
    if getattr(load, "reads_legacy_checkpoints", False):
        return

    def from_pretrained(cls, *args, **kwargs):
        renames = LEGACY_KEY_RENAMES.get(cls.__name__, {})
        if renames:
            kwargs.setdefault("key_mapping", renames)
        hub_kwargs = {k: kwargs[k] for k in ("cache_dir", "revision", "token", "local_files_only") if k in kwargs}
        path = checkpoint_file(args[0], **hub_kwargs) if args else None
        if path is not None:
            refuse_non_float_weights(path, args[0])
        fused = fused_qkv_tensors(path) if path is not None else {}
        if not fused:
            try:
                model = load(cls, *args, **kwargs)
            except (RuntimeError, ValueError) as error:  # transformers points to a logged report: name the tensors
                if "ignore_mismatched_sizes" not in str(error) or kwargs.get("ignore_mismatched_sizes"):
                    raise
                raise ValueError(f"{args[0]}: weights of the wrong shape for this model's config: "
                                 f"{mismatched_shapes(cls, args[0], renames, **hub_kwargs)}.") from error
        else:  # transformers would report the split tensors as unexpected and the q/k/v ones as missing
            wanted_info = kwargs.pop("output_loading_info", False)
            verbosity = transformers_logging.get_verbosity()
            transformers_logging.set_verbosity_error()
            try:
                model, info = load(cls, *args, output_loading_info=True, **kwargs)
            finally:
                transformers_logging.set_verbosity(verbosity)
            filled = split_fused_qkv(model, fused, renames)
            info["missing_keys"] = set(info["missing_keys"]) - filled
            info["unexpected_keys"] = {key for key in info["unexpected_keys"] if _FUSED not in key}
            if info["missing_keys"] or info["unexpected_keys"]:
                raise ValueError(f"{args[0]}: a checkpoint with a fused qkv_proj, but other weights do not fit the "
                                 f"model (missing {sorted(info['missing_keys'])[:5]}, unexpected "
                                 f"{sorted(info['unexpected_keys'])[:5]}).")
            model = (model, info) if wanted_info else model
        (model[0] if isinstance(model, tuple) else model)._weight_conversions = []  # save the current layout, not
        return model  # the one transformers read

    from_pretrained.reads_legacy_checkpoints = True
    from_pretrained.__doc__ = load.__doc__
    model_class.from_pretrained = classmethod(from_pretrained)
