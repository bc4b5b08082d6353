"""Training utilities for msa-hub models: collator, metrics, Trainer subclass, model cards."""

from .collator import MSADataCollator
from .metrics import build_compute_metrics, compute_msa_metrics, mosi_metrics, sims_metrics
from .shared_private_trainer import IndexedDataset, SharedPrivateTrainer, SharedPrivateTrainingArguments
from .trainer import MSATrainer, MSATrainingArguments, NonFiniteLossError
from .ulgm import UnimodalLabelBank

__all__ = [
    "MSADataCollator",
    "MSATrainer",
    "MSATrainingArguments",
    "IndexedDataset",
    "NonFiniteLossError",
    "SharedPrivateTrainer",
    "SharedPrivateTrainingArguments",
    "UnimodalLabelBank",
    "build_compute_metrics",
    "compute_msa_metrics",
    "mosi_metrics",
    "sims_metrics",
]
