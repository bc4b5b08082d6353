"""Decode a video file into 16 kHz mono audio and RGB frames at a chosen frame rate (PyAV, no torchaudio)."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

REENCODE_HINT = "re-encode it, e.g. `ffmpeg -i IN -c:v libx264 -c:a aac -ar 16000 OUT.mp4`"


class MediaDecodingError(ValueError):
    """A media file that cannot be used: unreadable, corrupt, or missing a stream the model needs."""


@dataclass(frozen=True)
class MediaBudget:
    """What decoding one clip may cost, checked from the file's metadata before decoding and again while decoding
    (metadata can lie). Defaults can be changed per process with the environment variables named below.

    max_seconds: longest span decoded (MSA_MAX_MEDIA_SECONDS, default 600).
    max_frame_side: frames with a longer side are downscaled while decoding, keeping the aspect ratio; the encoders
        take 224-256 pixels (MSA_MAX_FRAME_SIDE, default 640).
    max_decoded_bytes: kept frames (after downscaling) plus float32 audio (MSA_MAX_DECODED_MB, default 1024 MiB).
    """

    max_seconds: float = 600.0
    max_frame_side: int = 640
    max_decoded_bytes: int = 1024 * 2**20

    @classmethod
    def from_environment(cls) -> "MediaBudget":
        import os

        try:
            return cls(float(os.environ.get("MSA_MAX_MEDIA_SECONDS", cls.max_seconds)),
                       int(os.environ.get("MSA_MAX_FRAME_SIDE", cls.max_frame_side)),
                       int(float(os.environ.get("MSA_MAX_DECODED_MB", cls.max_decoded_bytes / 2**20)) * 2**20))
        except ValueError as error:
            raise ValueError("MSA_MAX_MEDIA_SECONDS / MSA_MAX_FRAME_SIDE / MSA_MAX_DECODED_MB must be numbers "
                             f"({error}).") from None


def _output_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled so that the longer side is at most `max_side` (even sizes, for the YUV reformat)."""
    scale = min(1.0, max_side / max(width, height, 1))
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def _check_budget(path: str, budget: MediaBudget, seconds: float | None, frames: int, size: tuple[int, int],
                  sampling_rate: int, has_audio: bool) -> None:
    """Refuse, before decoding, a clip whose span or decoded size exceeds `budget`."""
    if seconds is not None and seconds > budget.max_seconds:
        raise MediaDecodingError(f"{path}: {seconds:.0f} s to decode, above the limit of {budget.max_seconds:g} s "
                                 "(MSA_MAX_MEDIA_SECONDS): cut the clip, or pass start/end.")
    needed = frames * size[0] * size[1] * 3 + (int((seconds or 0) * sampling_rate) * 4 if has_audio else 0)
    if needed > budget.max_decoded_bytes:
        raise MediaDecodingError(
            f"{path}: decoding would hold about {needed / 2**20:.0f} MiB ({frames} frames of {size[0]}x{size[1]} and "
            f"the audio), above the limit of {budget.max_decoded_bytes / 2**20:.0f} MiB (MSA_MAX_DECODED_MB): lower "
            "fps or max_frames, or cut the clip.")


@dataclass
class DecodedVideo:
    """frames: uint8 [F, H, W, 3] RGB; frame_times: seconds [F]; audio: float32 [S] mono in [-1, 1]; duration: the
    decoded span in seconds (from the container), when known."""

    frames: np.ndarray
    frame_times: np.ndarray
    audio: np.ndarray | None
    sampling_rate: int
    path: str
    duration: float | None = None


