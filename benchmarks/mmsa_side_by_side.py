"""Self-MM training throughput: MMSA 2.2.1 vs this project, same MOSI-shaped synthetic pickle, same tiny BERT,
same machine, batch 16 (MMSA's MOSI setting), training + per-epoch validation timed on both sides.

    python -m venv /tmp/mmsa_venv && /tmp/mmsa_venv/bin/pip install "torch==2.13.0" "transformers<5" mmsa==2.2.1
    python benchmarks/mmsa_side_by_side.py --mmsa-python /tmp/mmsa_venv/bin/python [--epochs 3]

MMSA runs in its own venv (it needs transformers 4); `benchmarks/mmsa_driver.py` patches `torch.cuda.set_device`
to a no-op, counts Adam steps and times `SELF_MM.do_train`. This project runs `train.py --model self_mm` and
reports Trainer's train_runtime (which includes the per-epoch evaluation too).
"""

import argparse
import ast
import json
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SPLITS = {"train": 1284, "valid": 229, "test": 686}  # CMU-MOSI
SHAPES = {"text": 50, "audio": (375, 5), "vision": (500, 20)}  # MMSA unaligned_50


def write_pickle(path: Path, seed: int = 0) -> None:
    """A MOSI-shaped MMSA pickle whose label depends on the features (so both sides learn something)."""
    rng = np.random.default_rng(seed)
    data = {}
    for split, count in SPLITS.items():
        audio = rng.standard_normal((count, *SHAPES["audio"])).astype(np.float32)
        vision = rng.standard_normal((count, *SHAPES["vision"])).astype(np.float32)
        audio_lengths = rng.integers(50, SHAPES["audio"][0] + 1, count)
        vision_lengths = rng.integers(50, SHAPES["vision"][0] + 1, count)
        text_bert = np.zeros((count, 3, SHAPES["text"]), dtype=np.int64)
        text_lengths = rng.integers(8, SHAPES["text"] + 1, count)
        for row in range(count):
            audio[row, audio_lengths[row]:] = 0
            vision[row, vision_lengths[row]:] = 0
            text_bert[row, 0, : text_lengths[row]] = rng.integers(1000, 30000, text_lengths[row])
            text_bert[row, 1, : text_lengths[row]] = 1
        signal = audio[:, :50, 0].mean(1) * 6 + vision[:, :50, 0].mean(1) * 6 + (text_bert[:, 0, 1] % 7 - 3) * 0.3
        labels = np.clip(signal, -3, 3).astype(np.float32)
        data[split] = {
            "id": np.array([f"v{i // 10}$_${i % 10}" for i in range(count)], dtype=object),
            "raw_text": np.array(["synthetic"] * count, dtype=object),
            "text": np.zeros((count, SHAPES["text"], 768), dtype=np.float32),
            "text_bert": text_bert, "audio": audio, "vision": vision,
            "audio_lengths": [int(x) for x in audio_lengths], "vision_lengths": [int(x) for x in vision_lengths],
            "annotations": np.array(["Neutral"] * count, dtype=object),
            "classification_labels": np.zeros(count, dtype=np.float32),
            "regression_labels": labels,
        }
    with path.open("wb") as handle:
        pickle.dump(data, handle, protocol=4)


def write_tiny_bert(path: Path, hidden: int = 128, layers: int = 2) -> None:
    """A randomly initialised small BERT + the BERT uncased vocabulary (MiniLM's, shipped offline)."""
    import torch
    from transformers import BertConfig, BertModel

    sys.path.insert(0, str(ROOT / "tests"))
    from encoders import minilm_path

    torch.manual_seed(0)
    BertModel(BertConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                         intermediate_size=4 * hidden)).save_pretrained(path)
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(Path(minilm_path()) / name, path / name)


