"""Bad inputs through the public entry points: every error names the file (or request) and the field, and a failed
load leaves nothing cached (issue #13)."""

import pickle
from pathlib import Path

import numpy as np
import pytest
from test_dataset_readers import mmsa_split

from dataset_scripts import load_mmsa_pickle, load_msa_dataset


def write_pickle(path: Path, mutate) -> Path:
    rng = np.random.default_rng(0)
    data = {"train": mmsa_split(rng, 6), "valid": mmsa_split(rng, 3), "test": mmsa_split(rng, 3)}
    mutate(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(data, protocol=4))
    return path


def cached_datasets(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("dataset_dict.json")] if cache.exists() else []


def set_value(split, field, index, value):
    def mutate(data):
        data[split][field] = np.array(data[split][field], dtype=object if isinstance(value, str) else None)
        data[split][field][index] = value
    return mutate


@pytest.mark.parametrize(
    "mutate, message",
    [
        (set_value("train", "regression_labels", 2, np.nan),
         r"split train, field regression_labels: 1 NaN/inf label\(s\), first at row 2 \(id 'video0\$_\$2'\)"),
        (set_value("test", "regression_labels", 0, 4.5),
         r"split test, field regression_labels: 1 label\(s\) outside \[-3, 3\], first 4.5 at row 0"),
        (set_value("valid", "regression_labels", 1, "positive"),
         r"split valid, field regression_labels: labels must be numbers"),
        (set_value("train", "id", 4, "video0$_$1"),
         r"split train, field id: 'video0\$_\$1' appears at rows 1 and 4; ids must be unique"),
        (lambda d: d["train"].update(audio=np.concatenate([d["train"]["audio"], d["train"]["audio"][:2]])),
         r"split train, field audio: 8 samples but field id has 6"),
        (lambda d: d["train"].update(regression_labels=d["train"]["regression_labels"][:4]),
         r"split train, field regression_labels: 4 labels but field id has 6 samples"),
        (lambda d: d["test"].update(vision=d["test"]["vision"][:, :, 0]),
         r"split test, field vision: expected \[N, T, D\], got shape \(3, 20\)"),
        (lambda d: d["valid"].update(text=np.zeros((3, 10, 9), dtype=np.float32)),
         r"split valid, field text: feature size 9, but split train has 8"),
        (lambda d: d["train"].update(audio_lengths=d["train"]["audio_lengths"][:5]),
         r"split train, field audio_lengths: 5 entries but field id has 6 samples"),
    ],
)
def test_bad_mmsa_pickles_name_file_split_and_field(tmp_path, mutate, message):
    path = write_pickle(tmp_path / "unaligned_50.pkl", mutate)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=r"unaligned_50.pkl: " + message):
        load_mmsa_pickle(path, cache_dir=str(cache))
    assert cached_datasets(cache) == []  # validated before anything was written
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_sims_labels_outside_minus_one_one_are_refused(tmp_path):
    write_pickle(tmp_path / "sims" / "unaligned_39.pkl", set_value("train", "regression_labels", 0, 2.0))
    with pytest.raises(ValueError, match=r"outside \[-1, 1\], first 2 at row 0 .*SIMS labels lie in \[-1, 1\]"):
        load_msa_dataset("sims", tmp_path / "sims", cache_dir=str(tmp_path / "cache"))


def test_a_pickle_too_large_for_memory_names_the_file(tmp_path, monkeypatch):
    import dataset_scripts.safe_pickle as safe_pickle

    path = write_pickle(tmp_path / "unaligned_50.pkl", lambda d: None)

    def exhausted(self):
        raise MemoryError()

    monkeypatch.setattr(safe_pickle.RestrictedUnpickler, "load", exhausted)
    with pytest.raises(MemoryError, match=r"unaligned_50.pkl: ran out of memory while unpickling"):
        load_mmsa_pickle(path, cache_dir=str(tmp_path / "cache"))


def test_a_good_pickle_after_a_bad_one_loads(tmp_path):
    """The bad file's failed conversion leaves no half-written cache that a fixed file would reuse."""
    path = write_pickle(tmp_path / "unaligned_50.pkl", set_value("train", "regression_labels", 0, np.nan))
    with pytest.raises(ValueError):
        load_mmsa_pickle(path, cache_dir=str(tmp_path / "cache"))
    write_pickle(path, lambda d: None)
    assert len(load_mmsa_pickle(path, cache_dir=str(tmp_path / "cache"))["train"]) == 6


