"""Model FLOPs utilisation of a Semi-IIN training step on this machine.

FLOPs of one step (forward + backward) are counted once: matmuls and convolutions by PyTorch's
`FlopCounterMode`, attention analytically (SDPA's CPU kernels are not counted by it): forward 4·B·H·Lq·Lk·D,
backward twice that. The step is then timed (median of --steps after a warm-up) and the achieved FLOP/s is
compared with the sustained FLOP/s of a large fp32 matmul measured in the same run, with the same threads.

    python benchmarks/mfu.py [--steps 3] [--threads N] [--shapes official mosi mosei] [--device cpu|cuda]
                             [--dropout_off [all input embedding attention residual relu]]
                             [--cpu_word_dropout true false] [--torch_compile false true] [--sequential]

The configurations' steps are interleaved (one step of each in turn, `--steps` rounds after a warm-up round), so
that the machine's drift hits them alike; `--sequential` times each configuration's steps in a row instead.
`--cpu_word_dropout true false`: each configuration with and without train.py's CPU word-dropout plug-in
(training_msa/cpu_dropout.py), a row each.

`--torch_compile false true`: each configuration eager and compiled (inductor, one graph; compiled in the warm-up
round, which is not timed; on a 2-core CPU 2-4 minutes per graph).

`--dropout_off KIND ...` adds, per shapes and plug-in value, a reference row for each KIND with that dropout
probability at 0 (the others at the paper's, attention dropout 0.1; `all`: every dropout 0). The FLOPs are the same, so the rows say how
much of the paper recipe's step each dropout takes. They are references, not recipes.
"""

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from modeling_msa import SemiIINConfig, SemiIINForSentimentAnalysis  # noqa: E402
from training_msa.cpu_dropout import apply_cpu_word_dropout  # noqa: E402

# (frames, dim) per modality. "official": the official code's features (RoBERTa-large text 100x1024, HuBERT-large
# audio 800x1024 downsampled x8 to 100 tokens, FabNet vision 50x256: T = 2 + 100 + 100 + 50 = 252).
SHAPES = {
    "official": {"text": (100, 1024), "audio": (800, 1024), "vision": (50, 256)},
    "mosi": {"text": (50, 768), "audio": (375, 5), "vision": (500, 20)},
    "mosei": {"text": (50, 768), "audio": (500, 74), "vision": (500, 35)},
    # train.py's embedded default job: MOSI feature sizes, 100 vision frames (EMBEDDED_SYNTHETIC_DEFAULTS)
    "default_job": {"text": (50, 768), "audio": (375, 5), "vision": (100, 20)},
}


# `--dropout_off`'s reference rows: the SemiIINConfig overrides of each kind (attention dropout is build's argument)
DROPOUT_OFF = {
    "all": dict(attention_dropout=0.0, input_dropout=0.0, embedding_dropout=0.0, residual_dropout=0.0,
                relu_dropout=0.0),
    "input": dict(input_dropout=0.0), "embedding": dict(embedding_dropout=0.0),
    "attention": dict(attention_dropout=0.0), "residual": dict(residual_dropout=0.0), "relu": dict(relu_dropout=0.0),
}


def build(shapes: dict, device: str, attention_dropout: float, cpu_word_dropout: bool = False, **config_overrides):
    torch.manual_seed(0)
    audio_tokens = shapes["audio"][0] // 8 + 1
    config = SemiIINConfig(
        text_feature_size=shapes["text"][1], audio_feature_size=shapes["audio"][1],
        vision_feature_size=shapes["vision"][1], max_text_tokens=shapes["text"][0], max_audio_tokens=audio_tokens,
        max_vision_tokens=shapes["vision"][0], attention_dropout=attention_dropout, **config_overrides,
    )
    model = SemiIINForSentimentAnalysis(config).to(device).train()
    model.validate_inputs = False  # as under MSATrainer: no host sync for input checks
    if cpu_word_dropout:
        apply_cpu_word_dropout(model)
    return model, torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)


def random_batch(shapes: dict, batch: int, device: str) -> dict:
    generator = torch.Generator().manual_seed(0)
    inputs = {f"{m}_features": torch.randn(batch, n, d, generator=generator).to(device) for m, (n, d) in shapes.items()}
    inputs["labels"] = torch.empty(batch).uniform_(-3, 3, generator=generator).to(device)
    return inputs  # every frame real: the FLOPs are those of full-length clips


