"""A compiled Semi-IIN training step (official shapes, paper recipe, fp32, inductor) with the frames-last Conv1d's
branch-free compiled version (new) against its eager version traced statically (old): one process, steps
alternating, after each model's compile.

    python benchmarks/compiled_conv_paths.py [STEPS]   # default 8
"""
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
import torch  # noqa: E402

import mfu  # noqa: E402
import modeling_msa.modeling_semi_iin as m  # noqa: E402
from training_msa.runtime import keep_freed_cpu_memory_for_reuse  # noqa: E402

keep_freed_cpu_memory_for_reuse()
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 8
shapes = mfu.SHAPES["official"]
inputs = mfu.random_batch(shapes, 32, "cpu")
new_fn, old_fn = m._conv1d_frames_last_compiled, m._conv1d_frames_last_eager
runs = {}
for name, fn in (("old (eager branches, static)", old_fn), ("new (branch-free)", new_fn)):
    model, opt = mfu.build(shapes, "cpu", attention_dropout=0.1)
    runs[name] = (torch.compile(model, fullgraph=True), opt, fn, [])
for round_ in range(steps + 1):
    for name, (model, opt, fn, times) in runs.items():
        m._conv1d_frames_last_compiled = fn  # a global the graph reads: dynamo guards on it, each model keeps its own
        started = time.perf_counter()
        seconds = mfu.train_step(model, opt, inputs)
        if round_ == 0:
            print(f"{name}: warm-up (compile) {time.perf_counter() - started:.0f} s", flush=True)
        else:
            times.append(seconds)
m._conv1d_frames_last_compiled = new_fn
for name, (_, _, _, times) in runs.items():
    print(f"{name}: median {statistics.median(times):.3f} s, min {min(times):.3f} s ({len(times)} steps)")
