"""Loading folders saved by earlier versions of msa-hub with the installed package. Not part of the remote code: a
saved folder carries the code it was written with, and the model files hold no legacy handling.

`enable_legacy_checkpoints` (applied by `modeling_msa/__init__.py`) lets a class's `from_pretrained`, and so the Auto
classes, read an old folder: its weights are renamed on load (`key_mapping`) and `save_pretrained` then writes the
current layout. Old configs get behaviour-preserving defaults in `SemiIINConfig.from_dict`.
"""

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


def enable_legacy_checkpoints(model_class: type) -> None:
    """`model_class.from_pretrained` also reads the layouts of `LEGACY_KEY_RENAMES[model_class.__name__]`."""
    load = model_class.from_pretrained.__func__
    if getattr(load, "reads_legacy_checkpoints", False):
        return

    def from_pretrained(cls, *args, **kwargs):
        kwargs.setdefault("key_mapping", LEGACY_KEY_RENAMES[cls.__name__])
        model = load(cls, *args, **kwargs)
        model._weight_conversions = []  # transformers would save in the layout it read: save the current one
        return model

    from_pretrained.reads_legacy_checkpoints = True
    from_pretrained.__doc__ = load.__doc__
    model_class.from_pretrained = classmethod(from_pretrained)
