"""Training-step time of the embedded default job's Semi-IIN with the modeling code of two checkouts (e.g. a
worktree of an older commit and this one), each step run in a fresh process, the two alternating so that the
machine's drifting speed hits both alike. Each process applies what its checkout's train.py applies on a CPU: the
allocator tuning (checkouts before issue #32) or the word-dropout plug-in (from #32 on). `--precision_before/--precision_after bf16` run that side's forward under CPU bf16
autocast (what `train.py --bf16 true` does).

    git worktree add /tmp/before <commit>
    python benchmarks/step_before_after.py --before /tmp/before --after . [--rounds 3] [--attention_dropout 0.1] \
        [--precision_before fp32] [--precision_after bf16]
"""

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import statistics, sys, time
root, attention_dropout, steps, bf16 = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "bf16"
sys.path.insert(0, root)
import torch
try:
    from training_msa.runtime import keep_freed_cpu_memory_for_reuse
    keep_freed_cpu_memory_for_reuse()
except ImportError:
    pass  # a checkout without the tuning
from modeling_msa import SemiIINConfig, SemiIINForSentimentAnalysis
torch.manual_seed(0)
config = SemiIINConfig(text_feature_size=768, audio_feature_size=5, vision_feature_size=20, max_text_tokens=50,
                       max_audio_tokens=47, max_vision_tokens=100, attention_dropout=attention_dropout)
model = SemiIINForSentimentAnalysis(config).train()
model.validate_inputs = False
try:
    from training_msa.cpu_dropout import apply_cpu_word_dropout
    apply_cpu_word_dropout(model)
except ImportError:
    pass  # a checkout whose model samples its CPU dropout itself (before #32)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)
generator = torch.Generator().manual_seed(0)
inputs = {}
for name, (frames, dim) in {"text": (50, 768), "audio": (375, 5), "vision": (100, 20)}.items():
    inputs[f"{name}_features"] = torch.randn(32, frames, dim, generator=generator)
    mask = torch.ones(32, frames, dtype=torch.long)
    mask[16:, frames // 2:] = 0  # as the synthetic data: lengths from half to full
    inputs[f"{name}_attention_mask"] = mask
inputs["labels"] = torch.empty(32).uniform_(-3, 3, generator=generator)

def step():
    started = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(**inputs).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - started

for _ in range(2):
    step()
print(statistics.median([step() for _ in range(steps)]))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="root of the older checkout")
    parser.add_argument("--after", default=str(Path(__file__).resolve().parents[1]), help="root of the newer one")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per process (median)")
    parser.add_argument("--attention_dropout", type=float, default=0.1)
    for side in ("before", "after"):
        parser.add_argument(f"--precision_{side}", choices=("fp32", "bf16"), default="fp32")
    args = parser.parse_args()
    times = {"before": [], "after": []}
    for _ in range(args.rounds):
        for name in times:
            root = str(Path(getattr(args, name)).resolve())
            result = subprocess.run([sys.executable, "-c", CHILD, root, str(args.attention_dropout), str(args.steps),
                                     getattr(args, f"precision_{name}")],
                                    capture_output=True, text=True, check=True)
            times[name].append(float(result.stdout.split()[-1]))
    before, after = statistics.median(times["before"]), statistics.median(times["after"])
    print(f"default-job Semi-IIN, batch 32, attention dropout {args.attention_dropout}, {args.rounds} alternating "
          f"processes each, median of {args.steps} steps per process\n")
    print("| checkout | step (s), per process | median | speed-up |")
    print("|---|---|---|---|")
    for name, median in (("before", before), ("after", after)):
        runs = ", ".join(f"{t:.3f}" for t in times[name])
        precision = getattr(args, f"precision_{name}")
        print(f"| {name} ({getattr(args, name)}, {precision}) | {runs} | {median:.3f} | {before / median:.2f}x |")


if __name__ == "__main__":
    main()
