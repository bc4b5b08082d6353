"""msa-hub models: configs and models that travel to the Hub as remote code.

Importing this package registers the configs/models with the transformers Auto classes locally and marks
them for `auto_map`, so `save_pretrained` writes a folder loadable with
`AutoModel.from_pretrained(path, trust_remote_code=True)` where msa-hub is not installed.
"""

from transformers import AutoConfig, AutoModel

from .configuration_face_cnn import FaceCNNConfig
from .configuration_semi_iin import PAPER_ENCODERS, SemiIINConfig
from .configuration_shared_private import SharedPrivateConfig
from .modeling_face_cnn import FaceCNNModel
from .modeling_semi_iin import (
    SemiIINForSentimentAnalysis,
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
from .msa_utils import intensity_to_class

for _config, _model in (
    (SemiIINConfig, SemiIINForSentimentAnalysis),
    (SharedPrivateConfig, SharedPrivateForSentimentAnalysis),
):
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModel.register(_config, _model, exist_ok=True)
    _config.register_for_auto_class()
    _model.register_for_auto_class("AutoModel")

__all__ = [
    "FaceCNNConfig",
    "FaceCNNModel",
    "PAPER_ENCODERS",
    "SemiIINConfig",
    "SemiIINForSentimentAnalysis",
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
