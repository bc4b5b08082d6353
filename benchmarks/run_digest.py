"""Issue #33: what the run record's content hash (`training_msa.run_fingerprint.dataset_digest`, run at every train.py
start) costs beside one pass over the same data, on memory-mapped Arrow features of MOSEI's unaligned widths
(text 50x768, audio 500x74, vision 500x35 per clip).

    python benchmarks/run_digest.py [--rows 2000]

Both passes read the same pages; the page cache is warmed first, so the ratio compares work, not the disk.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
SHAPES = {"text_features": (50, 768), "audio_features": (500, 74), "vision_features": (500, 35)}


def mosei_like(rows: int, folder: str):
    from datasets import Array2D, Dataset, Features, Value

    arrays = {name: Array2D(shape=(None, width), dtype="float32") for name, (_, width) in SHAPES.items()}
    features = Features({"id": Value("string"), "label": Value("float32"), **arrays})

    def clips():
        generator = np.random.default_rng(0)
        for index in range(rows):
            yield {"id": f"clip{index}", "label": float(generator.uniform(-3, 3)),
                   **{name: generator.standard_normal(shape, dtype=np.float32) for name, shape in SHAPES.items()}}

    return Dataset.from_generator(clips, features=features, cache_dir=folder)


def one_pass(dataset, batch_size: int = 64) -> None:
    """Every row once as numpy arrays, in batches: what an epoch's collator reads."""
    numpy_rows = dataset.with_format("numpy")
    for start in range(0, len(dataset), batch_size):
        numpy_rows[start:start + batch_size]


def main(argv=None) -> list[tuple[str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    options = parser.parse_args(argv)
    from training_msa.run_fingerprint import dataset_digest

    with tempfile.TemporaryDirectory() as folder:
        dataset = mosei_like(options.rows, folder)
        size = sum(Path(f["filename"]).stat().st_size for f in dataset.cache_files)
        one_pass(dataset)  # warm the page cache
        timings = {}
        for name, work in (("content hash (dataset_digest)", lambda: dataset_digest({"train": dataset})),
                           ("one pass as numpy batches", lambda: one_pass(dataset))):
            started = time.perf_counter()
            work()
            timings[name] = time.perf_counter() - started
    hashed = timings["content hash (dataset_digest)"]
    rows = [("rows", str(options.rows)), ("Arrow size", f"{size / 2**20:.0f} MiB"),
            *((name, f"{seconds:.2f} s") for name, seconds in timings.items()),
            ("hash rate", f"{size / 2**30 / hashed:.2f} GiB/s"),
            ("hash / one pass", f"{hashed / timings['one pass as numpy batches']:.2f}")]
    print("| measurement | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return rows


if __name__ == "__main__":
    main()
