"""Convert-once Arrow caches: a reader runs once per input; later loads memory-map the saved DatasetDict."""

import hashlib
import itertools
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from datasets import Dataset, DatasetDict, Features, config, load_from_disk

from .atomic_write import staging_folder

_SOURCES: dict[str, Iterator[dict]] = {}


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's content, read in 8 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(8 * 2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_fingerprint(*parts) -> str:
    """Fingerprint of input files (their content's SHA-256: a file rewritten with the same size and mtime is another
    input) and options."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path) and part.is_file():
            part = f"file:{file_sha256(part)}"
        digest.update(repr(part).encode())
    return digest.hexdigest()[:24]


def empty_dataset(schema: Features, split: str | None = None) -> Dataset:
    """A typed dataset without rows (`from_list` / `from_generator` cannot type or write an empty one)."""
    return Dataset.from_dict({name: [] for name in schema}, features=schema, split=split)


def _generate(token: str):
    yield from _SOURCES[token]


def _split(examples: Iterator[dict], schema: Features, split: str, staging: Path, fingerprint: str) -> Dataset:
    first = next(examples, None)
    if first is None:
        return empty_dataset(schema, split)
    token = uuid.uuid4().hex
    _SOURCES[token] = itertools.chain([first], examples)
    try:
        return Dataset.from_generator(
            _generate, features=schema, gen_kwargs={"token": token}, cache_dir=str(staging / "build"), split=split,
            fingerprint=f"{fingerprint}-{split}",
        )
    finally:
        _SOURCES.pop(token, None)


def cached_dataset_dict(
    name: str, fingerprint: str, splits: list[str], features: Callable[[], Features],
    examples: Callable[[str], Iterator[dict]], cache_dir: str | None = None,
) -> DatasetDict:
    """`<cache>/msa_hub/<name>/<fingerprint>` as a memory-mapped DatasetDict, written on first use from
    `examples(split)` (streamed to Arrow, never held whole in memory) into a staging folder that is renamed
    into place only when complete."""
    root = Path(cache_dir or config.HF_DATASETS_CACHE) / "msa_hub" / name
    target = root / fingerprint
    if (target / "dataset_dict.json").exists():
        return load_from_disk(str(target))
    root.mkdir(parents=True, exist_ok=True)
    staging = staging_folder(root, prefix=f".{fingerprint}.")
    try:
        schema = features()
        built = DatasetDict({split: _split(iter(examples(split)), schema, split, staging, fingerprint) for split in splits})
        built.save_to_disk(str(staging / "dataset"), num_shards={s: 1 for s in built if len(built[s]) == 0} or None)
        del built
        try:
            (staging / "dataset").rename(target)
        except OSError:  # another process built the same cache meanwhile: use theirs (same inputs, same content)
            if not (target / "dataset_dict.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return load_from_disk(str(target))
