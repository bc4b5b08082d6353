"""Training throughput (samples/s) and peak memory of Semi-IIN and Self-MM/shared-private at MOSI and MOSEI
feature shapes: full training steps (forward, backward, Adam) on random padded batches, one fresh process per
configuration.

    python benchmarks/training_throughput.py
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from process_memory import peak_rss_mb  # noqa: E402
from modeling_msa import (  # noqa: E402
    MODALITIES,
    SemiIINConfig,
    SemiIINForSentimentAnalysis,
    SharedPrivateConfig,
    SharedPrivateForSentimentAnalysis,
)

SHAPES = {  # (frames, dim) of text, audio, vision in MMSA's unaligned_50 pickles
    "mosi": {"text": (50, 768), "audio": (375, 5), "vision": (500, 20)},
    "mosei": {"text": (50, 768), "audio": (500, 74), "vision": (500, 35)},
}


def build(model: str, shapes: dict):
    dims = {f"{m}_feature_size": shapes[m][1] for m in MODALITIES}
    if model == "semi_iin":
        return SemiIINForSentimentAnalysis(SemiIINConfig(
            **dims, max_audio_tokens=64, max_text_tokens=50, max_vision_tokens=500))
    factory = SharedPrivateConfig.self_mm if model == "self_mm" else SharedPrivateConfig
    return SharedPrivateForSentimentAnalysis(factory(text_input="features", **dims))


def run(model_name: str, dataset: str, batch: int, steps: int) -> dict:
    torch.manual_seed(0)
    shapes = SHAPES[dataset]
    model = build(model_name, shapes).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    inputs = {}
    for modality, (frames, dim) in shapes.items():
        inputs[f"{modality}_features"] = torch.randn(batch, frames, dim)
        mask = torch.ones(batch, frames, dtype=torch.long)
        mask[batch // 2 :, frames * 3 // 4 :] = 0  # half the batch is padded
        inputs[f"{modality}_attention_mask"] = mask
    inputs["labels"] = torch.empty(batch).uniform_(-3, 3)
    times = []
    for index in range(steps + 1):
        started = time.perf_counter()
        model(**inputs).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if index:
            times.append(time.perf_counter() - started)
    peak = peak_rss_mb()
    median = sorted(times)[len(times) // 2]
    return {"samples_per_s": batch / median, "step_s": median, "peak_mb": peak,
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["semi_iin", "self_mm", "shared_private"])
    parser.add_argument("--datasets", nargs="+", default=["mosi", "mosei"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--one", nargs=2, default=None, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.one:
        print(json.dumps(run(options.one[0], options.one[1], options.batch, options.steps)))
        return
    print(f"\nTraining steps on CPU ({torch.get_num_threads()} threads), batch {options.batch}, median of "
          f"{options.steps} steps after one warm-up\n")
    print("| model | shapes | params (M) | step (s) | samples/s | peak RSS (MB) |\n|---|---|---|---|---|---|")
    for model in options.models:
        for dataset in options.datasets:
            command = [sys.executable, __file__, "--one", model, dataset, "--batch", str(options.batch),
                       "--steps", str(options.steps)]
            result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True)
                                .stdout.strip().splitlines()[-1])
            print(f"| {model} | {dataset} | {result['params_m']:.2f} | {result['step_s']:.2f} | "
                  f"{result['samples_per_s']:.1f} | {result['peak_mb']:.0f} |")


if __name__ == "__main__":
    main()