def label_csv_folder(tmp_path: Path, text: str | bytes, clips=(("v1", "1"), ("v1", "2"))) -> Path:
    """A custom layout whose Raw/ clips exist (empty files: verify=False never opens them)."""
    root = tmp_path / "custom"
    for video, clip in clips:
        (root / "Raw" / video).mkdir(parents=True, exist_ok=True)
        (root / "Raw" / video / f"{clip}.mp4").write_bytes(b"")
    target = root / "label.csv"
    target.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return root


def test_label_csv_with_an_excel_bom_is_read(tmp_path):
    root = label_csv_folder(tmp_path, "\ufeffvideo_id,clip_id,text,label,mode\nv1,1,hello,0.4,train\nv1,2,bye,-1,test\n")
    dataset = load_msa_dataset("custom", root)
    assert dataset["train"][0]["id"] == "v1$_$1" and dataset["test"][0]["label"] == -1.0


def test_label_csv_that_is_not_utf8_names_the_file_and_byte(tmp_path):
    root = label_csv_folder(tmp_path, "video_id,clip_id,text,label\nv1,1,天气很好,0.4\n".encode("gbk"))
    with pytest.raises(ValueError, match=r"custom/label.csv is not UTF-8 text \(byte \d+.*save it as UTF-8"):
        load_msa_dataset("custom", root)


@pytest.mark.parametrize("column", ["label", "label_T", "label_V"])
def test_non_numeric_labels_name_line_and_column_and_are_skipped_on_request(tmp_path, column):
    header = "video_id,clip_id,text,label,label_T,label_A,label_V\n"
    values = {"label": "0.5", "label_T": "0.1", "label_A": "0.2", "label_V": "0.3"}
    good = "v1,1,fine," + ",".join(values.values()) + "\n"
    values[column] = "high"
    bad = "v1,2,bad," + ",".join(values.values()) + "\n"
    root = label_csv_folder(tmp_path, header + good + bad)
    with pytest.raises(ValueError, match=rf"label.csv line 3, column {column}: 'high' is not a number"):
        load_msa_dataset("custom", root)
    kept = load_msa_dataset("custom", root, on_error="skip")
    assert kept["train"]["id"] == ["v1$_$1"]


@pytest.mark.parametrize("value, message", [("nan", "is not a finite number"), ("7", r"7 lies outside \[-3, 3\]")])
def test_nan_and_out_of_range_labels_in_label_csv(tmp_path, value, message):
    root = label_csv_folder(tmp_path, f"video_id,clip_id,text,label\nv1,1,a,0.1\nv1,2,b,{value}\n")
    with pytest.raises(ValueError, match=rf"label.csv line 3, column label: .*{message}"):
        load_msa_dataset("custom", root)


def test_sims_raw_labels_outside_minus_one_one(tmp_path):
    root = label_csv_folder(tmp_path, "video_id,clip_id,text,label\nv1,1,a,0.1\nv1,2,b,-2\n")
    with pytest.raises(ValueError, match=r"line 3, column label: -2 lies outside \[-1, 1\]"):
        load_msa_dataset("sims", root)


def test_duplicate_clip_rows_in_label_csv(tmp_path):
    root = label_csv_folder(tmp_path, "video_id,clip_id,text,label\nv1,1,a,0.1\nv1,2,b,1\nv1,1,a again,-2\n")
    with pytest.raises(ValueError, match=r"label.csv line 4: video_id/clip_id v1/1 already appears on line 2"):
        load_msa_dataset("custom", root)


def csd_set(tmp_path: Path, audio=None, labels=None):
    from test_dataset_readers import frames, write_csd

    labels = labels or {"vidA": (np.array([[1.5], [-2.0]]), np.array([[0.0, 1.0], [1.0, 2.0]]))}
    paths = {
        "text": write_csd(tmp_path / "glove.csd", "glove", {"vidA": frames(8, 4, 0.25, 6)}),
        "audio": write_csd(tmp_path / "covarep.csd", "COVAREP", {"vidA": frames(20, 3, 0.1, 1)} if audio is None else audio),
        "vision": write_csd(tmp_path / "facet.csd", "FACET", {"vidA": frames(10, 2, 0.2, 5)}),
    }
    return write_csd(tmp_path / "labels.csd", "labels", labels), paths


FOLDS = {"train": ["vidA", "vidB"], "validation": [], "test": []}


