"""Generated video clips whose sentiment is planted in the transcript, the soundtrack and the frames.

Each clip has an intensity y in [-3, 3] and per-modality intensities near it: the transcript's wording (from
"absolutely terrible" to "absolutely wonderful"), the pitch of the voice-like tone (110 Hz at -3, 440 Hz at +3) and a
drawn face whose mouth curves down (frown) or up (smile). The folder uses the `custom` layout (label.csv +
Raw/<video_id>/<clip_id>.mp4), so `load_msa_dataset("custom", folder)` reads it and the feature extractor,
pipeline and demo see real MP4 files (PyAV: H.264 video, AAC audio, as browsers play them).
"""

import csv
import json
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np

from .atomic_write import atomic_path

# One phrase per intensity -3 ... 3, and the things the phrases are about.
PHRASES = (
    "was absolutely terrible, I hated every minute of it",
    "was bad and really disappointing",
    "was a bit dull and not very good",
    "was okay, nothing special either way",
    "was fairly nice and pleasant",
    "was good and I really liked it",
    "was absolutely wonderful, I loved every minute of it",
)
TOPICS = ("the movie", "the food", "the trip", "the concert", "the book", "the game", "the class", "the hotel")
SAMPLING_RATE = 16000
Intensity = float | Callable[[float], float]  # a constant, or a function of the time fraction in [0, 1]


def planted_transcript(intensity: float, topic: str = "the movie") -> str:
    """The phrase of the nearest integer intensity, about `topic`."""
    index = int(np.clip(np.round(intensity), -3, 3)) + 3
    return f"{topic.capitalize()} {PHRASES[index]}."


def planted_pitch(intensity: float) -> float:
    """Tone frequency in Hz: 110 Hz at -3, 220 Hz at 0, 440 Hz at +3 (one octave per 3 points)."""
    return 220.0 * 2.0 ** (float(np.clip(intensity, -3, 3)) / 3.0)


def planted_face(intensity: float, size: int = 64, jitter: tuple[int, int] = (0, 0)) -> np.ndarray:
    """An RGB face [size, size, 3] (uint8): yellow disc, two eyes, a mouth whose curvature follows `intensity`
    (smile > 0, frown < 0); the background shifts from red-ish (negative) to green-ish (positive)."""
    value = float(np.clip(intensity, -3, 3)) / 3.0
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = size / 2 + jitter[0], size / 2 + jitter[1]
    image = np.empty((size, size, 3), dtype=np.float32)
    image[:] = (140 - 60 * value, 140 + 60 * value, 120)
    face = (rows - cy) ** 2 + (cols - cx) ** 2 <= (0.4 * size) ** 2
    image[face] = (240, 210, 60)
    for dx in (-0.15, 0.15):
        eye = (rows - (cy - 0.1 * size)) ** 2 + (cols - (cx + dx * size)) ** 2 <= (0.05 * size) ** 2
        image[eye] = (30, 30, 30)
    offset = (cols - cx) / (0.2 * size)
    mouth_y = cy + 0.18 * size + value * 0.12 * size * (1 - offset ** 2)
    mouth = (np.abs(offset) <= 1) & (np.abs(rows - mouth_y) <= max(1.0, size / 40))
    image[mouth] = (120, 20, 20)
    return image.clip(0, 255).astype(np.uint8)


def _at(intensity: Intensity, fraction: float) -> float:
    return float(intensity(fraction)) if callable(intensity) else float(intensity)


