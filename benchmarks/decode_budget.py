"""Issue #33: peak RSS of a 4K clip through the processor with the decoding budget off (as before) and on, and how
long pathological requests take to be refused. Each case runs in its own process (peak RSS = ru_maxrss).

    python benchmarks/decode_budget.py [--seconds 20]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from media import write_4k_clip  # noqa: E402  (the tests' clip writer)
CASE = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r})
from training_msa.video_demo import minilm_folder
from processing_msa import MSAProcessor
processor = MSAProcessor.from_encoders(text=minilm_folder(), image_size=224, fps=3, max_frames=64)
started = time.perf_counter()
try:
    batch = processor(text="a clip", videos={clip!r})
    outcome = "decoded, pixel_values " + "x".join(map(str, batch["pixel_values"].shape))
except Exception as error:
    outcome = "refused: " + str(error).split(": ", 1)[-1][:90]
print(json.dumps({{"seconds": time.perf_counter() - started, "peak_rss_mib": resource.getrusage(
    resource.RUSAGE_SELF).ru_maxrss / 1024, "outcome": outcome}}))
"""
REQUESTS = r"""
import json, sys, time
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
import torch
from encoders import tiny_pipeline_model, tiny_processor
from media import write_clip
from pathlib import Path
from transformers import pipeline
from processing_msa import TASK
pipe = pipeline(TASK, model=tiny_pipeline_model(), processor=tiny_processor())
clip = str(write_clip(Path({folder!r}) / "clip.mp4", seconds=2.0))
rows = {{}}
for name, call in (
    ("20 MB transcript", lambda: pipe(clip, text="word " * 4_000_000)),
    ("stride 0.001 s", lambda: pipe(clip, text="x", window_seconds=1.0, stride_seconds=0.001)),
    ("4K clip above the budget", lambda: pipe({clip4k!r}, text="x")),
):
    started = time.perf_counter()
    try:
        result = call()
        outcome = result.get("error", "answered")[:80] if isinstance(result, dict) else "answered"
    except ValueError as error:
        outcome = str(error)[:80]
    rows[name] = {{"seconds": time.perf_counter() - started, "outcome": outcome}}
print(json.dumps(rows))
"""


def run(script: str, env: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, **env}, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the 4K clip")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        clip = write_4k_clip(Path(folder) / "black-4k.mp4", args.seconds)
        print(f"4K clip: {args.seconds:g} s, {clip.stat().st_size / 1024:.0f} KiB on disk\n")
        print("| decoding budget | peak RSS (MiB) | seconds | outcome |\n|---|---|---|---|")
        for name, env in (("off (as before #33: full-resolution frames)",
                           {"MSA_MAX_FRAME_SIDE": "100000", "MSA_MAX_DECODED_MB": "1000000"}),
                          ("default (640 px frames, 1 GiB)", {}),
                          ("MSA_MAX_DECODED_MB=8", {"MSA_MAX_DECODED_MB": "8"})):
            row = run(CASE.format(root=str(ROOT), clip=str(clip)), env)
            print(f"| {name} | {row['peak_rss_mib']:.0f} | {row['seconds']:.2f} | {row['outcome']} |")
        rows = run(REQUESTS.format(root=str(ROOT), tests=str(ROOT / "tests"), folder=folder, clip4k=str(clip)),
                   {"MSA_MAX_DECODED_MB": "8"})
        print("\n| pathological request | time to the answer (s) | answer |\n|---|---|---|")
        for name, row in rows.items():
            print(f"| {name} | {row['seconds']:.3f} | {row['outcome']} |")


if __name__ == "__main__":
    main()