@pytest.mark.parametrize(
    "audio, labels, message",
    [
        ({"vidA": (np.zeros((20, 3)), np.zeros((20, 2))), "vidB": (np.zeros((5, 4)), np.zeros((5, 2)))}, None,
         r"covarep.csd: video 'vidB', field features: feature size 4, but video 'vidA' has 3"),
        ({"vidA": (np.zeros(20), np.zeros((20, 2)))}, None,
         r"covarep.csd: video 'vidA', field features: expected \[frames, dim\], got shape \(20,\)"),
        ({"vidA": (np.zeros((20, 3)), np.zeros((19, 2)))}, None,
         r"covarep.csd: video 'vidA': 20 feature rows but 19 intervals"),
        ({"vidA": (np.zeros((20, 3)), np.zeros((20, 3)))}, None,
         r"covarep.csd: video 'vidA', field intervals: expected \[frames, 2\]"),
        (None, {"vidA": (np.array([[1.5], [-2.0], [0.1]]), np.array([[0.0, 1.0], [1.0, 2.0]]))},
         r"labels.csd: video 'vidA': 3 label rows but 2 segment intervals"),
        (None, {"vidA": (np.array([[np.nan], [-2.0]]), np.array([[0.0, 1.0], [1.0, 2.0]]))},
         r"labels.csd: video 'vidA', field features: label nan of segment 0 is not a finite number in \[-3, 3\]"),
        ({}, None, r"covarep.csd: the data group holds no video"),
    ],
)
def test_bad_csd_files_name_file_video_and_field(tmp_path, audio, labels, message):
    from dataset_scripts import load_cmu_csd

    label_file, paths = csd_set(tmp_path, audio=audio, labels=labels)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=message):
        load_cmu_csd(label_file, paths, FOLDS, cache_dir=str(cache))
    assert cached_datasets(cache) == []
    # Fixed files load: no broken cache from the failed attempt is reused.
    label_file, paths = csd_set(tmp_path)
    assert load_cmu_csd(label_file, paths, FOLDS, cache_dir=str(cache))["train"]["id"][:].tolist() == ["vidA[0]", "vidA[1]"]


def test_standard_folds_come_from_the_sdk():
    pytest.importorskip("mmsdk")
    from dataset_scripts import standard_folds

    folds = standard_folds("mosi")
    assert [len(folds[s]) for s in ("train", "validation", "test")] == [52, 10, 31]
    assert not set(folds["train"]) & set(folds["test"])


def test_semi_iin_runs_on_audio_shorter_than_its_convolution():
    import torch
    from conftest import random_batch, tiny_semi_iin_config

    from modeling_msa import SemiIINForSentimentAnalysis

    model = SemiIINForSentimentAnalysis(tiny_semi_iin_config()).eval()
    for frames in (1, 2, 3):
        batch = random_batch(audio=(frames, frames, 1))
        with torch.no_grad():
            out = model(**batch)
        assert torch.isfinite(out.logits).all()
        # One sample alone gives what it gives inside the batch (the short audio has 0 real tokens either way).
        single = {k: v[:1, : int(batch[k.replace("features", "attention_mask")][0].sum())] if k.endswith("features")
                  else v[:1, : int(v[0].sum())] for k, v in batch.items()}
        with torch.no_grad():
            torch.testing.assert_close(model(**single).logits, out.logits[:1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"hidden_size": 0}, r"hidden_size must be an integer in \[1, 65536\], got 0"),
        ({"hidden_size": -16}, r"hidden_size must be an integer in \[1, 65536\]"),
        ({"num_attention_heads": 0}, r"num_attention_heads must be an integer in \[1, 1024\], got 0"),
        ({"attention_dropout": 1.5}, r"attention_dropout must lie in \[0, 1\)"),
    ],
)
def test_semi_iin_config_values_are_checked_before_torch_sees_them(overrides, message):
    from conftest import tiny_semi_iin_config
    from huggingface_hub.errors import StrictDataclassError

    with pytest.raises(StrictDataclassError, match=message):
        tiny_semi_iin_config(**overrides)


def test_shared_private_config_values_are_checked():
    from huggingface_hub.errors import StrictDataclassError

    from modeling_msa import SharedPrivateConfig

    with pytest.raises(StrictDataclassError, match=r"audio_lstm_hidden_size must be an integer in \[1, 65536\], got 0"):
        SharedPrivateConfig(text_input="features", audio_lstm_hidden_size=0)


def test_encoder_sub_configs_from_dicts_and_unknown_model_types():
    """config.json's encoder dicts become configs (a dict without model_type: the default one); an unknown
    model_type names the field and the fix, in both configs."""
    from modeling_msa import FaceCNNConfig, SemiIINConfig, SharedPrivateConfig

    config = SemiIINConfig(text_config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2},
                           vision_config={"model_type": "msa_face_cnn"})
    assert config.text_config.model_type == "roberta" and config.text_config.hidden_size == 32
    assert isinstance(config.vision_config, FaceCNNConfig) and config.audio_config is None
    assert config.text_feature_size == 32  # follows the bundled encoder
    with pytest.raises(ValueError, match=r"SemiIINConfig.text_config: model_type 'robertta' is not a transformers "
                                         r"config type .* e\.g\. 'roberta'"):
        SemiIINConfig(text_config={"model_type": "robertta"})
    with pytest.raises(ValueError, match=r"SharedPrivateConfig.audio_config: model_type 'hubbert'.* e\.g\. 'hubert'"):
        SharedPrivateConfig(audio_config={"model_type": "hubbert"})


