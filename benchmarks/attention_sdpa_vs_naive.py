"""Masked self-attention: SDPA with an additive mask (what Semi-IIN uses) vs a naive float-mask softmax.

Times forward+backward of one attention call at Semi-IIN's width (4 heads x 32) and sequence lengths
T = 250..1000 with the InterMA mask, and reads each implementation's peak memory in a fresh process.

    python benchmarks/attention_sdpa_vs_naive.py
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from process_memory import peak_rss_mb  # noqa: E402
from modeling_msa import build_interaction_masks  # noqa: E402


def naive_attention(q, k, v, mask):
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5 + mask
    return scores.softmax(-1) @ v


def run(implementation: str, length: int, batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    third = (length - 2) // 3
    _, inter = build_interaction_masks(third, third, length - 2 - 2 * third)
    mask = torch.zeros(inter.shape).masked_fill_(~inter, float("-inf"))[None, None]
    q, k, v = (torch.randn(batch, 4, length, 32, requires_grad=True) for _ in range(3))
    function = F.scaled_dot_product_attention if implementation == "sdpa" else naive_attention
    times = []
    for index in range(repeats + 1):
        started = time.perf_counter()
        output = function(q, k, v, mask) if implementation == "naive" else function(q, k, v, attn_mask=mask)
        output.sum().backward()
        if index:  # the first call warms up
            times.append(time.perf_counter() - started)
    peak = peak_rss_mb()
    return {"ms": 1000 * sorted(times)[len(times) // 2], "peak_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[250, 500, 1000])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--one", nargs=2, default=None, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.one:
        print(json.dumps(run(options.one[0], int(options.one[1]), options.batch, options.repeats)))
        return
    print(f"\nMasked attention fwd+bwd, batch {options.batch}, 4 heads x 32, InterMA mask, "
          f"{torch.get_num_threads()} threads, median of {options.repeats}\n")
    print("| T | SDPA ms | naive ms | speed-up | SDPA peak MB | naive peak MB |\n|---|---|---|---|---|---|")
    for length in options.lengths:
        result = {}
        for implementation in ("sdpa", "naive"):
            command = [sys.executable, __file__, "--one", implementation, str(length), "--batch", str(options.batch),
                       "--repeats", str(options.repeats)]
            result[implementation] = json.loads(subprocess.run(command, check=True, capture_output=True,
                                                               text=True).stdout.strip().splitlines()[-1])
        sdpa, naive = result["sdpa"], result["naive"]
        print(f"| {length} | {sdpa['ms']:.1f} | {naive['ms']:.1f} | {naive['ms'] / sdpa['ms']:.2f}x | "
              f"{sdpa['peak_mb']:.0f} | {naive['peak_mb']:.0f} |")


if __name__ == "__main__":
    main()