def decode_video(
    path: str | Path,
    fps: float = 3.0,
    sampling_rate: int = 16000,
    start: float | None = None,
    end: float | None = None,
    max_frames: int | None = None,
    require_audio: bool = True,
    budget: MediaBudget | None = None,
) -> DecodedVideo:
    """Frames sampled at `fps` (one per 1/fps seconds, the first frame at/after each tick), the soundtrack
    resampled to mono `sampling_rate`, both within [start, end) seconds. Raises `MediaDecodingError` naming the
    file for unreadable/corrupt media, no video stream, (with `require_audio`) no audio stream, or a clip above
    `budget` (default `MediaBudget.from_environment()`); frames are downscaled to the budget's `max_frame_side`."""
    import av

    path = str(path)
    if not Path(path).is_file():
        raise MediaDecodingError(f"{path}: no such file.")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}.")
    start_time = float(start or 0.0)
    try:
        container = av.open(path)
    except (av.error.FFmpegError, OSError) as error:
        raise MediaDecodingError(f"{path}: not a readable media file ({error}); {REENCODE_HINT}.") from error
    with container:
        if not container.streams.video:
            raise MediaDecodingError(f"{path}: has no video stream; pass the frames and audio to the processor directly.")
        if require_audio and not container.streams.audio:
            raise MediaDecodingError(
                f"{path}: has no audio stream. The models need the soundtrack: use a file with audio, or pass "
                "`audio=` (a 16 kHz waveform) with `frames=` to the processor."
            )
        budget = budget or MediaBudget.from_environment()
        video_stream = container.streams.video[0]
        size = _output_size(video_stream.codec_context.width or 1, video_stream.codec_context.height or 1,
                            budget.max_frame_side)
        duration = container.duration / av.time_base if container.duration else None
        stop = min(t for t in (end, duration) if t is not None) if (end, duration) != (None, None) else None
        seconds = None if stop is None else max(0.0, stop - start_time)  # the span to decode
        expected_frames = int(seconds * fps) + 1 if seconds is not None else 1
        if max_frames is not None:
            expected_frames = min(expected_frames, max_frames)
        _check_budget(path, budget, seconds, expected_frames, size, sampling_rate, bool(container.streams.audio))
        streams = [video_stream] + list(container.streams.audio[:1])
        frames, times, audio_chunks = [], [], []
        decoded_bytes = 0
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sampling_rate)
        next_tick = start_time
        if start_time > 0:
            container.seek(int(start_time * av.time_base), backward=True)
        try:
            for packet in container.demux(streams):
                for frame in packet.decode():
                    time = float(frame.time) if frame.time is not None else None
                    if time is None or time < start_time or (end is not None and time >= end):
                        continue
                    if time - start_time > budget.max_seconds:  # the metadata understated the duration
                        _check_budget(path, budget, time - start_time, 0, size, sampling_rate, False)
                    if packet.stream.type == "video":
                        if time + 1e-6 >= next_tick and (max_frames is None or len(frames) < max_frames):
                            width, height = _output_size(frame.width, frame.height, budget.max_frame_side)
                            frames.append(frame.to_ndarray(format="rgb24", width=width, height=height))
                            times.append(time)
                            decoded_bytes += frames[-1].nbytes
                            next_tick += 1.0 / fps * max(1, int((time - next_tick) * fps + 1e-6) + 1)
                    else:
                        for resampled in resampler.resample(frame):
                            audio_chunks.append(resampled.to_ndarray().reshape(-1))
                            decoded_bytes += audio_chunks[-1].nbytes
                    if decoded_bytes > budget.max_decoded_bytes:
                        raise MediaDecodingError(
                            f"{path}: the decoded frames and audio passed the limit of "
                            f"{budget.max_decoded_bytes / 2**20:.0f} MiB (MSA_MAX_DECODED_MB) at {time:.1f} s: lower "
                            "fps or cut the clip.")
            if container.streams.audio:
                for resampled in resampler.resample(None):
                    audio_chunks.append(resampled.to_ndarray().reshape(-1))
        except av.error.FFmpegError as error:
            raise MediaDecodingError(f"{path}: decoding failed ({error}); {REENCODE_HINT}.") from error
    if not frames:
        raise MediaDecodingError(
            f"{path}: no video frame decoded in [{start_time}, {end}) s (video duration: {duration} s): the segment lies "
            "outside the video, or the file is corrupt."
        )
    audio = np.concatenate(audio_chunks).astype(np.float32) if audio_chunks else None
    if audio is not None and seconds is not None:  # drop codec padding past the clip (AAC pads whole frames)
        audio = audio[: int(round(seconds * sampling_rate))]
    if require_audio and (audio is None or audio.size == 0):
        raise MediaDecodingError(f"{path}: the audio stream holds no samples in [{start_time}, {end}) s.")
    return DecodedVideo(np.stack(frames), np.asarray(times), audio, sampling_rate, path, seconds)