def test_left_padded_masks_and_non_binary_masks_are_refused_by_both_models():
    from conftest import random_batch, tiny_semi_iin_config

    from modeling_msa import SemiIINForSentimentAnalysis, SharedPrivateConfig, SharedPrivateForSentimentAnalysis

    shared = SharedPrivateForSentimentAnalysis(SharedPrivateConfig(
        text_input="features", text_feature_size=12, audio_feature_size=6, vision_feature_size=5))
    semi = SemiIINForSentimentAnalysis(tiny_semi_iin_config())
    for model in (shared, semi):
        batch = random_batch()
        batch["audio_attention_mask"] = batch["audio_attention_mask"].flip(-1)  # left padding
        with pytest.raises(ValueError, match="audio_attention_mask must be right-padded"):
            model(**batch)
        batch = random_batch()
        batch["vision_attention_mask"] = batch["vision_attention_mask"] * 0.5
        with pytest.raises(ValueError, match="vision_attention_mask must hold only 0"):
            model(**batch)


def test_half_precision_inputs_run_in_the_model_dtype():
    import torch
    from conftest import random_batch, tiny_semi_iin_config

    from modeling_msa import SemiIINForSentimentAnalysis, SharedPrivateConfig, SharedPrivateForSentimentAnalysis

    shared = SharedPrivateForSentimentAnalysis(SharedPrivateConfig(
        text_input="features", text_feature_size=12, audio_feature_size=6, vision_feature_size=5,
        alignment_pairs=["text-audio"])).eval()
    semi = SemiIINForSentimentAnalysis(tiny_semi_iin_config()).eval()
    for model in (shared, semi):
        batch = random_batch()
        half = {k: v.half() if k.endswith("features") else v for k, v in batch.items()}
        with torch.no_grad():
            torch.testing.assert_close(model(**half).logits, model(**{
                k: v.float() if k.endswith("features") else v for k, v in half.items()}).logits)


def tiny_synthetic(**overrides):
    from dataset_scripts import load_msa_dataset

    values = dict(num_train=12, num_validation=4, num_test=4, num_unlabeled=0, text_length=6, audio_length=24,
                  vision_length=5, text_dim=12, audio_dim=6, vision_dim=5)
    return load_msa_dataset("synthetic", **{**values, **overrides})


def test_a_nan_loss_stops_training_naming_the_step_and_nothing_is_published(tmp_path, monkeypatch):
    import sys

    from datasets import DatasetDict

    from training_msa import NonFiniteLossError

    sys.path.insert(0, str(Path(__file__).parents[1]))
    import train

    data = tiny_synthetic()
    labels = data["train"]["label"][:].tolist()
    labels[5] = float("nan")  # data that bypassed the loaders' checks
    poisoned = DatasetDict({**data, "train": data["train"].with_format(None).remove_columns("label")
                            .add_column("label", labels).with_format("numpy")})
    import dataset_scripts

    monkeypatch.setattr(dataset_scripts, "load_msa_dataset", lambda *args, **kwargs: poisoned)  # train.py reads it
    argv = ["--hidden_size", "16", "--num_attention_heads", "2", "--intermediate_size", "32",
            "--per_device_train_batch_size", "4", "--num_train_epochs", "1", "--output_dir", str(tmp_path / "out"),
            "--disable_tqdm", "true", "--report_to", "none"]
    with pytest.raises(NonFiniteLossError, match=r"training loss is nan at step \d+ \(epoch 0\.\d+\).*NaN/inf labels"):
        train.main(argv)
    assert not (tmp_path / "out" / "model").exists()


def test_a_saved_dataset_with_unlabelled_training_rows_is_refused(tmp_path):
    from datasets import DatasetDict

    data = tiny_synthetic()
    labels = data["train"]["label"][:].tolist()
    labels[3] = None
    DatasetDict({**data, "train": data["train"].with_format(None).remove_columns("label").add_column(
        "label", labels)}).save_to_disk(tmp_path / "features")
    with pytest.raises(ValueError, match=r"features: split train, field label: 1 row\(s\) without a finite label "
                                         r"\(first 'synthetic_train_000003'\)"):
        load_msa_dataset("custom", tmp_path / "features")


