"""The offline video default's scores on its five example clips and the getting-better clip's timeline, as
tests/test_video_demo.py trains it (by default 240/16/16 clips, 12 epochs; `--num_clips 240 60 60 --num_train_epochs
30` is `python -m training_msa.video_demo`'s own default): how close the test's bounds are on a given torch /
transformers stack or seed, and the wall time of the command.

    python benchmarks/video_demo_scores.py [--threads N] [--same_init] [--num_clips TRAIN VALID TEST]
                                           [--num_train_epochs E] [--seed S]

`--same_init`: `trunc_normal_` drawn alike on every torch (benchmarks/same_init_train.py).
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from same_init_train import trunc_normal_  # noqa: E402


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--same_init", action="store_true")
    parser.add_argument("--num_clips", nargs=3, default=["240", "16", "16"], metavar=("TRAIN", "VALID", "TEST"))
    parser.add_argument("--num_train_epochs", default="12")
    parser.add_argument("--seed", default="0")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.same_init:
        torch.nn.init.trunc_normal_ = trunc_normal_
    from transformers import pipeline

    from processing_msa import TASK
    from training_msa import video_demo

    with tempfile.TemporaryDirectory() as output:
        start = time.perf_counter()
        video_demo.main(["--output_dir", output, "--num_clips", *args.num_clips, "--num_train_epochs",
                         args.num_train_epochs, "--seed", args.seed])
        seconds = time.perf_counter() - start
        folder = Path(output) / "model"
        pipe = pipeline(TASK, model=str(folder), trust_remote_code=True)
        examples = json.loads((folder / "examples" / "examples.json").read_text())
        scores = {item["video"]: round(pipe(str(folder / "examples" / item["video"]), text=item["text"])["score"], 3)
                  for item in examples}
        better = next(item for item in examples if item["video"] == "getting-better.mp4")
        timeline = pipe(str(folder / "examples" / better["video"]), text=better["text"], window_seconds=3.0)["timeline"]
        scores["getting-better.mp4, last - first window"] = round(timeline[-1]["score"] - timeline[0]["score"], 3)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, clips {'/'.join(args.num_clips)}, "
          f"{args.num_train_epochs} epochs, seed {args.seed}, video_demo {seconds:.1f} s: {scores}")
    return scores


if __name__ == "__main__":
    main()