def load_clip(row: dict, fps: float, sampling_rate: int) -> dict:
    """`{"text", "audio", "frames"}` of one indexed clip (a row of `load_msa_dataset("custom"/"sims"/"ami")`):
    `video_path` with its soundtrack, or (AMI) a `video_path` segment plus the same `start`/`end` segment of a
    separate `audio_path` (resampled to `sampling_rate`)."""
    start, end = row.get("start"), row.get("end")
    text = row.get("raw_text") or ""
    if not row.get("audio_path"):
        decoded = decode_video(row["video_path"], fps=fps, sampling_rate=sampling_rate, start=start, end=end)
        return {"text": text, "audio": decoded.audio, "frames": decoded.frames}
    import soundfile

    frames = decode_video(row["video_path"], fps=fps, start=start, end=end, require_audio=False).frames
    try:
        with soundfile.SoundFile(row["audio_path"]) as handle:
            rate, first = handle.samplerate, int((start or 0.0) * handle.samplerate)
            if first >= handle.frames:
                raise MediaDecodingError(
                    f"{row['audio_path']}: no samples in [{start}, {end}) s (audio duration: {handle.frames / rate} s)."
                )
            handle.seek(first)
            count = -1 if end is None else int((end - (start or 0.0)) * rate)
            audio = handle.read(count, dtype="float32", always_2d=True).mean(axis=1)
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise MediaDecodingError(f"{row['audio_path']}: not a readable audio file ({error}).") from error
    if audio.size == 0:
        raise MediaDecodingError(f"{row['audio_path']}: no samples in [{start}, {end}) s.")
    if rate != sampling_rate:
        from scipy.signal import resample_poly

        audio = resample_poly(audio, sampling_rate, rate).astype(np.float32)
    return {"text": text, "audio": audio, "frames": frames}


def center_square_crop(frames: np.ndarray) -> np.ndarray:
    """The central square of frames [F, H, W, C] (the face region of a talking-head clip)."""
    height, width = frames.shape[1:3]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return frames[:, top : top + side, left : left + side]


def opencv_face_crop(frames: np.ndarray, margin: float = 0.2) -> np.ndarray:
    """Crop every frame to the largest face found by OpenCV's Haar cascade (opencv-python-headless), with a
    margin; the previous face box (or the centre square) where none is found."""
    try:
        import cv2
    except ImportError as error:
        raise ImportError("face_crop='opencv' needs OpenCV: pip install opencv-python-headless") from error
    detector = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    height, width = frames.shape[1:3]
    side = min(height, width)
    box = ((width - side) // 2, (height - side) // 2, side, side)
    crops = []
    for frame in frames:
        faces = detector.detectMultiScale(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), 1.1, 5)
        if len(faces):
            x, y, w, h = max(faces, key=lambda face: face[2] * face[3])
            pad = int(margin * max(w, h))
            box = (max(0, x - pad), max(0, y - pad), min(width, x + w + pad) - max(0, x - pad),
                   min(height, y + h + pad) - max(0, y - pad))
        x, y, w, h = box
        crops.append(cv2.resize(frame[y : y + h, x : x + w], (side, side)))
    return np.stack(crops)


FACE_CROPS = {"center": center_square_crop, "opencv": opencv_face_crop}

__all__ = [
    "DecodedVideo", "FACE_CROPS", "MediaBudget", "MediaDecodingError", "center_square_crop", "decode_video", "load_clip",
    "opencv_face_crop",
]
