"""msa-hub models: configs and models that travel to the Hub as remote code.

Importing this package registers the configs/models with the transformers Auto classes locally and marks
them for `auto_map`, so `save_pretrained` writes a folder loadable where msa-hub is not installed:
`AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True)` gives the model with its
heads (intensity + class), `AutoModel` the Semi-IIN base model (fused val/cls states).
"""

from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

from .configuration_face_cnn import FaceCNNConfig
from .configuration_semi_iin import PAPER_ENCODERS, SemiIINConfig
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
from .msa_utils import MODALITIES, intensity_to_class

# config -> (AutoModel class, AutoModelForSequenceClassification class). The shared/private model has no separate
# base: its four heads are the model (ULGM reads their post-layer features), so both Auto classes give it.
_AUTO_CLASSES = {
    SemiIINConfig: (SemiIINModel, SemiIINForSentimentAnalysis),
    SharedPrivateConfig: (SharedPrivateForSentimentAnalysis, SharedPrivateForSentimentAnalysis),
}
for _config, (_base, _task) in _AUTO_CLASSES.items():
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModel.register(_config, _base, exist_ok=True)
    AutoModelForSequenceClassification.register(_config, _task, exist_ok=True)
    _config.register_for_auto_class()
    _base.register_for_auto_class("AutoModel")
    _task.register_for_auto_class("AutoModelForSequenceClassification")

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
]
