"""Peak memory: `pickle.load` of a MOSEI-sized MMSA pickle vs converting it once to Arrow vs reopening it.

Writes a synthetic pickle in MMSA's unaligned_50 layout (MOSEI split sizes 16326/1871/4659, audio 500x74,
vision 500x35, text_bert 3x50; `--scale` shrinks the sample counts), then measures each step in a fresh
process (peak RSS = the process's VmHWM) and prints a table.

    python benchmarks/pickle_vs_arrow_memory.py --workdir /tmp/mosei-bench
"""

import argparse
import json
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from process_memory import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
SPLITS = {"train": 16326, "valid": 1871, "test": 4659}


def write_pickle(path: Path, scale: float) -> None:
    rng = np.random.default_rng(0)
    data = {}
    for split, count in SPLITS.items():
        count = max(2, int(count * scale))
        text_bert = np.zeros((count, 3, 50), dtype=np.int64)
        text_bert[:, 0] = rng.integers(1000, 30000, (count, 50))
        text_bert[:, 1, :30] = 1
        data[split] = {
            "raw_text": np.array(["a synthetic sentence"] * count, dtype=object),
            "id": np.array([f"{split}{i}$_$0" for i in range(count)], dtype=object),
            "text_bert": text_bert,
            "audio": rng.standard_normal((count, 500, 74), dtype=np.float32),
            "vision": rng.standard_normal((count, 500, 35), dtype=np.float32),
            "audio_lengths": rng.integers(100, 501, count).tolist(),
            "vision_lengths": rng.integers(100, 501, count).tolist(),
            "regression_labels": rng.uniform(-3, 3, count).astype(np.float32),
            "annotations": np.array(["Neutral"] * count, dtype=object),
            "classification_labels": np.zeros(count, dtype=np.float32),
        }
    with path.open("wb") as handle:
        pickle.dump(data, handle, protocol=4)


def measure(step: str, pickle_path: Path, cache: Path) -> dict:
    """Run one step in this (fresh) process and report its peak RSS."""
    sys.path.insert(0, str(ROOT))
    started = time.time()
    if step == "pickle.load":
        from dataset_scripts import safe_load_pickle

        data = safe_load_pickle(pickle_path)
        rows = sum(len(part["regression_labels"]) for part in data.values())
    else:
        from dataset_scripts import load_mmsa_pickle

        dataset = load_mmsa_pickle(pickle_path, cache_dir=str(cache))
        rows = sum(len(part) for part in dataset.values())
        train = dataset["train"]
        for index in np.random.default_rng(0).integers(0, len(train), 64):  # random access, as a DataLoader does
            _ = train[int(index)]["audio_features"].sum()
    return {"step": step, "rows": rows, "seconds": round(time.time() - started, 1), "peak_rss_mb": round(peak_rss_mb())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/msa-hub-pickle-bench"))
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--step", default=None, help=argparse.SUPPRESS)
    options = parser.parse_args()
    pickle_path, cache = options.workdir / "unaligned_50.pkl", options.workdir / "cache"
    if options.step:
        print(json.dumps(measure(options.step, pickle_path, cache)))
        return
    options.workdir.mkdir(parents=True, exist_ok=True)
    if not pickle_path.exists():
        subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                        f"import pickle_vs_arrow_memory as b; from pathlib import Path; "
                        f"b.write_pickle(Path({str(pickle_path)!r}), {options.scale})"], check=True)
    rows = []
    baseline = json.loads(subprocess.run([sys.executable, "-c", "import sys, json; sys.path.insert(0, "
                                          f"{str(ROOT)!r}); import dataset_scripts; sys.path.insert(0, "
                                          f"{str(Path(__file__).parent)!r}); import process_memory as m; "
                                          "print(json.dumps(round(m.peak_rss_mb())))"],
                                         check=True, capture_output=True, text=True).stdout)
    shutil.rmtree(cache, ignore_errors=True)  # the first load must really convert
    for step in ("pickle.load", "convert to Arrow (first load)", "reopen Arrow (later loads)"):
        command = [sys.executable, __file__, "--workdir", str(options.workdir), "--step", step]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
    size_mb = pickle_path.stat().st_size / 2**20
    print(f"\nMMSA pickle {pickle_path.name}: {size_mb:,.0f} MB on disk, {rows[0]['rows']} samples; "
          f"importing dataset_scripts alone peaks at {baseline:,} MB\n")
    print("| step | peak RSS (MB) | seconds |\n|---|---|---|")
    for row in rows:
        print(f"| {row['step']} | {row['peak_rss_mb']:,} | {row['seconds']} |")


if __name__ == "__main__":
    main()
