"""Loaders that turn multimodal sentiment corpora into `datasets.DatasetDict`s."""

from .cmu_csd import load_cmu_csd, standard_folds
from .loading import SUPPORTED_DATASETS, load_msa_dataset
from .mmsa_pickle import load_mmsa_pickle
from .raw_layouts import load_ami, load_label_csv_layout, verify_media
from .safe_pickle import RestrictedUnpickler, UnsafePickleError, safe_load_pickle
from .synthetic import SyntheticMSAConfig, make_synthetic_dataset

__all__ = [
    "SUPPORTED_DATASETS",
    "RestrictedUnpickler",
    "SyntheticMSAConfig",
    "UnsafePickleError",
    "load_ami",
    "load_cmu_csd",
    "load_label_csv_layout",
    "load_mmsa_pickle",
    "load_msa_dataset",
    "make_synthetic_dataset",
    "safe_load_pickle",
    "standard_folds",
    "verify_media",
]