def write_planted_clip(path: str | Path, audio_intensity: Intensity, vision_intensity: Intensity,
                       seconds: float = 2.0, fps: int = 8, size: int = 64, seed: int = 0) -> Path:
    """An MP4 clip whose tone pitch and face follow the given intensities (constants or functions of the time
    fraction, for clips whose sentiment changes). Written to a temporary name, then renamed."""
    import av

    path = Path(path)
    rng = np.random.default_rng(seed)
    with atomic_path(path) as temporary:
        with av.open(str(temporary), mode="w", format="mp4") as container:
            video = container.add_stream("h264", rate=fps)  # H.264 + AAC in MP4: what browsers play as they are
            video.width = video.height = size
            video.pix_fmt = "yuv420p"
            audio = container.add_stream("aac", rate=SAMPLING_RATE)
            audio.layout = "mono"
            frames = max(1, int(round(seconds * fps)))
            for index in range(frames):
                jitter = tuple(int(v) for v in rng.integers(-2, 3, size=2))
                image = planted_face(_at(vision_intensity, index / max(1, frames - 1)), size, jitter)
                for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in video.encode():
                container.mux(packet)
            samples = int(seconds * SAMPLING_RATE)
            times = np.arange(samples) / SAMPLING_RATE
            pitch = np.array([planted_pitch(_at(audio_intensity, t / max(seconds, 1e-9))) for t in times[::160]])
            pitch = np.repeat(pitch, 160)[:samples]
            phase = 2 * np.pi * np.cumsum(pitch) / SAMPLING_RATE
            syllables = 0.6 + 0.4 * np.abs(np.sin(2 * np.pi * 2.5 * times))  # a speech-like 2.5 Hz envelope
            signal = syllables * (0.25 * np.sin(phase) + 0.08 * np.sin(2 * phase)) + 0.01 * rng.standard_normal(samples)
            pcm = (signal.clip(-1, 1) * 32767).astype(np.int16)
            for start in range(0, samples, 1024):
                frame = av.AudioFrame.from_ndarray(pcm[None, start:start + 1024], format="s16", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = SAMPLING_RATE, start, Fraction(1, SAMPLING_RATE)
                for packet in audio.encode(frame):
                    container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)
    return path


def make_synthetic_clips(folder: str | Path, num_train: int = 240, num_validation: int = 60, num_test: int = 60,
                         seconds: float = 2.0, fps: int = 8, size: int = 64, modality_noise: float = 0.6,
                         seed: int = 0) -> Path:
    """Write `folder/label.csv` + `folder/Raw/<video_id>/<clip_id>.mp4` (the `custom` layout). Each clip's label
    y is uniform in [-3, 3]; the transcript, pitch and face carry y + N(0, modality_noise) each (clipped),
    recorded as label_T / label_A / label_V. Rerunning with the same arguments rewrites the same files."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    rows = []
    for mode, count in (("train", num_train), ("valid", num_validation), ("test", num_test)):
        for index in range(count):
            label = float(rng.uniform(-3, 3))
            text_y, audio_y, vision_y = np.clip(label + modality_noise * rng.standard_normal(3), -3, 3)
            video_id, clip_id = f"{mode}_{index // 10:03d}", str(index % 10)
            write_planted_clip(folder / "Raw" / video_id / f"{clip_id}.mp4", audio_y, vision_y, seconds, fps, size,
                               seed=int(rng.integers(1 << 31)))
            rows.append({"video_id": video_id, "clip_id": clip_id,
                         "text": planted_transcript(text_y, TOPICS[int(rng.integers(len(TOPICS)))]),
                         "label": f"{label:.4f}", "label_T": f"{text_y:.4f}", "label_A": f"{audio_y:.4f}",
                         "label_V": f"{vision_y:.4f}", "annotation": "", "mode": mode})
    with atomic_path(folder / "label.csv") as temporary, open(temporary, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder


# The demo's examples: (file name, transcript, audio intensity, vision intensity, seconds).
EXAMPLES = (
    ("positive.mp4", planted_transcript(3, "the concert"), 2.5, 2.5, 3.0),
    ("negative.mp4", planted_transcript(-3, "the hotel"), -2.5, -2.5, 3.0),
    ("neutral.mp4", planted_transcript(0, "the class"), 0.0, 0.0, 3.0),
    ("kind-words-sad-face.mp4", planted_transcript(3, "the trip"), -2.5, -2.5, 3.0),
    ("getting-better.mp4", "The trip started badly, but then it got better and better.",
     lambda t: -3 + 6 * t, lambda t: -3 + 6 * t, 12.0),
)


def write_examples(folder: str | Path, fps: int = 8, size: int = 64) -> Path:
    """The demo's example clips and `examples.json` ([{"video": file, "text": transcript}, ...]) in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    listing = []
    for index, (name, text, audio_y, vision_y, seconds) in enumerate(EXAMPLES):
        write_planted_clip(folder / name, audio_y, vision_y, seconds, fps, size, seed=index)
        listing.append({"video": name, "text": text})
    (folder / "examples.json").write_text(json.dumps(listing, indent=2))
    return folder


__all__ = ["EXAMPLES", "make_synthetic_clips", "planted_face", "planted_pitch", "planted_transcript",
           "write_examples", "write_planted_clip"]
