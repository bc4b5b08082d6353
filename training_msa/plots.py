"""Pictures of a training run: learning curves, predicted vs true intensity, the 7-class confusion matrix and (for
Semi-IIN) the distribution of gate values. Written as PNG files (matplotlib, no display needed)."""

import logging
import math
from pathlib import Path

import numpy as np
import torch

from dataset_scripts.atomic_write import atomic_path

logger = logging.getLogger(__name__)
CLASS_NAMES = ("-3", "-2", "-1", "0", "1", "2", "3")


def _figure(width: float = 5.0, height: float = 4.0):
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, safe in threads and servers

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(figure, path: Path) -> Path:
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    return path


def learning_curves(log_history: list[dict], path: Path, metric: str = "MAE") -> Path | None:
    """Training loss, validation loss and validation `metric` against the optimizer step."""
    train = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry and "step" in entry]
    evals = [entry for entry in log_history if "eval_loss" in entry and "step" in entry]
    if not train and not evals:
        return None
    figure = _figure(9.0, 3.6)
    loss_axis, metric_axis = figure.subplots(1, 2)
    if train:
        loss_axis.plot(*zip(*train), label="training loss", color="tab:blue")
    if evals:
        loss_axis.plot([e["step"] for e in evals], [e["eval_loss"] for e in evals], "o-", label="validation loss",
                       color="tab:orange")
    loss_axis.set(xlabel="optimizer step", ylabel="loss", title="Loss")
    loss_axis.legend()
    key = f"eval_{metric}"
    points = [(e["step"], e[key]) for e in evals if key in e and math.isfinite(e[key])]
    if points:
        metric_axis.plot(*zip(*points), "o-", color="tab:green")
    metric_axis.set(xlabel="optimizer step", ylabel=metric, title=f"Validation {metric}")
    return _save(figure, path)


def predicted_vs_true(predictions: np.ndarray, labels: np.ndarray, path: Path) -> Path:
    """Scatter of predicted against true intensity, with the diagonal, MAE and Pearson r."""
    figure = _figure()
    axis = figure.subplots()
    axis.scatter(labels, predictions, s=12, alpha=0.6)
    axis.plot([-3, 3], [-3, 3], "--", color="gray", linewidth=1)
    mae = float(np.mean(np.abs(predictions - labels)))
    corr = float(np.corrcoef(predictions, labels)[0, 1]) if len(labels) > 1 and np.std(predictions) > 0 else float("nan")
    axis.set(xlim=(-3.2, 3.2), ylim=(-3.2, 3.2), xlabel="true intensity", ylabel="predicted intensity",
             title=f"Test set: MAE {mae:.3f}, r {corr:.3f} (n={len(labels)})")
    return _save(figure, path)


def confusion_matrix(predictions: np.ndarray, labels: np.ndarray, path: Path) -> Path:
    """7 x 7 counts of true vs predicted class, both rounded to the nearest integer in [-3, 3] (as Acc-7)."""
    truth = np.clip(np.round(labels), -3, 3).astype(int) + 3
    guess = np.clip(np.round(predictions), -3, 3).astype(int) + 3
    counts = np.zeros((7, 7), dtype=int)
    np.add.at(counts, (truth, guess), 1)
    figure = _figure(5.2, 4.4)
    axis = figure.subplots()
    image = axis.imshow(counts, cmap="Blues")
    for row in range(7):
        for col in range(7):
            if counts[row, col]:
                axis.text(col, row, str(counts[row, col]), ha="center", va="center",
                          color="white" if counts[row, col] > counts.max() / 2 else "black", fontsize=8)
    axis.set(xticks=range(7), yticks=range(7), xticklabels=CLASS_NAMES, yticklabels=CLASS_NAMES,
             xlabel="predicted class", ylabel="true class",
             title=f"Test set 7-class confusion (Acc-7 {np.trace(counts) / max(1, counts.sum()):.3f})")
    figure.colorbar(image, ax=axis, shrink=0.8)
    return _save(figure, path)


def gate_distribution(gate_values: np.ndarray, path: Path) -> Path:
    """Histograms of the gate G (weight of the InterMA branch) at the val and cls positions, every hidden unit of
    every test sample."""
    figure = _figure(7.0, 3.4)
    for axis, index, name in zip(figure.subplots(1, 2), (0, 1), ("val", "cls")):
        values = gate_values[:, index].reshape(-1)
        axis.hist(values, bins=40, range=(0, 1), color="tab:purple")
        axis.set(xlabel="gate value (0 = IntraMA, 1 = InterMA)", ylabel="count",
                 title=f"Gate at {name}: mean {values.mean():.3f}")
    return _save(figure, path)


@torch.no_grad()
def collect_test_outputs(model, dataset, collator, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Intensity predictions, labels and (when the model has them) gate values over `dataset`, in one pass."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collator)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    scores, labels, gates = [], [], []
    try:
        for batch in loader:
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            batch_labels = batch.pop("labels", None)
            output = model(**{k: v for k, v in batch.items() if k not in ("emotion_labels", "pseudo_label_mask")})
            scores.append(output.logits.float().cpu())
            if batch_labels is not None:
                labels.append(batch_labels.float().cpu())
            gate = getattr(output, "gate_values", None)
            if gate is not None:
                gates.append(gate.float().cpu())
    finally:
        model.train(was_training)
    result = {"predictions": torch.cat(scores).numpy().reshape(-1)}
    if labels:
        result["labels"] = torch.cat(labels).numpy().reshape(-1)
    if gates:
        result["gate_values"] = torch.cat(gates).numpy()
    return result


def write_training_plots(folder: str | Path, log_history: list[dict], outputs: dict[str, np.ndarray] | None = None,
                         metric: str = "MAE") -> list[Path]:
    """Every picture that the run's data allow, into `folder`; returns the files written. A plotting failure is
    logged, never fatal to the run that has just trained."""
    folder = Path(folder)
    written = []
    try:
        curves = learning_curves(log_history, folder / "learning_curves.png", metric)
        written += [curves] if curves else []
        if outputs is not None and "labels" in outputs and len(outputs["labels"]):
            written.append(predicted_vs_true(outputs["predictions"], outputs["labels"], folder / "predicted_vs_true.png"))
            written.append(confusion_matrix(outputs["predictions"], outputs["labels"], folder / "confusion_matrix.png"))
        if outputs is not None and "gate_values" in outputs:
            written.append(gate_distribution(outputs["gate_values"], folder / "gate_values.png"))
    except ImportError:
        logger.warning("No training plots: matplotlib is not installed (pip install matplotlib).")
    except (ValueError, RuntimeError, OSError) as error:
        logger.warning("Training plots were not all written (%s: %s).", type(error).__name__, error)
    return written


__all__ = ["collect_test_outputs", "confusion_matrix", "gate_distribution", "learning_curves", "predicted_vs_true",
           "write_training_plots"]
