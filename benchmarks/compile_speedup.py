"""torch.compile (inductor) vs eager training steps on CPU, fixed shapes (pad batches to fixed lengths, e.g.
`MSADataCollator(pad_to_multiple_of=...)`, so one graph serves every batch). Reports the compile time of the first
step, and medians of eager and compiled steps, interleaved.

    python benchmarks/compile_speedup.py [--models semi_iin shared_private] [--steps 5] [--batch 32]

Semi-IIN compiles as one graph (`fullgraph=True` holds); the shared/private model's nn.LSTMs are not traced by
dynamo (a PyTorch limitation), so they run eagerly between compiled graphs.
"""

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]
import mfu  # noqa: E402
from modeling_msa import SharedPrivateConfig, SharedPrivateForSentimentAnalysis  # noqa: E402


def build(name: str, attention_dropout: float):
    if name == "semi_iin":
        shapes = mfu.SHAPES["default_job"]
        return mfu.build(shapes, "cpu", attention_dropout=attention_dropout)[0], shapes
    shapes = mfu.SHAPES["mosi"]
    torch.manual_seed(0)
    model = SharedPrivateForSentimentAnalysis(SharedPrivateConfig(
        text_input="features", text_feature_size=768, audio_feature_size=5, vision_feature_size=20)).train()
    model.validate_inputs = False
    return model, shapes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["semi_iin", "shared_private"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--attention_dropout", type=float, default=0.1, help="Semi-IIN's (the paper recipe and the default job: 0.1)")
    args = parser.parse_args(argv)
    print(f"{torch.get_num_threads()} threads, batch {args.batch}, median of {args.steps} interleaved steps\n")
    print("| model | shapes | compile (first step) s | eager step s | compiled step s | speed-up |\n|---|---|---|---|---|---|")
    for name in args.models:
        model, shapes = build(name, args.attention_dropout)
        inputs = mfu.random_batch(shapes, args.batch, "cpu")
        eager_optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        compiled = torch.compile(model, fullgraph=name == "semi_iin")
        mfu.train_step(model, eager_optimizer, inputs)  # eager warm-up
        compile_seconds = mfu.train_step(compiled, eager_optimizer, inputs)
        eager, fast = [], []
        for _ in range(args.steps):
            eager.append(mfu.train_step(model, eager_optimizer, inputs))
            fast.append(mfu.train_step(compiled, eager_optimizer, inputs))
        eager_median, fast_median = statistics.median(eager), statistics.median(fast)
        label = f"default job, attention dropout {args.attention_dropout}" if name == "semi_iin" else "mosi"
        print(f"| {name} | {label} | {compile_seconds:.0f} | {eager_median:.3f} | {fast_median:.3f} | "
              f"{eager_median / fast_median:.2f}x |")


if __name__ == "__main__":
    main()
