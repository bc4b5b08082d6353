"""One entry point for every supported corpus."""

from pathlib import Path

import numpy as np
from datasets import DatasetDict

from .cmu_csd import load_cmu_csd, standard_folds
from .mmsa_pickle import LABEL_RANGES, load_mmsa_pickle
from .raw_layouts import load_ami, load_label_csv_layout
from .names import SUPPORTED_DATASETS
from .synthetic import SyntheticMSAConfig, make_synthetic_dataset

SETTINGS = ("aligned", "unaligned")


LABELLED_SPLITS = ("train", "validation", "test")


def read_labels(dataset) -> np.ndarray:
    """The `label` column as a float32 vector (None -> NaN), read in one Arrow pass whatever the format."""
    return np.asarray(dataset.with_format("numpy")["label"][:], dtype=np.float32)


def check_saved_labels(dataset: DatasetDict, folder: Path) -> DatasetDict:
    """A saved DatasetDict's labelled splits must have a finite label on every row (unlabelled clips belong in an
    `unlabeled` split); errors name the folder, split and first bad id."""
    for split in LABELLED_SPLITS:
        if split not in dataset or "label" not in dataset[split].column_names:
            continue
        labels = read_labels(dataset[split])
        bad = np.flatnonzero(~np.isfinite(labels))
        if len(bad):
            ids = dataset[split]["id"] if "id" in dataset[split].column_names else None
            first = ids[int(bad[0])] if ids is not None else int(bad[0])
            raise ValueError(
                f"{folder}: split {split}, field label: {len(bad)} row(s) without a finite label (first {first!r}); "
                "label them, or move unlabelled clips to an 'unlabeled' split (self-training reads it)."
            )
    return dataset


def _pickle_candidates(name: str, data_dir: Path, setting: str) -> list[Path]:
    length = 39 if name == "sims" else 50
    filename = f"{setting}_{length}.pkl"
    return [data_dir / "Processed" / filename, data_dir / filename]


def load_msa_dataset(
    name: str, data_dir: str | Path | None = None, setting: str = "unaligned", cache_dir: str | None = None,
    source: str = "auto", **options,
) -> DatasetDict:
    """Load corpus `name` as a DatasetDict with train/validation/test (AMI: `unlabeled`; synthetic: both).

    - "synthetic": the generated dataset (options: `SyntheticMSAConfig` fields); no files needed.
    - "mosi", "mosei", "sims": an MMSA pickle (`<data_dir>/Processed/{setting}_50.pkl`, SIMS `_39`, or
      `data_dir` itself as a .pkl) converted once to Arrow; for MOSI/MOSEI `source="csd"` reads
      CMU-MultimodalSDK `.csd` files (options: labels, features, words, folds); for SIMS `source="raw"` (or
      auto without a pickle) indexes `label.csv` + `Raw/` videos.
    - "ami": meeting clips (options: `annotations_dir`, `meetings`, `min_duration`) as an unlabeled split.
    - "custom": an MMSA-FET folder (label.csv + Raw/<video_id>/<clip_id>.mp4); labels may be empty.
    A `data_dir` holding a `save_to_disk` DatasetDict (e.g. `processing_msa.extract_features` output) is loaded
    as it is, whatever the name.
    """
    if data_dir is not None and (Path(data_dir) / "dataset_dict.json").is_file():
        # a saved features dataset (e.g. extract_features output)
        return check_saved_labels(DatasetDict.load_from_disk(str(data_dir)), Path(data_dir))
    if name == "synthetic":
        return make_synthetic_dataset(SyntheticMSAConfig(**options), cache_dir=cache_dir)
    if name not in SUPPORTED_DATASETS:
        raise ValueError(f"Unknown dataset {name!r}: supported datasets are {SUPPORTED_DATASETS}.")
    if data_dir is None:
        raise ValueError(f"Dataset {name!r} needs data_dir (the folder you downloaded it to).")
    if setting not in SETTINGS:
        raise ValueError(f"setting={setting!r}; expected one of {SETTINGS}.")
    data_dir = Path(data_dir)
    if not data_dir.exists():
        raise FileNotFoundError(f"{data_dir} does not exist (data_dir of dataset {name!r}).")
    if name == "ami":
        annotations = options.pop("annotations_dir", data_dir / "ami_public_manual")
        return load_ami(data_dir / "amicorpus" if (data_dir / "amicorpus").is_dir() else data_dir, annotations,
                        **options)
    if name == "custom":
        return load_label_csv_layout(data_dir, require_labels=False, **{"label_range": LABEL_RANGES["mosi"], **options})
    if source == "csd":
        if name not in ("mosi", "mosei"):
            raise ValueError(f"source='csd' is for mosi/mosei, not {name!r}.")
        folds = options.pop("folds", None) or standard_folds(name)
        return load_cmu_csd(folds=folds, cache_dir=cache_dir, **options)
    if source in ("auto", "pickle"):
        candidates = [data_dir] if data_dir.suffix == ".pkl" else _pickle_candidates(name, data_dir, setting)
        for candidate in candidates:
            if candidate.is_file():
                return load_mmsa_pickle(candidate, cache_dir=cache_dir, label_range=LABEL_RANGES.get(name))
        if source == "pickle" or name != "sims" or not (data_dir / "label.csv").is_file():
            raise FileNotFoundError(
                f"No {setting} MMSA pickle for {name!r}: looked for {[str(c) for c in candidates]}"
                + (" and label.csv + Raw/ for the raw layout." if name == "sims" else
                   "; pass source='csd' to read CMU-MultimodalSDK .csd files instead.")
            )
    if name == "sims" and source in ("auto", "raw"):
        return load_label_csv_layout(data_dir, **{"label_range": LABEL_RANGES["sims"], **options})
    raise ValueError(f"source={source!r} is not available for {name!r}; use 'auto', 'pickle', 'csd' or 'raw'.")