def count_step_flops(model, inputs) -> tuple[int, int]:
    """(matmul + conv FLOPs, attention FLOPs) of one forward + backward: the model's arithmetic, the same with
    and without dropout and on every device (dropout masks and elementwise ops are not counted)."""
    attention = 0
    original = F.scaled_dot_product_attention

    def counting(query, key, value, *args, **kwargs):
        nonlocal attention
        batch_heads = query.shape[:-2].numel()
        attention += 3 * 4 * batch_heads * query.shape[-2] * key.shape[-2] * query.shape[-1]  # fwd + 2x bwd
        return original(query, key, value, *args, **kwargs)

    F.scaled_dot_product_attention = counting
    model.eval()  # no dropout: SDPA takes a fused kernel the counter does not see (the math path's bmm it would)
    try:
        with FlopCounterMode(display=False) as counter:
            model(**inputs).loss.backward()
    finally:
        F.scaled_dot_product_attention = original
        model.train()
    model.zero_grad(set_to_none=True)
    # on CUDA the counter does see SDPA's fused kernels: count attention once (analytically, as on CPU)
    fused = sum(flops for op, flops in counter.get_flop_counts().get("Global", {}).items() if "attention" in str(op))
    return counter.get_total_flops() - fused, attention


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_flops_per_second(device: str, size: int = 2048, repeats: int = 5, dtype: torch.dtype = torch.float32,
                            warm_ups: int = 1) -> float:
    """FLOP/s of a square `size` matmul in `dtype`, median of `repeats` after `warm_ups`."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    for _ in range(warm_ups):
        a @ b
    synchronize(device)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        synchronize(device)
        times.append(time.perf_counter() - started)
    return 2 * size ** 3 / statistics.median(times)


def train_step(model, optimizer, inputs, device: str = "cpu") -> float:
    """Seconds of one training step: forward, loss, backward, optimizer step (shared by the benchmark scripts)."""
    synchronize(device)
    started = time.perf_counter()
    model(**inputs).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    synchronize(device)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=["official", "mosi", "mosei"], choices=sorted(SHAPES))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--attention_dropout", type=float, nargs="+", default=[0.1, 0.0])
    parser.add_argument("--cpu_word_dropout", choices=["true", "false"], nargs="+", default=["true", "false"],
                        help="with (true) and/or without (false) train.py's CPU word-dropout plug-in")
    parser.add_argument("--dropout_off", nargs="*", choices=sorted(DROPOUT_OFF), default=None, metavar="KIND",
                        help="also time each shapes with the KIND dropouts at 0 (references, not recipes); no KIND: "
                             f"all. KIND: {', '.join(DROPOUT_OFF)}")
    parser.add_argument("--torch_compile", nargs="+", choices=["false", "true"], default=["false"],
                        help="eager (false) and/or torch.compile'd (true, inductor, fullgraph) steps, a row each")
    parser.add_argument("--sequential", action="store_true",
                        help="time each configuration's steps in a row (default: interleaved rounds)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    peaks = [matmul_flops_per_second(args.device)]
    runs = [(name, dropout, fast == "true", None)
            for name, dropout, fast in itertools.product(args.shapes, args.attention_dropout, args.cpu_word_dropout)]
    if args.dropout_off is not None:  # `--dropout_off` alone: all
        runs += [(name, 0.1, fast == "true", kind) for name, fast, kind in
                 itertools.product(args.shapes, args.cpu_word_dropout, args.dropout_off or ["all"])]
    runs = [(*run, compiled == "true") for run in runs for compiled in args.torch_compile]
    inputs = {name: random_batch(SHAPES[name], args.batch, args.device) for name in args.shapes}
    rows, prepared = [], []
    for name, dropout, fast, kind, compiled in runs:
        shapes = SHAPES[name]
        overrides = {"attention_dropout": dropout, **DROPOUT_OFF.get(kind, {})}
        model, optimizer = build(shapes, args.device, cpu_word_dropout=fast, **overrides)
        dense, attention = count_step_flops(model, inputs[name])
        tokens = 2 + shapes["text"][0] + (shapes["audio"][0] // 8) + shapes["vision"][0]
        rows.append(dict(shapes=name, tokens=tokens, attention_dropout=overrides["attention_dropout"],
                         dropout_off=kind, cpu_word_dropout=fast, torch_compile=compiled,
                         dense_gflop=dense / 1e9, attention_gflop=attention / 1e9, times=[]))
        step_model = torch.compile(model, fullgraph=True) if compiled else model  # FLOPs: counted on the eager one
        prepared.append((step_model, optimizer, inputs[name]))
    if args.sequential:
        for row, (model, optimizer, batch) in zip(rows, prepared):
            peaks.append(matmul_flops_per_second(args.device))  # the machine's speed drifts: keep its best
            row["times"] = [train_step(model, optimizer, batch, args.device) for _ in range(args.steps + 1)][1:]
    else:
        for round_ in range(args.steps + 1):  # round 0: warm-up
            peaks.append(matmul_flops_per_second(args.device))
            for row, (model, optimizer, batch) in zip(rows, prepared):
                seconds = train_step(model, optimizer, batch, args.device)
                if round_:
                    row["times"].append(seconds)
    for row in rows:
        row["step_s"] = statistics.median(row.pop("times"))
        row["gflops"] = (row["dense_gflop"] + row["attention_gflop"]) / row["step_s"]
    peaks.append(matmul_flops_per_second(args.device))
    peak = max(peaks)
    print(f"device {args.device}, {torch.get_num_threads()} threads, batch {args.batch}; sustained fp32 matmul "
          f"(2048^3, best of {len(peaks)} measurements spread over the run): {peak / 1e9:.1f} GFLOP/s "
          f"(lowest {min(peaks) / 1e9:.1f})\n")
    print("| shapes | T | attention dropout | dropout at 0 | CPU word dropout | torch.compile "
          "| GFLOP/step (matmul+conv / attention) | step (s) | GFLOP/s | MFU |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        row["mfu"] = row["gflops"] * 1e9 / peak
        print(f"| {row['shapes']} | ~{row['tokens']} | {row['attention_dropout']} | {row['dropout_off'] or '-'} "
              f"| {str(row['cpu_word_dropout']).lower()} "
              f"| {str(row['torch_compile']).lower()} "
              f"| {row['dense_gflop']:.1f} / {row['attention_gflop']:.1f} | {row['step_s']:.3f} | {row['gflops']:.1f} | "
              f"{100 * row['mfu']:.1f}% |")
    return rows


if __name__ == "__main__":
    main()
