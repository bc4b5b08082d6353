"""train.py with `torch.nn.init.trunc_normal_` replaced by draws every torch version makes alike (`normal_` then
`clamp_`: exact for Semi-IIN's std 0.02 within its absolute bounds +-2), to compare two torch / transformers stacks
run for run (torch 2.11 and 2.13 draw `trunc_normal_` differently; benchmarks/RESULTS.md, ninth pass).

    python benchmarks/same_init_train.py [train.py flags ...]
"""

import runpy
import sys
from pathlib import Path

import torch


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    with torch.no_grad():
        return tensor.normal_(mean, std, generator=generator).clamp_(a, b)


if __name__ == "__main__":
    torch.nn.init.trunc_normal_ = trunc_normal_
    script = Path(__file__).resolve().parents[1] / "train.py"
    sys.path[0] = str(script.parent)  # as `python train.py` would have it
    sys.argv = [str(script), *sys.argv[1:]]
    runpy.run_path(str(script), run_name="__main__")
