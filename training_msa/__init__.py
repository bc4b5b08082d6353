"""Training utilities for msa-hub models: collator, metrics, Trainer subclass, model cards."""

from .collator import MSADataCollator
from .metrics import build_compute_metrics, compute_msa_metrics, mosi_metrics, sims_metrics
from .trainer import MSATrainer, MSATrainingArguments

__all__ = [
    "MSADataCollator",
    "MSATrainer",
    "MSATrainingArguments",
    "build_compute_metrics",
    "compute_msa_metrics",
    "mosi_metrics",
    "sims_metrics",
]
