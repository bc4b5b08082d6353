"""Supervised vs self-trained Semi-IIN on the synthetic task, at several label fractions and seeds.

For each (fraction, seed): stage 0 trains on `fraction` of the labelled set (the supervised baseline),
stage 1 adds the per-class top-k pseudo-labelled unlabelled samples and retrains (Semi-IIN Algorithm 1).
Prints a markdown table of test metrics, mean ± std over seeds, and writes every run to --json.

    python benchmarks/self_training.py --seeds 0 1 2 --fractions 0.125 1.0
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset_scripts import SyntheticMSAConfig, make_synthetic_dataset  # noqa: E402
from modeling_msa import MODALITIES, SemiIINConfig, SemiIINForSentimentAnalysis  # noqa: E402
from training_msa import MSATrainingArguments  # noqa: E402
from training_msa.self_training import SelfTrainingArguments, run_self_training  # noqa: E402

METRICS = ("MAE", "Corr", "Has0_acc_2", "Non0_acc_2", "Mult_acc_7")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.125, 1.0])
    parser.add_argument("--top-k", type=int, default=40)
    parser.add_argument("--epochs", type=float, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--num-train", type=int, default=800)
    parser.add_argument("--num-unlabeled", type=int, default=800)
    parser.add_argument("--vision-length", type=int, default=50)
    parser.add_argument("--json", type=Path, default=None)
    return parser.parse_args()


def main() -> None:
    options = parse()
    torch.set_num_threads(2)
    data = make_synthetic_dataset(SyntheticMSAConfig(
        num_train=options.num_train, num_validation=200, num_test=400, num_unlabeled=options.num_unlabeled,
        vision_length=options.vision_length,
    ))
    dims = {f"{m}_feature_size": data["train"].features[f"{m}_features"].shape[-1] for m in MODALITIES}
    runs = []
    for fraction in options.fractions:
        for seed in options.seeds:
            def build_model(seed=seed):
                torch.manual_seed(seed)
                return SemiIINForSentimentAnalysis(SemiIINConfig(
                    **dims, max_audio_tokens=47, max_text_tokens=50, max_vision_tokens=options.vision_length,
                ))

            started = time.time()
            with tempfile.TemporaryDirectory() as output:
                args = MSATrainingArguments(
                    output_dir=output, num_train_epochs=options.epochs, learning_rate=options.learning_rate,
                    eval_strategy="epoch", save_strategy="epoch", save_total_limit=1, load_best_model_at_end=True,
                    metric_for_best_model="MAE", greater_is_better=False, metrics_profile="synthetic",
                    disable_tqdm=True, seed=seed, logging_strategy="no",
                )
                results = run_self_training(
                    build_model, data["train"], data["unlabeled"], args,
                    SelfTrainingArguments(self_training=True, pseudo_label_top_k=options.top_k,
                                          label_fraction=fraction, label_fraction_seed=seed),
                    eval_dataset=data["validation"], test_dataset=data["test"],
                )
            runs.append({
                "fraction": fraction, "seed": seed, "seconds": round(time.time() - started, 1),
                "supervised": results[0].test_metrics, "self_trained": results[1].test_metrics,
                "pseudo_label_counts": results[1].pseudo_label_counts,
            })
            print(json.dumps(runs[-1]), flush=True)
    if options.json:
        options.json.write_text(json.dumps({"options": vars(options) | {"json": str(options.json)}, "runs": runs}, indent=2))
    print_table(runs, options)


def print_table(runs: list[dict], options) -> None:
    print(f"\nSemi-IIN on synthetic MOSI-shaped data: test metrics, mean ± std over seeds {options.seeds}, "
          f"top-k {options.top_k} per class, {options.num_unlabeled} unlabelled samples\n")
    print("| labelled fraction | training | " + " | ".join(METRICS) + " |")
    print("|---|---|" + "---|" * len(METRICS))
    for fraction in options.fractions:
        for stage in ("supervised", "self_trained"):
            cells = []
            for metric in METRICS:
                values = [r[stage][metric] for r in runs if r["fraction"] == fraction]
                spread = statistics.stdev(values) if len(values) > 1 else 0.0
                cells.append(f"{statistics.mean(values):.3f} ± {spread:.3f}")
            print(f"| {fraction:g} | {stage.replace('_', '-')} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
