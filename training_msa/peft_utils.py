"""PEFT LoRA on the bundled encoders of an msa-hub model (Semi-IIN, shared/private); the fusion part and heads train
in full."""

import re

from torch.nn import Module, ModuleDict, ModuleList
from transformers import PreTrainedModel

# Attention projections of BERT/RoBERTa (query/key/value) and HuBERT/wav2vec2/ViT-style (q_proj/k_proj/v_proj).
DEFAULT_PROJECTIONS = ("query", "value", "q_proj", "v_proj")


def encoder_lora_config(
    model: PreTrainedModel,
    r: int = 8,
    lora_alpha: int = 16,
    lora_dropout: float = 0.05,
    projections: tuple[str, ...] = DEFAULT_PROJECTIONS,
    face_cnn_convolutions: bool = True,
):
    """A `peft.LoraConfig`: LoRA on the encoders' attention `projections` (and the FabNet-style CNN's
    convolutions), every other top-level module (projections, fusion, heads) in `modules_to_save`.

    >>> peft_model = peft.get_peft_model(model, encoder_lora_config(model))
    >>> peft_model.save_pretrained("adapter")   # adapter weights + the fully trained fusion/heads
    """
    from peft import LoraConfig

    paths = encoder_paths(model)
    if not paths:
        raise ValueError("encoder_lora_config: the model bundles no encoder (its config has no text/audio/vision_config).")
    projections_pattern = "|".join(projections)
    targets = []
    for path in paths:
        prefix = re.escape(path)
        if path.rpartition(".")[2] == "encoders":
            targets.append(rf"{prefix}\.(text|audio|vision)\..*\.({projections_pattern})")
            if face_cnn_convolutions:
                targets.append(rf"{prefix}\.vision\.stages\.\d+\.0")
        else:  # the shared/private model's BERT text encoder
            targets.append(rf"{prefix}\..*\.({projections_pattern})")
    modules_to_save = _modules_beside(model, paths)
    # peft matches modules_to_save by name suffix: a name also ending an encoder module would unfreeze it.
    encoder_modules = [f"{path}.{inner}" for path in paths for inner, _ in model.get_submodule(path).named_modules()
                       if inner]
    clashes = sorted({name for name in modules_to_save for inner in encoder_modules if inner.endswith("." + name)})
    if clashes:
        raise ValueError(f"encoder_lora_config: module names {clashes} also occur inside the encoders.")
    return LoraConfig(
        r=r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules="|".join(f"(?:{t})" for t in targets),
        modules_to_save=modules_to_save,
    )


def encoder_paths(model: Module) -> list[str]:
    """The dotted names of the bundled encoders: the non-empty `encoders` ModuleDict (Semi-IIN, shared/private
    audio/vision) and the shared/private model's `text_encoder`."""
    return [name for name, module in model.named_modules()
            if (name.rpartition(".")[2] == "encoders" and isinstance(module, ModuleDict) and len(module))
            or (name.rpartition(".")[2] == "text_encoder" and isinstance(module, PreTrainedModel))]


def _modules_beside(model: Module, paths: list[str]) -> list[str]:
    """Every module that is neither on the way to one of `paths` nor inside one: the children of each ancestor of a
    path (the root included) off every way, as dotted names (e.g. `semi_iin.embeddings`, `head_mlp`)."""
    on_the_way = {".".join(path.split(".")[:depth]) for path in paths for depth in range(len(path.split(".")) + 1)}
    names = []
    for name, module in model.named_modules():
        if name in on_the_way and name not in paths:
            names += [full for child, _ in module.named_children()
                      if (full := f"{name}.{child}" if name else child) not in on_the_way]
    beside = []
    while names:  # peft cannot wrap a container (ModuleDict/ModuleList): its children instead
        name = names.pop(0)
        module = model.get_submodule(name)
        if isinstance(module, (ModuleDict, ModuleList)):
            names[:0] = [f"{name}.{child}" for child, _ in module.named_children()]
        else:
            beside.append(name)
    return beside


__all__ = ["DEFAULT_PROJECTIONS", "encoder_lora_config", "encoder_paths"]
