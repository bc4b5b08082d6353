"""2-process CPU (gloo) training: every rank must end with the same ULGM label bank and weights."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]


def torchrun(script: str, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(ROOT / "tests" / script), *args],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    # msa-hub models use every trainable parameter: DDP's unused-parameter search (and its warning) is off
    assert "find_unused_parameters=True was specified" not in result.stderr


@pytest.mark.parametrize("model_name", ["shared_private", "self_mm"])
def test_two_process_training_gives_identical_label_banks(tmp_path, model_name):
    torchrun("ddp_ulgm_script.py", str(tmp_path), model_name)
    banks = [load_file(tmp_path / f"bank_rank{rank}.safetensors") for rank in (0, 1)]
    assert banks[0].keys() == banks[1].keys()
    for key in banks[0]:
        assert torch.equal(banks[0][key], banks[1][key]), key
    # every training sample (37, split over both ranks) reached the feature bank of each rank
    assert (banks[0]["features.fusion"].abs().sum(-1) > 0).all()
    assert not torch.equal(banks[0]["labels.text"], banks[0]["labels.fusion"]), "ULGM labels must have moved"
    weights = [torch.load(tmp_path / f"weights_rank{rank}.pt") for rank in (0, 1)]
    assert torch.equal(weights[0], weights[1])


def test_two_process_self_training_selects_the_same_pseudo_set_on_every_rank(tmp_path):
    torchrun("ddp_self_training_script.py", str(tmp_path))
    selections = [json.loads((tmp_path / f"selection_rank{rank}.json").read_text()) for rank in (0, 1)]
    assert selections[0] == selections[1]
    assert selections[0]["rows"] == 41  # gathered predictions cover every unlabelled sample exactly once
    assert 0 < len(selections[0]["indices"]) <= 4 * 7
    saved = json.loads((tmp_path / "run" / "stage-1" / "pseudo_labels.json").read_text())
    assert saved["indices"] == selections[0]["indices"]


@pytest.mark.parametrize("name, kind, processes", [
    ("ddp", "MULTI_GPU", 8), ("multi_node", "MULTI_GPU", 16), ("fsdp", "FSDP", 8),
])
def test_accelerate_config_examples_load(name, kind, processes):
    """The README's accelerate configs are valid accelerate config files."""
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(ROOT / "configs" / "accelerate" / f"{name}.yaml"))
    assert config.distributed_type.name == kind and config.num_processes == processes
    if kind == "FSDP":
        assert config.fsdp_config["fsdp_version"] == 2 and "SemiIINLayer" in config.fsdp_config[
            "fsdp_transformer_layer_cls_to_wrap"]
