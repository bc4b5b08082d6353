"""The offline video default's scores on its five example clips, as tests/test_video_demo.py trains it (64/16/16
clips, 12 epochs): how close the test's bounds are on a given torch / transformers stack.

    python benchmarks/video_demo_scores.py [--threads N] [--same_init]

`--same_init`: `trunc_normal_` drawn alike on every torch (benchmarks/same_init_train.py).
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from same_init_train import trunc_normal_  # noqa: E402


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--same_init", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.same_init:
        torch.nn.init.trunc_normal_ = trunc_normal_
    from transformers import pipeline

    from processing_msa import TASK
    from training_msa import video_demo

    with tempfile.TemporaryDirectory() as output:
        video_demo.main(["--output_dir", output, "--num_clips", "64", "16", "16", "--num_train_epochs", "12"])
        folder = Path(output) / "model"
        pipe = pipeline(TASK, model=str(folder), trust_remote_code=True)
        examples = json.loads((folder / "examples" / "examples.json").read_text())
        scores = {item["video"]: round(pipe(str(folder / "examples" / item["video"]), text=item["text"])["score"], 3)
                  for item in examples}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads: {scores}")
    return scores


if __name__ == "__main__":
    main()
