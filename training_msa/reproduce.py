"""Reproduce a table of the papers: each row is a recipe trained over seeds (mean ± std), printed beside the
paper's own numbers.

    python -m training_msa.reproduce semi_iin mosi --data_dir mosi_features/dataset \\
        --unlabeled_data_dir ami_features/dataset [--seeds 1111 1112 1113 1114 1115] [--output_dir runs/reproduce]
    python -m training_msa.reproduce self_mm mosi --data_dir ~/data/MOSI -- --text_encoder ~/models/bert-base-uncased
    python -m training_msa.reproduce ablation mosei --data_dir ... --unlabeled_data_dir ...
    python -m training_msa.reproduce label_fraction mosi --data_dir ... --unlabeled_data_dir ...
    python -m training_msa.reproduce semi_iin synthetic --quick      # a smoke run on the embedded data

Tables: `semi_iin` (Semi-IIN Table 1), `self_mm` (MMSA's Self-MM row), `shared_private` (no published numbers),
`ablation` (Semi-IIN's MOSEI ablation: global / MA / Semi / MA+Semi and the dot / add / concat / gate fusions) and
`label_fraction` (Fig. 4: 1/8 ... all labels, with and without self-training). Every (row, seed) trains once into
`<output_dir>/<table>-<dataset>/<row>/seed-<seed>`; a rerun skips what is finished, and refuses seeds made from other
arguments or data (`training_msa.multiseed`). `table.json` names, per row, the seeds and the content hash of each data
split they were trained on. `--quick` trains one epoch with two seeds (on the embedded synthetic data when the dataset
is `synthetic`). Flags after `--` go to every train.py run.
"""

import argparse
import json
import sys
from pathlib import Path

from dataset_scripts.atomic_write import write_text_atomic

from .multiseed import run_seeds
from .run_fingerprint import RUN_FILE

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PAPER_SEEDS = [1111, 1112, 1113, 1114, 1115]
SELF_TRAINING = ["--self_training", "true"]
NO_SELF_TRAINING = ["--self_training", "false"]

# The papers' numbers, as the metric names of `compute_msa_metrics` (accuracies as fractions).
SEMI_IIN_TABLE_1 = {
    "mosi": {"MAE": 0.679, "Corr": 0.822, "Has0_acc_2": 0.8528, "Non0_acc_2": 0.8704, "Has0_F1_score": 0.8519,
             "Non0_F1_score": 0.8700, "Mult_acc_7": 0.4650},
    "mosei": {"MAE": 0.497, "Corr": 0.804, "Has0_acc_2": 0.8498, "Non0_acc_2": 0.8770, "Has0_F1_score": 0.8527,
              "Non0_F1_score": 0.8765, "Mult_acc_7": 0.5589},
}
MMSA_SELF_MM = {  # MMSA's results table, mean of seeds 1111-1115
    "mosi": {"MAE": 0.708, "Corr": 0.796, "Has0_acc_2": 0.8344, "Non0_acc_2": 0.8546, "Non0_F1_score": 0.8543,
             "Mult_acc_7": 0.4667},
    "mosei": {"MAE": 0.531, "Corr": 0.765, "Has0_acc_2": 0.8376, "Non0_acc_2": 0.8515, "Mult_acc_7": 0.5387},
    "sims": {"MAE": 0.425, "Corr": 0.595, "Mult_acc_2": 0.8004, "Mult_acc_3": 0.6547, "Mult_acc_5": 0.4153,
             "F1_score": 0.8044},
}
ABLATION_MOSEI = {  # Semi-IIN's ablation on MOSEI (MAE, Corr where given)
    "baseline (global, no semi)": {"MAE": 0.509, "Corr": 0.793},
    "MA only": {"MAE": 0.499, "Corr": 0.800},
    "Semi only (global + semi)": {"MAE": 0.507, "Corr": 0.792},
    "MA + Semi": {"MAE": 0.497, "Corr": 0.804},
    "fusion dot (MA only)": {"MAE": 0.506},
    "fusion add (MA only)": {"MAE": 0.512},
    "fusion concat (MA only)": {"MAE": 0.506},
    "fusion gate (MA only)": {"MAE": 0.499},
}
LABEL_FRACTION_MOSI = {"1/8 supervised": {"Non0_acc_2": 0.796}, "1/8 + semi": {"Non0_acc_2": 0.823}}


