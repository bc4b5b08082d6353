"""PEFT LoRA on the bundled encoders of a Semi-IIN model; the fusion part and heads train in full."""

import re

from torch.nn import Module, ModuleDict
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

    path = next((name for name, module in model.named_modules() if name.rpartition(".")[2] == "encoders"
                 and isinstance(module, ModuleDict) and len(module)), None)
    if path is None:
        raise ValueError("encoder_lora_config: the model bundles no encoder (its config has no text/audio/vision_config).")
    prefix = re.escape(path)
    targets = [rf"{prefix}\.(text|audio|vision)\..*\.({'|'.join(projections)})"]
    if face_cnn_convolutions:
        targets.append(rf"{prefix}\.vision\.stages\.\d+\.0")
    modules_to_save = _modules_beside(model, path)
    # peft matches modules_to_save by name suffix: a name also ending an encoder module would unfreeze it.
    encoder_modules = [f"{path}.{inner}" for inner, _ in model.get_submodule(path).named_modules() if inner]
    clashes = sorted({name for name in modules_to_save for inner in encoder_modules if inner.endswith("." + name)})
    if clashes:
        raise ValueError(f"encoder_lora_config: module names {clashes} also occur inside the encoders.")
    return LoraConfig(
        r=r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules="|".join(f"(?:{t})" for t in targets),
        modules_to_save=modules_to_save,
    )


def _modules_beside(model: Module, path: str) -> list[str]:
    """Every module that is neither on the way to `path` nor inside it: the children of each ancestor of
    `path` (the root included) off that way, as dotted names (e.g. `semi_iin.embeddings`, `head_mlp`)."""
    names, parent = [], ""
    for part in path.split("."):
        module = model.get_submodule(parent) if parent else model
        names += [f"{parent}.{child}" if parent else child for child, _ in module.named_children() if child != part]
        parent = f"{parent}.{part}" if parent else part
    return names


__all__ = ["DEFAULT_PROJECTIONS", "encoder_lora_config"]
