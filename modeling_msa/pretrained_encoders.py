"""Building a new Semi-IIN around pretrained encoders (part of the installed package, not of a saved model's code:
a saved model carries its encoders' weights and configs)."""

from transformers import AutoConfig, PreTrainedConfig

from .configuration_face_cnn import FaceCNNConfig
from .configuration_semi_iin import SemiIINConfig
from .modeling_encoders import load_encoder_weights

# The encoders of the paper's features; FabNet's weights are not on the Hub, so vision defaults to a random
# FabNet-style CNN (`FaceCNNConfig`) to train or to replace with any transformers image backbone.
PAPER_ENCODERS = {"text": "FacebookAI/roberta-large", "audio": "facebook/hubert-large-ll60k", "vision": "face_cnn"}


def semi_iin_config_from_encoders(
    text: str | PreTrainedConfig | None = PAPER_ENCODERS["text"],
    audio: str | PreTrainedConfig | None = PAPER_ENCODERS["audio"],
    vision: str | PreTrainedConfig | None = PAPER_ENCODERS["vision"],
    **kwargs,
) -> SemiIINConfig:
    """A config bundling encoders given as Hub ids / folders (their configs are read), configs, or None (precomputed
    features). `vision="face_cnn"` is the FabNet-style CNN; the defaults are the paper's encoders."""
    sub_configs = {}
    for modality, encoder in (("text", text), ("audio", audio), ("vision", vision)):
        if encoder == "face_cnn":
            encoder = FaceCNNConfig()
        elif isinstance(encoder, str):
            encoder = AutoConfig.from_pretrained(encoder)
        sub_configs[f"{modality}_config"] = encoder
    return SemiIINConfig(**sub_configs, **kwargs)


def load_pretrained_encoders(model, **names_or_paths: str | None) -> None:
    """Load pretrained weights into the bundled encoders of a Semi-IIN (base or with heads), e.g.
    `text="FacebookAI/roberta-large"`; a modality given as None is skipped."""
    encoders = getattr(model, "semi_iin", model).encoders
    for modality, name_or_path in names_or_paths.items():
        if name_or_path is None:
            continue
        if modality not in encoders:
            raise ValueError(f"load_pretrained_encoders: the config has no {modality}_config (no {modality} encoder).")
        load_encoder_weights(encoders[modality], name_or_path, f"{modality}_config")


def semi_iin_from_pretrained_encoders(text: str | None = None, audio: str | None = None, vision: str | None = None,
                                      **config_kwargs):
    """A new `SemiIINForSentimentAnalysis` whose encoders start from pretrained checkpoints (Hub ids or folders); the
    fusion part is randomly initialised. `vision="face_cnn"` builds the random FabNet-style CNN. A modality given as
    None takes precomputed features. Paper: `text="FacebookAI/roberta-large", audio="facebook/hubert-large-ll60k"`."""
    from .modeling_semi_iin import SemiIINForSentimentAnalysis

    model = SemiIINForSentimentAnalysis(semi_iin_config_from_encoders(text=text, audio=audio, vision=vision,
                                                                      **config_kwargs))
    load_pretrained_encoders(model, text=text, audio=audio, vision=None if vision == "face_cnn" else vision)
    return model
