"""msa-hub models: configs and models that travel to the Hub as remote code.

Importing this package registers the configs/models with the transformers Auto classes locally and marks
them for `auto_map`, so `save_pretrained` writes a folder loadable where msa-hub is not installed:
`AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True)` gives the model with its
heads (intensity + class), `AutoModel` the Semi-IIN base model (fused val/cls states).
"""

import sys

import transformers
from transformers import AutoConfig

from .configuration_face_cnn import FaceCNNConfig
from .configuration_semi_iin import SemiIINConfig
from .configuration_shared_private import SharedPrivateConfig
from .modeling_face_cnn import FaceCNNModel
from .modeling_semi_iin import (
    SemiIINEmbeddings,
    SemiIINForSentimentAnalysis,
    SemiIINModel,
    SemiIINModelOutput,
    SemiIINOutput,
    SemiIINPreTrainedModel,
    build_interaction_masks,
)
from .modeling_shared_private import (
    SharedPrivateForSentimentAnalysis,
    SharedPrivateOutput,
    SharedPrivatePreTrainedModel,
    coral_loss,
    covariance,
)
from .legacy_checkpoints import enable_legacy_checkpoints
from .msa_utils import MODALITIES, intensity_to_class
from .pretrained_encoders import (
    PAPER_ENCODERS,
    load_pretrained_encoders,
    semi_iin_config_from_encoders,
    semi_iin_from_pretrained_encoders,
)

# Each family's `_auto_map_classes` (the Auto class -> model class table its saved `auto_map` carries) is also what
# registers it here. The shared/private model has no separate base: its four heads are the model (ULGM reads their
# post-layer features), so both Auto classes give it.
for _family in (SemiIINPreTrainedModel, SharedPrivatePreTrainedModel):
    _config = _family.config_class
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    _config.register_for_auto_class()
    for _auto_name, _class_name in _family._auto_map_classes.items():
        _model = getattr(sys.modules[_family.__module__], _class_name)
        getattr(transformers, _auto_name).register(_config, _model, exist_ok=True)
        _model.register_for_auto_class(_auto_name)
for _model in (SemiIINModel, SemiIINForSentimentAnalysis, SharedPrivateForSentimentAnalysis):  # + weight dtype check
    enable_legacy_checkpoints(_model)

__all__ = [
    "MODALITIES",
    "FaceCNNConfig",
    "FaceCNNModel",
    "PAPER_ENCODERS",
    "SemiIINConfig",
    "SemiIINEmbeddings",
    "SemiIINForSentimentAnalysis",
    "SemiIINModel",
    "SemiIINModelOutput",
    "SemiIINOutput",
    "SemiIINPreTrainedModel",
    "SharedPrivateConfig",
    "SharedPrivateForSentimentAnalysis",
    "SharedPrivateOutput",
    "SharedPrivatePreTrainedModel",
    "build_interaction_masks",
    "coral_loss",
    "covariance",
    "intensity_to_class",
    "load_pretrained_encoders",
    "semi_iin_config_from_encoders",
    "semi_iin_from_pretrained_encoders",
]