def table_rows(table: str, dataset: str) -> list[tuple[str, list[str], dict[str, float]]]:
    """(row name, train.py arguments, the paper's numbers) of `table` on `dataset`."""
    recipe = dataset if dataset in ("mosi", "mosei", "sims") else "mosi"
    if table == "semi_iin":
        return [("Semi-IIN", [str(CONFIGS / f"semi_iin_{recipe}.yaml")], SEMI_IIN_TABLE_1.get(dataset, {}))]
    if table in ("self_mm", "shared_private"):
        paper = MMSA_SELF_MM.get(dataset, {}) if table == "self_mm" else {}
        return [(table, [str(CONFIGS / f"{table}_{recipe}.yaml")], paper)]
    if table == "ablation":
        base = str(CONFIGS / f"semi_iin_{'mosei' if dataset != 'mosi' else 'mosi'}.yaml")
        paper = ABLATION_MOSEI if dataset in ("mosei", "synthetic") else {}
        rows = [
            ("baseline (global, no semi)", [base, "--attention_mode", "global", *NO_SELF_TRAINING]),
            ("MA only", [base, *NO_SELF_TRAINING]),
            ("Semi only (global + semi)", [base, "--attention_mode", "global", *SELF_TRAINING]),
            ("MA + Semi", [base, *SELF_TRAINING]),
        ] + [(f"fusion {mode} (MA only)", [base, "--fusion", mode, *NO_SELF_TRAINING])
             for mode in ("dot", "add", "concat", "gate")]
        return [(name, arguments, paper.get(name, {})) for name, arguments in rows]
    if table == "label_fraction":
        base = str(CONFIGS / f"semi_iin_{recipe}.yaml")
        paper = LABEL_FRACTION_MOSI if dataset in ("mosi", "synthetic") else {}
        rows = []
        for fraction, label in ((0.125, "1/8"), (0.25, "1/4"), (0.5, "1/2"), (0.75, "3/4"), (1.0, "all")):
            for semi, suffix in ((NO_SELF_TRAINING, "supervised"), (SELF_TRAINING, "+ semi")):
                name = f"{label} {suffix}"
                rows.append((name, [base, "--label_fraction", str(fraction), *semi], paper.get(name, {})))
        return rows
    raise SystemExit(f"Unknown table {table!r}: expected semi_iin, self_mm, shared_private, ablation or label_fraction.")


QUICK_SYNTHETIC = ["--dataset_name", "synthetic", "--metrics_profile", "synthetic", "--synthetic_num_train", "96",
                   "--synthetic_num_validation", "32", "--synthetic_num_test", "32", "--synthetic_num_unlabeled", "32",
                   "--synthetic_vision_length", "20", "--hidden_size", "16", "--num_attention_heads", "2",
                   "--intermediate_size", "32", "--pseudo_label_top_k", "4"]


def data_arguments(table: str, dataset: str, data_dir: str | None, unlabeled_dir: str | None, quick: bool) -> list[str]:
    if dataset == "synthetic":
        if not quick:
            raise SystemExit("The synthetic dataset is for --quick smoke runs; give a paper dataset and --data_dir.")
        # the synthetic data has precomputed text features, not BERT ids: no text encoder to fine-tune
        return list(QUICK_SYNTHETIC) + (["--text_encoder", ""] if table in ("self_mm", "shared_private") else [])
    if data_dir is None:
        raise SystemExit(f"--data_dir is required for {dataset} (the README's 'Reproducing the papers' lists the "
                         "extraction commands).")
    arguments = ["--data_dir", data_dir]
    if table in ("semi_iin", "ablation", "label_fraction"):
        if unlabeled_dir is None:
            raise SystemExit(f"Table {table} self-trains on AMI: pass --unlabeled_data_dir (AMI features extracted "
                             "with the same encoders).")
        arguments += ["--unlabeled_dataset", "ami", "--unlabeled_data_dir", unlabeled_dir]
    return arguments


