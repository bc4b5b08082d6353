"""msa-hub models: configs and models that travel to the Hub as remote code.

Importing this package registers the configs/models with the transformers Auto classes locally and marks
them for `auto_map`, so `save_pretrained` writes a folder loadable with
`AutoModel.from_pretrained(path, trust_remote_code=True)` where msa-hub is not installed.
"""

from transformers import AutoConfig, AutoModel

from .configuration_semi_iin import SemiIINConfig
from .modeling_semi_iin import (
    SemiIINForSentimentAnalysis,
    SemiIINOutput,
    SemiIINPreTrainedModel,
    build_interaction_masks,
)
from .msa_utils import intensity_to_class

AutoConfig.register(SemiIINConfig.model_type, SemiIINConfig, exist_ok=True)
AutoModel.register(SemiIINConfig, SemiIINForSentimentAnalysis, exist_ok=True)
SemiIINConfig.register_for_auto_class()
SemiIINForSentimentAnalysis.register_for_auto_class("AutoModel")

__all__ = [
    "SemiIINConfig",
    "SemiIINForSentimentAnalysis",
    "SemiIINOutput",
    "SemiIINPreTrainedModel",
    "build_interaction_masks",
    "intensity_to_class",
]
