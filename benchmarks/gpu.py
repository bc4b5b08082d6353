"""One short command for a lent GPU: throughput in fp32 / TF32 / bf16, a full 30-epoch MOSI-sized Semi-IIN run
at the paper's shapes (the paper: 90 s on an A100; goal <= 9 s), Self-MM with BERT-base fine-tuning, the video
pipeline's real-time factor with paper-size encoders, and the MFU of a Semi-IIN step. Prints one table.

    python benchmarks/gpu.py              # on the GPU (cuda), full sizes; about 5 minutes on an A100-class GPU
    python benchmarks/gpu.py --dry-run    # on the CPU, tiny sizes, a few steps: checks the script (run in CI)

Random weights and random features of the real shapes: these are speed figures, not accuracy figures.
"""

import argparse
import contextlib
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
import mfu  # noqa: E402

from modeling_msa import (  # noqa: E402
    FaceCNNConfig,
    SemiIINConfig,
    SemiIINForSentimentAnalysis,
    SharedPrivateConfig,
    SharedPrivateForSentimentAnalysis,
)

MOSI_TRAIN_CLIPS = 1284  # MOSI's standard train fold
PAPER_SECONDS = 90.0  # Semi-IIN's 30 MOSI epochs on an A100 (paper)
BERT_BASE = dict(model_type="bert", hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072)
TINY_BERT = dict(model_type="bert", hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
LARGE_TEXT = dict(model_type="roberta", hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                  intermediate_size=4096, vocab_size=50265, max_position_embeddings=514, pad_token_id=1)
LARGE_AUDIO = dict(model_type="hubert", hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                   intermediate_size=4096, feat_extract_norm="layer", do_stable_layer_norm=True)
TINY_AUDIO = dict(model_type="hubert", hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                  conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2), num_conv_pos_embeddings=16,
                  num_conv_pos_embedding_groups=2, feat_extract_norm="layer", do_stable_layer_norm=True)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def precision_context(precision: str, device: str):
    """fp32, tf32 (TF32 matmuls and convolutions) or bf16 (autocast)."""
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
    if precision == "bf16":
        return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
    return contextlib.nullcontext()


def bf16_lstm_works(device: str) -> bool:
    """Whether an LSTM runs under bf16 autocast here (oneDNN refuses it on CPUs without native bf16, e.g. AVX2)."""
    try:
        with precision_context("bf16", device):
            torch.nn.LSTM(4, 4, batch_first=True).to(device)(torch.randn(1, 2, 4, device=device))
    except RuntimeError:
        return False
    return True


def train_steps(model, inputs: dict, steps: int, device: str, precision: str) -> float:
    """Median seconds of a training step (forward, backward, Adam) after one warm-up step."""
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    times = []
    for index in range(steps + 1):
        synchronize(device)
        started = time.perf_counter()
        with precision_context(precision, device):
            loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        if index:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def semi_iin(shapes: dict, device: str):
    model, _ = mfu.build(shapes, device, attention_dropout=0.1)
    return model


def throughput_rows(args, shapes: dict) -> list[tuple[str, str, str]]:
    rows = []
    for precision in args.precisions:
        model = semi_iin(shapes, args.device)
        inputs = mfu.random_batch(shapes, args.batch, args.device)
        seconds = train_steps(model, inputs, args.steps, args.device, precision)
        rows.append((f"Semi-IIN training, {precision}", f"{args.batch / seconds:.1f} samples/s",
                     f"batch {args.batch}, {args.shapes_name} shapes, step {seconds * 1000:.1f} ms"))
    return rows


def full_run_row(args, shapes: dict) -> tuple[str, str, str]:
    """30 epochs over MOSI's train fold at batch 32 (steps timed, data already on the device)."""
    clips = MOSI_TRAIN_CLIPS if not args.dry_run else 2 * args.batch
    epochs = 30 if not args.dry_run else 2
    steps_per_epoch = math.ceil(clips / args.batch)
    model = semi_iin(shapes, args.device)
    inputs = mfu.random_batch(shapes, args.batch, args.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)
    precision = args.precisions[-1]
    synchronize(args.device)
    started = time.perf_counter()
    for _ in range(epochs * steps_per_epoch):
        with precision_context(precision, args.device):
            loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    synchronize(args.device)
    seconds = time.perf_counter() - started
    goal = "goal <= 9 s" if not args.dry_run else "dry run"
    return (f"Semi-IIN, {epochs} epochs x {clips} clips, {precision}", f"{seconds:.1f} s",
            f"paper: {PAPER_SECONDS:.0f} s on an A100; {goal}")


