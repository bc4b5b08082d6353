"""Tiny media files written by the tests (PyAV), in real container formats."""

from fractions import Fraction
from pathlib import Path

import numpy as np


def write_clip(path: Path, seconds: float = 0.5, fps: int = 10, size: int = 32, with_audio: bool = True,
               sample_rate: int = 16000, tone_hz: float = 440.0) -> Path:
    """A video (mpeg4) with an optional sine-tone audio track (aac or pcm for .avi)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("mpeg4", rate=fps)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        audio = None
        if with_audio:
            audio = container.add_stream("aac" if path.suffix == ".mp4" else "pcm_s16le", rate=sample_rate)
            audio.layout = "mono"
        for index in range(int(seconds * fps)):
            image = np.full((size, size, 3), (index * 20) % 255, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio is not None:
            samples = int(seconds * sample_rate)
            tone = (0.3 * np.sin(2 * np.pi * tone_hz * np.arange(samples) / sample_rate) * 32767).astype(np.int16)
            chunk = 1024
            for start in range(0, samples, chunk):
                frame = av.AudioFrame.from_ndarray(tone[None, start:start + chunk], format="s16", layout="mono")
                frame.sample_rate = sample_rate
                frame.pts = start
                frame.time_base = Fraction(1, sample_rate)
                for packet in audio.encode(frame):
                    container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)
    return path


def write_wav(path: Path, seconds: float = 1.0, sample_rate: int = 16000) -> Path:
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    signal = 0.1 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * sample_rate)) / sample_rate)
    soundfile.write(str(path), signal.astype(np.float32), sample_rate)
    return path


def corrupt_clip(path: Path, keep: int = 300) -> Path:
    """A 1 s clip cut to its first `keep` bytes: a container no decoder can read."""
    data = write_clip(path, seconds=1.0).read_bytes()
    path.write_bytes(data[:keep])
    return path


def write_4k_clip(path: Path, seconds: float, fps: int = 5) -> Path:
    """A black 3840x2160 clip with a silent soundtrack: tiny on disk, 25 MB per decoded RGB frame."""
    import av

    with av.open(str(path), mode="w") as container:
        video = container.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = 3840, 2160, "yuv420p"
        audio = container.add_stream("aac", rate=16000)
        audio.layout = "mono"
        black = av.VideoFrame.from_ndarray(np.zeros((2160, 3840, 3), dtype=np.uint8), format="rgb24")
        for _ in range(int(seconds * fps)):
            for packet in video.encode(black):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        silence = av.AudioFrame.from_ndarray(np.zeros((1, int(seconds * 16000)), dtype=np.int16), format="s16",
                                             layout="mono")
        silence.sample_rate = 16000
        for packet in [*audio.encode(silence), *audio.encode()]:
            container.mux(packet)
    return path
