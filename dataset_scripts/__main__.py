"""`python -m dataset_scripts NAME DATA_DIR --output DIR [--push-to-hub ORG/NAME]`: convert a corpus once to
Parquet files (one per split) and optionally publish it with `DatasetDict.push_to_hub`."""

import argparse
from pathlib import Path

from .atomic_write import atomic_path
from .loading import SETTINGS, SUPPORTED_DATASETS, load_msa_dataset


def convert(name: str, data_dir: str | None, output: str | Path, setting: str = "unaligned",
            cache_dir: str | None = None, push_to_hub: str | None = None, private: bool = True) -> dict[str, Path]:
    """Write `<output>/<split>.parquet` for every split (atomically: each file is renamed in place when done)."""
    dataset = load_msa_dataset(name, data_dir, setting=setting, cache_dir=cache_dir).with_format(None)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, part in dataset.items():
        target = output / f"{split}.parquet"
        with atomic_path(target) as temporary:
            part.to_parquet(str(temporary))
        written[split] = target
    if push_to_hub:
        dataset.push_to_hub(push_to_hub, private=private)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name", choices=SUPPORTED_DATASETS)
    parser.add_argument("data_dir", nargs="?", default=None)
    parser.add_argument("--output", required=True)
    parser.add_argument("--setting", choices=SETTINGS, default="unaligned")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--push-to-hub", default=None, metavar="ORG/NAME")
    parser.add_argument("--public", action="store_true", help="Publish a public dataset (default private).")
    options = parser.parse_args()
    written = convert(options.name, options.data_dir, options.output, options.setting, options.cache_dir,
                      options.push_to_hub, private=not options.public)
    for split, path in written.items():
        print(f"{split}: {path}")


if __name__ == "__main__":
    main()
