"""Loaders that turn multimodal sentiment corpora into `datasets.DatasetDict`s.

Names are imported on first use (PEP 562): `SUPPORTED_DATASETS` and `SyntheticMSAConfig` (what `train.py --help`
needs) do not import `datasets`, h5py or PyAV.
"""

import importlib

_EXPORTS = {
    "SUPPORTED_DATASETS": "names",
    "SyntheticMSAConfig": "synthetic",
    "make_synthetic_dataset": "synthetic",
    "load_cmu_csd": "cmu_csd",
    "standard_folds": "cmu_csd",
    "load_msa_dataset": "loading",
    "load_mmsa_pickle": "mmsa_pickle",
    "load_ami": "raw_layouts",
    "load_label_csv_layout": "raw_layouts",
    "verify_media": "raw_layouts",
    "RestrictedUnpickler": "safe_pickle",
    "UnsafePickleError": "safe_pickle",
    "safe_load_pickle": "safe_pickle",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dataset_scripts' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