def test_a_full_disk_while_checkpointing_names_the_output_folder(tmp_path, monkeypatch):
    import errno

    import transformers.modeling_utils as modeling_utils
    from conftest import tiny_semi_iin_config

    from modeling_msa import SemiIINForSentimentAnalysis
    from training_msa import MSATrainer, MSATrainingArguments

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(modeling_utils, "safe_save_file", full_disk)
    data = tiny_synthetic()
    args = MSATrainingArguments(output_dir=str(tmp_path / "run"), num_train_epochs=1, save_strategy="epoch",
                                per_device_train_batch_size=4, disable_tqdm=True, metrics_profile="synthetic")
    trainer = MSATrainer(model=SemiIINForSentimentAnalysis(tiny_semi_iin_config()), args=args,
                         train_dataset=data["train"])
    with pytest.raises(OSError, match=rf"no space left on device in {tmp_path / 'run'} \(\d+ MiB free\).*"
                                      "--resume_from_checkpoint last"):
        trainer.train()


@pytest.mark.parametrize(
    "segments, message",
    [
        ('<segment nite:id="s1" transcriber_start="abc" transcriber_end="3"/>',
         r"ES2007b.B.segments.xml: element 's1', field transcriber_start: 'abc' is not a time in seconds"),
        ('<segment nite:id="s1" transcriber_end="3"/>',
         r"ES2007b.B.segments.xml: element 's1', field transcriber_start: None is not a time"),
        ('<segment nite:id="s7" transcriber_start="5" transcriber_end="3"/>',
         r"ES2007b.B.segments.xml: element 's7': transcriber_end 3.0 lies before transcriber_start 5.0"),
        ('<segment nite:id="s1" transcriber_start="1" transcriber_end="3">', r"ES2007b.B.segments.xml is not valid NXT XML"),
    ],
)
def test_bad_ami_annotations_name_file_element_and_field(tmp_path, segments, message):
    from dataset_scripts import load_ami

    corpus, annotations = tmp_path / "amicorpus", tmp_path / "ami_public_manual"
    (corpus / "ES2007b" / "audio").mkdir(parents=True)
    (corpus / "ES2007b" / "video").mkdir(parents=True)
    (corpus / "ES2007b" / "audio" / "ES2007b.Headset-1.wav").write_bytes(b"")
    (corpus / "ES2007b" / "video" / "ES2007b.Closeup2.avi").write_bytes(b"")
    nite = 'xmlns:nite="http://nite.sourceforge.net/"'
    (annotations / "segments").mkdir(parents=True)
    (annotations / "words").mkdir()
    (annotations / "segments" / "ES2007b.B.segments.xml").write_text(f"<nite:root {nite}>{segments}</nite:root>")
    (annotations / "words" / "ES2007b.B.words.xml").write_text(f"<nite:root {nite}/>")
    with pytest.raises(ValueError, match=message):
        load_ami(corpus, annotations)
    assert len(load_ami(corpus, annotations, on_error="skip")["unlabeled"]) == 0  # reported and skipped


def test_multiseed_rejects_repeated_seeds_and_reruns_an_unreadable_result(tmp_path, monkeypatch):
    import subprocess

    from training_msa import multiseed

    with pytest.raises(ValueError, match="a seed appears twice"):
        multiseed.run_seeds([1, 1], ["--output_dir", str(tmp_path)])
    torn = tmp_path / "seed-3" / "model" / "test_results.json"
    torn.parent.mkdir(parents=True)
    torn.write_text('{"MAE": 0.5, "Co')  # a result torn by a crash

    def fake_train(command, env):
        torn.write_text('{"MAE": 0.7}')
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(multiseed.subprocess, "run", fake_train)
    report = multiseed.run_seeds([3], ["--output_dir", str(tmp_path)])
    assert report["results"] == {3: {"MAE": 0.7}} and report["failures"] == {}


def test_an_ami_segments_file_without_a_speaker_letter_names_the_file(tmp_path):
    from dataset_scripts import load_ami

    (tmp_path / "segments").mkdir()
    bad = tmp_path / "segments" / "ES2007b.BB.segments.xml"
    bad.write_text('<nite:root xmlns:nite="http://nite.sourceforge.net/"/>')
    with pytest.raises(ValueError, match=r"ES2007b.BB.segments.xml: expected <meeting>.<speaker letter>.segments.xml, "
                                         r"got speaker 'BB'"):
        load_ami(tmp_path / "amicorpus", tmp_path)
    assert len(load_ami(tmp_path / "amicorpus", tmp_path, on_error="skip")["unlabeled"]) == 0