def run_mmsa(python: str, pickle_path: Path, bert: Path, work: Path, early_stop: int, threads: int) -> dict:
    result = subprocess.run([python, str(ROOT / "benchmarks" / "mmsa_driver.py"), str(pickle_path), str(bert),
                             str(work / "mmsa"), str(early_stop), str(threads)],
                            capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise SystemExit(f"MMSA run failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_ours(pickle_path: Path, bert: Path, work: Path, epochs: int, threads: int) -> dict:
    argv = [sys.executable, str(ROOT / "train.py"), "--model", "self_mm", "--dataset_name", "mosi",
            "--data_dir", str(pickle_path), "--dataset_cache_dir", str(work / "cache"), "--text_encoder", str(bert),
            "--num_train_epochs", str(epochs), "--per_device_train_batch_size", "16", "--eval_strategy", "epoch",
            "--save_strategy", "no", "--load_best_model_at_end", "false", "--output_dir", str(work / "ours"),
            "--disable_tqdm", "true", "--logging_strategy", "no", "--dataloader_num_workers", "0"]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": str(threads)}
    result = subprocess.run(argv, capture_output=True, text=True, timeout=3600, cwd=work, env=env)
    if result.returncode != 0:
        raise SystemExit(f"train.py failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    logs = [ast.literal_eval(m) for m in re.findall(r"^(\{'train_runtime'.*\})$", result.stdout, re.M)]
    if not logs:
        raise SystemExit(f"no train_runtime in train.py output:\n{result.stdout[-3000:]}")
    runtime, steps_per_second = float(logs[-1]["train_runtime"]), float(logs[-1]["train_steps_per_second"])
    batches = round(runtime * steps_per_second)  # one optimizer step per batch here
    return {"steps": batches, "batches": batches, "samples": epochs * SPLITS["train"], "epochs": epochs,
            "train_seconds": runtime, "batches_per_second": batches / runtime,
            "samples_per_second": epochs * SPLITS["train"] / runtime}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mmsa-python", required=True, help="python of a venv with mmsa==2.2.1 installed")
    parser.add_argument("--epochs", type=int, default=3, help="our epochs; MMSA runs early_stop=epochs-1 (>= epochs)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", default=None, help="keep the work folder here")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run ours, MMSA, ours, ... (each round adds one MMSA and one msa-hub run, ours "
                             "bracketing MMSA's) and compare medians: the machine's speed drifts between runs")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="mmsa_vs_msahub."))
    work.mkdir(parents=True, exist_ok=True)
    pickle_path, bert = work / "mosi_shaped.pkl", work / "tiny_bert"
    write_pickle(pickle_path)
    write_tiny_bert(bert)
    ours_runs, mmsa_runs = [], []
    if args.rounds > 1:
        ours_runs.append(run_ours(pickle_path, bert, work, args.epochs, args.threads))
    for _ in range(args.rounds):
        mmsa_runs.append(run_mmsa(args.mmsa_python, pickle_path, bert, work, max(1, args.epochs - 1), args.threads))
        ours_runs.append(run_ours(pickle_path, bert, work, args.epochs, args.threads))
    for name, runs in (("MMSA", mmsa_runs), ("msa-hub", ours_runs)):
        print(f"{name} batches/s per run: " + ", ".join(f"{run['batches_per_second']:.2f}" for run in runs))

    def median_run(runs: list[dict]) -> dict:
        return sorted(runs, key=lambda run: run["batches_per_second"])[len(runs) // 2]

    mmsa, ours = median_run(mmsa_runs), median_run(ours_runs)
    print(f"Self-MM on a MOSI-shaped synthetic pickle ({SPLITS}), tiny BERT (128 wide, 2 layers), batch 16, "
          f"{args.threads} threads")
    print("| implementation | epochs | batches | optimizer steps | train + per-epoch validation (s) | batches/s | "
          "samples/s |")
    print("|---|---|---|---|---|---|---|")
    for name, row in (("MMSA 2.2.1", mmsa), ("msa-hub", ours)):
        print(f"| {name} | {row['epochs']} | {row['batches']} | {row['steps']} | {row['train_seconds']:.1f} | "
              f"{row['batches_per_second']:.2f} | {row['samples_per_second']:.1f} |")
    print(f"\nratio msa-hub / MMSA, batches (training steps of batch 16) per second: "
          f"{ours['batches_per_second'] / mmsa['batches_per_second']:.2f}x")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
