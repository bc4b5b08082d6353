"""Training utilities for msa-hub models: collator, metrics, Trainer subclasses, ULGM, model cards.

Names are imported on first use (PEP 562), so `import training_msa.training_args` (what `train.py --help` needs)
does not pay for `transformers.Trainer` (which imports peft when it is installed) or scikit-learn.
"""

import importlib

_EXPORTS = {
    "MSADataCollator": "collator",
    "build_compute_metrics": "metrics",
    "compute_msa_metrics": "metrics",
    "mosi_metrics": "metrics",
    "sims_metrics": "metrics",
    "IndexedDataset": "shared_private_trainer",
    "SharedPrivateTrainer": "shared_private_trainer",
    "MSATrainer": "trainer",
    "NonFiniteLossError": "trainer",
    "MSATrainingArguments": "training_args",
    "SelfTrainingArguments": "training_args",
    "SharedPrivateTrainingArguments": "training_args",
    "UnimodalLabelBank": "ulgm",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'training_msa' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