def format_table(title: str, rows: list[tuple[str, dict, dict]]) -> str:
    """rows: (name, {metric: {"mean", "std"}}, paper {metric: value}); one line per (row, metric)."""
    lines = [title, f"{'row':<30} {'metric':<16} {'ours (mean ± std)':>20} {'paper':>8}", "-" * 78]
    for name, summary, paper in rows:
        metrics = [m for m in paper if m in summary] + [m for m in ("MAE", "Corr") if m in summary and m not in paper]
        for metric in metrics or sorted(summary)[:2]:
            ours = f"{summary[metric]['mean']:.4f} ± {summary[metric]['std']:.4f}" if metric in summary else "-"
            theirs = f"{paper[metric]:.4f}" if metric in paper else "-"
            lines.append(f"{name:<30} {metric:<16} {ours:>20} {theirs:>8}")
    return "\n".join(lines)


def reproduce(table: str, dataset: str, data_dir: str | None = None, unlabeled_dir: str | None = None,
              seeds: list[int] | None = None, output_dir: str = "runs/reproduce", quick: bool = False,
              extra: list[str] | None = None, runner=None) -> list[tuple[str, dict, dict]]:
    """Every row of `table` over `seeds` (see `run_seeds`; `runner` replaces the subprocess per seed)."""
    seeds = seeds or ([1, 2] if quick else PAPER_SEEDS)
    common = data_arguments(table, dataset, data_dir, unlabeled_dir, quick) + (["--num_train_epochs", "1"] if quick else [])
    root = Path(output_dir) / f"{table}-{dataset}"
    results, rows = [], []
    for name, arguments, paper in table_rows(table, dataset):
        folder = root / "".join(c if c.isalnum() else "_" for c in name).strip("_")
        report = run_seeds(seeds, [*arguments, *common, *(extra or []), "--output_dir", str(folder)], runner=runner)
        if report["failures"]:
            print(f"[reproduce] {name}: failed seeds {report['failures']}", flush=True)
        results.append((name, report["summary"], paper))
        rows.append({"row": name, "ours": report["summary"], "paper": paper, "seeds": sorted(report["results"]),
                     "failures": report["failures"], "data": trained_on(folder, report["results"])})
    write_text_atomic(root / "table.json", json.dumps(rows, indent=2))
    return results


def trained_on(folder: Path, finished: dict) -> dict[str, str]:
    """{split: content hash} of the data the row's finished seeds were trained on (their run records agree: a sweep
    refuses seeds made from other data)."""
    for seed in sorted(finished):
        record = folder / f"seed-{seed}" / RUN_FILE
        if record.is_file():
            splits = json.loads(record.read_text())["data"]["splits"]
            return {split: digest["content"] for split, digest in splits.items()}
    return {}


def main(argv: list[str] | None = None, runner=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", choices=("semi_iin", "self_mm", "shared_private", "ablation", "label_fraction"))
    parser.add_argument("dataset", choices=("mosi", "mosei", "sims", "synthetic"))
    parser.add_argument("--data_dir")
    parser.add_argument("--unlabeled_data_dir", help="AMI features (extract_features output/dataset)")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--output_dir", default="runs/reproduce")
    parser.add_argument("--quick", action="store_true", help="one epoch, two seeds (tiny data with 'synthetic')")
    options = parser.parse_args(argv[:split])
    results = reproduce(options.table, options.dataset, options.data_dir, options.unlabeled_data_dir, options.seeds,
                        options.output_dir, options.quick, argv[split + 1:], runner=runner)
    print("\n" + format_table(f"{options.table} on {options.dataset} (seeds: {options.seeds or 'default'})", results))


if __name__ == "__main__":
    main()
