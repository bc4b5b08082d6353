"""One entry point for every supported corpus."""

from datasets import DatasetDict

from .synthetic import SyntheticMSAConfig, make_synthetic_dataset

SUPPORTED_DATASETS = ("synthetic",)


def load_msa_dataset(name: str, data_dir: str | None = None, cache_dir: str | None = None, **options) -> DatasetDict:
    """Load corpus `name` as a DatasetDict with train/validation/test (and unlabeled where there is one).

    Currently supported: "synthetic" (options = `SyntheticMSAConfig` fields).
    """
    if name == "synthetic":
        return make_synthetic_dataset(SyntheticMSAConfig(**options), cache_dir=cache_dir)
    raise ValueError(f"Unknown dataset {name!r}: supported datasets are {SUPPORTED_DATASETS}.")
