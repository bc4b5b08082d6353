"""Peak memory of a Semi-IIN training step against the token count T, for both attention paths on CPU:
attention dropout 0.1 (SDPA's math kernel: a B×H×T×T mask and weights) and 0 (the fused flash kernel). One fresh
process per point (peak RSS, VmHWM), MOSI feature sizes, batch 32, T grown through the vision frames.

    python benchmarks/attention_memory.py [--vision 100 250 500 1000] [--batch 32]
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(vision: int, dropout: float, batch: int) -> dict:
    import torch

    sys.path[:0] = [str(HERE.parent), str(HERE)]
    import mfu
    from process_memory import peak_rss_mb

    shapes = {"text": (50, 768), "audio": (375, 5), "vision": (vision, 20)}
    model, optimizer = mfu.build(shapes, "cpu", attention_dropout=dropout)
    inputs = mfu.random_batch(shapes, batch, "cpu")
    before = peak_rss_mb()
    model(**inputs).loss.backward()
    optimizer.step()
    tokens = 2 + 50 + 375 // 8 + vision
    return {"vision": vision, "tokens": tokens, "dropout": dropout, "baseline_mb": before, "peak_mb": peak_rss_mb(),
            "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vision", type=int, nargs="+", default=[100, 250, 500, 1000])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--point", nargs=3, metavar=("VISION", "DROPOUT", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.point:
        print(json.dumps(measure(int(args.point[0]), float(args.point[1]), int(args.point[2]))))
        return
    print(f"batch {args.batch}, MOSI feature sizes, one process per point\n")
    print("| vision frames | T | peak MB, dropout 0.1 (math) | peak MB, dropout 0 (flash) | math / flash |")
    print("|---|---|---|---|---|")
    for vision in args.vision:
        peaks = {}
        for dropout in (0.1, 0.0):
            output = subprocess.run([sys.executable, __file__, "--point", str(vision), str(dropout), str(args.batch)],
                                    capture_output=True, text=True, check=True).stdout
            result = json.loads(output.strip().splitlines()[-1])
            peaks[dropout] = result["peak_mb"] - result["baseline_mb"]
            tokens = result["tokens"]
        print(f"| {vision} | {tokens} | {peaks[0.1]:.0f} | {peaks[0.0]:.0f} | {peaks[0.1] / peaks[0.0]:.2f}x |")


if __name__ == "__main__":
    main()
