"""Loaders that turn multimodal sentiment corpora into `datasets.DatasetDict`s."""

from .loading import SUPPORTED_DATASETS, load_msa_dataset
from .synthetic import SyntheticMSAConfig, make_synthetic_dataset

__all__ = ["SUPPORTED_DATASETS", "SyntheticMSAConfig", "load_msa_dataset", "make_synthetic_dataset"]
