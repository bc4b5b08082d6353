"""PEFT LoRA on the bundled encoders of a Semi-IIN model; the fusion part and heads train in full."""

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

    if not len(getattr(model, "encoders", ())):
        raise ValueError("encoder_lora_config: the model bundles no encoder (its config has no text/audio/vision_config).")
    targets = [rf"encoders\.(text|audio|vision)\..*\.({'|'.join(projections)})"]
    if face_cnn_convolutions:
        targets.append(r"encoders\.vision\.stages\.\d+\.0")
    modules_to_save = [name for name, _ in model.named_children() if name != "encoders"]
    # peft matches modules_to_save by name suffix: a name also ending an encoder module would unfreeze it.
    clashes = sorted({name for name in modules_to_save for inner, _ in model.encoders.named_modules()
                      if inner == name or inner.endswith("." + name)})
    if clashes:
        raise ValueError(f"encoder_lora_config: module names {clashes} also occur inside the encoders.")
    return LoraConfig(
        r=r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules="|".join(f"(?:{t})" for t in targets),
        modules_to_save=modules_to_save,
    )


__all__ = ["DEFAULT_PROJECTIONS", "encoder_lora_config"]