def self_mm_row(args) -> tuple[str, str, str]:
    text = TINY_BERT if args.dry_run else BERT_BASE
    config = SharedPrivateConfig.self_mm(text_input="input_ids", text_config=text, audio_feature_size=5,
                                         vision_feature_size=20)
    torch.manual_seed(0)
    model = SharedPrivateForSentimentAnalysis(config).to(args.device).train()
    model.validate_inputs = False
    length = 50
    inputs = {
        "input_ids": torch.randint(1000, 2000, (args.batch, length), device=args.device),
        "attention_mask": torch.ones(args.batch, length, dtype=torch.long, device=args.device),
        "audio_features": torch.randn(args.batch, 375, 5, device=args.device),
        "vision_features": torch.randn(args.batch, 500, 20, device=args.device),
        "labels": torch.empty(args.batch, device=args.device).uniform_(-3, 3),
    }
    precision = args.precisions[-1]
    note = ""
    if precision == "bf16" and not bf16_lstm_works(args.device):
        precision, note = "fp32", "; bf16 LSTMs unsupported on this CPU (oneDNN)"
    seconds = train_steps(model, inputs, args.steps, args.device, precision)
    name = "tiny BERT (dry run)" if args.dry_run else "BERT-base fine-tuned"
    return (f"Self-MM, {name}, {precision}", f"{args.batch / seconds:.1f} samples/s",
            f"batch {args.batch}, MOSI shapes (text 50 tokens){note}")


def video_rtf_row(args) -> tuple[str, str, str]:
    """Real-time factor (processing time / clip duration) of the pipeline on a generated clip."""
    from transformers import pipeline

    from dataset_scripts.synthetic_clips import planted_transcript, write_planted_clip
    from processing_msa import TASK, MSAProcessor
    from training_msa.video_demo import minilm_folder

    seconds = 2.0 if args.dry_run else 10.0
    text, audio = (TINY_BERT, TINY_AUDIO) if args.dry_run else (LARGE_TEXT, LARGE_AUDIO)
    vision = FaceCNNConfig(hidden_sizes=(8, 16), embedding_size=16) if args.dry_run else FaceCNNConfig()
    image_size = 32 if args.dry_run else 256
    config = SemiIINConfig(text_config={**text, "vocab_size": 30522, "max_position_embeddings": 512,
                                        "pad_token_id": 0}, audio_config=audio, vision_config=vision,
                           max_vision_tokens=512, max_audio_tokens=4096)
    model = SemiIINForSentimentAnalysis(config).eval()
    processor = MSAProcessor.from_encoders(text=minilm_folder(), image_size=image_size, fps=3, max_frames=512)
    pipe = pipeline(TASK, model=model, processor=processor, device=args.device)
    with tempfile.TemporaryDirectory() as folder:
        clip = write_planted_clip(Path(folder) / "clip.mp4", 1.0, 1.0, seconds=seconds, fps=8, size=image_size)
        pipe(str(clip), text=planted_transcript(1))  # warm-up
        times = []
        for _ in range(args.steps):
            synchronize(args.device)
            started = time.perf_counter()
            pipe(str(clip), text=planted_transcript(1))
            synchronize(args.device)
            times.append(time.perf_counter() - started)
    sizes = "tiny encoders (dry run)" if args.dry_run else "RoBERTa-large + HuBERT-large + FabNet-style CNN"
    return ("video pipeline real-time factor", f"{statistics.median(times) / seconds:.3f}",
            f"{seconds:.0f} s clip, {sizes}, fp32")


def mfu_rows(args, shapes_name: str) -> list[tuple[str, str, str]]:
    rows = mfu.main(["--shapes", shapes_name, "--batch", str(args.batch), "--steps", str(args.steps),
                     "--device", args.device, "--attention_dropout", "0.1", "--fast_cpu_dropout", "true"])
    return [(f"Semi-IIN MFU ({row['shapes']} shapes, fp32)", f"{100 * row['mfu']:.1f}%",
             f"{row['gflops']:.0f} GFLOP/s achieved") for row in rows]


def main(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, a few steps (what CI runs)")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None)
    args = parser.parse_args(argv)
    args.device = args.device or ("cpu" if args.dry_run or not torch.cuda.is_available() else "cuda")
    args.steps = args.steps or (1 if args.dry_run else 10)
    args.batch = args.batch or (4 if args.dry_run else 32)
    args.precisions = ["fp32", "bf16"] if args.dry_run or args.device == "cpu" else ["fp32", "tf32", "bf16"]
    if not args.dry_run and args.device == "cpu":
        print("No GPU: running the full sizes on the CPU (slow); --dry-run checks the script quickly.")
    shapes_name = args.shapes_name = "tiny" if args.dry_run else "official"
    if args.dry_run:
        mfu.SHAPES["tiny"] = {"text": (6, 16), "audio": (40, 8), "vision": (5, 8)}
    shapes = mfu.SHAPES[shapes_name]
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    rows = [*throughput_rows(args, shapes), full_run_row(args, shapes), self_mm_row(args), video_rtf_row(args),
            *mfu_rows(args, shapes_name)]
    print(f"\n{device_name}, torch {torch.__version__}{' (dry run)' if args.dry_run else ''}\n")
    print("| measurement | value | notes |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return rows


if __name__ == "__main__":
    main()
