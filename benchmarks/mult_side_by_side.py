"""Semi-IIN vs MMSA 2.2.1's MulT (the model a user would otherwise pick): training samples/s at the same input
shapes and batch, in one process, steps interleaved so that machine load hits both alike.

    python benchmarks/mult_side_by_side.py [--shapes mosi official] [--batch 16 32] [--steps 3]

MulT is MMSA's `MULT` with its MOSI hyper-parameters (config_regression.json: 4 levels, 50-d, 10 heads, its
dropouts) on precomputed text features (use_bert false, as Semi-IIN here); Semi-IIN is the paper recipe
(attention dropout 0.1). Both: forward, MSE loss on the intensity, backward, Adam. Needs `mmsa==2.2.1` (the
`reference` extra).
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]
import mfu  # noqa: E402


def mmsa_mult(shapes: dict):
    torch.cuda.set_device = lambda *args, **kwargs: None  # MMSA calls it on CPU too
    import MMSA
    from MMSA.models.singleTask.MULT import MULT

    config = json.loads((Path(MMSA.__file__).parent / "config" / "config_regression.json").read_text())["mult"]
    params = {**config["commonParams"], **config["datasetParams"]["mosi"]}
    args = SimpleNamespace(**params, feature_dims=[shapes["text"][1], shapes["audio"][1], shapes["vision"][1]],
                           num_classes=1, train_mode="regression", use_finetune=False)
    torch.manual_seed(0)
    return MULT(args).train()


def mult_step(model, optimizer, inputs) -> float:
    started = time.perf_counter()
    output = model(inputs["text_features"], inputs["audio_features"], inputs["vision_features"])["M"]
    torch.nn.functional.mse_loss(output.view(-1), inputs["labels"]).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=["mosi", "official"], choices=sorted(mfu.SHAPES))
    parser.add_argument("--batch", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args(argv)
    rows = []
    print(f"{torch.get_num_threads()} threads (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), "
          f"median of {args.steps} interleaved steps after a warm-up\n")
    print("| shapes | batch | MMSA MulT samples/s | Semi-IIN samples/s | Semi-IIN / MulT |\n|---|---|---|---|---|")
    for name in args.shapes:
        shapes = mfu.SHAPES[name]
        mult = mmsa_mult(shapes)
        mult_optimizer = torch.optim.Adam(mult.parameters(), lr=2e-3)
        semi, semi_optimizer = mfu.build(shapes, "cpu", attention_dropout=0.1)
        for batch in args.batch:
            inputs = mfu.random_batch(shapes, batch, "cpu")
            times = {"mult": [], "semi": []}
            for index in range(args.steps + 1):
                mult_time = mult_step(mult, mult_optimizer, inputs)
                semi_time = mfu.train_step(semi, semi_optimizer, inputs)
                if index:
                    times["mult"].append(mult_time)
                    times["semi"].append(semi_time)
            mult_rate = batch / statistics.median(times["mult"])
            semi_rate = batch / statistics.median(times["semi"])
            rows.append(dict(shapes=name, batch=batch, mult=mult_rate, semi_iin=semi_rate))
            print(f"| {name} | {batch} | {mult_rate:.1f} | {semi_rate:.1f} | {semi_rate / mult_rate:.2f}x |")
    return rows


if __name__ == "__main__":
    main()
