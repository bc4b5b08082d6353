"""2-process CPU (gloo) training: every rank must end with the same ULGM label bank and weights."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("model_name", ["shared_private", "self_mm"])
def test_two_process_training_gives_identical_label_banks(tmp_path, model_name):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(ROOT / "tests" / "ddp_ulgm_script.py"), str(tmp_path), model_name],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    banks = [load_file(tmp_path / f"bank_rank{rank}.safetensors") for rank in (0, 1)]
    assert banks[0].keys() == banks[1].keys()
    for key in banks[0]:
        assert torch.equal(banks[0][key], banks[1][key]), key
    # every training sample (37, split over both ranks) reached the feature bank of each rank
    assert (banks[0]["features.fusion"].abs().sum(-1) > 0).all()
    assert not torch.equal(banks[0]["labels.text"], banks[0]["labels.fusion"]), "ULGM labels must have moved"
    weights = [torch.load(tmp_path / f"weights_rank{rank}.pt") for rank in (0, 1)]
    assert torch.equal(weights[0], weights[1])
