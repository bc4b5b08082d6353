"""MSAProcessor: tokenizer + audio feature extractor + image processor, and video-file decoding."""

from pathlib import Path

import numpy as np
import torch
from transformers import BatchFeature, ProcessorMixin

from .video_io import FACE_CROPS, decode_video


class MSAProcessor(ProcessorMixin):
    r"""
    Turns (transcript, video file) or (transcript, waveform, frames) into the inputs of a Semi-IIN model with
    bundled encoders: `input_ids`/`attention_mask` (tokenizer), 16 kHz `input_values`/`waveform_attention_mask`
    (HuBERT/wav2vec2 feature extractor) and `pixel_values` [B, F, C, H, W]/`frame_attention_mask` (image
    processor on each sampled frame). Batches are right-padded with masks.

    Args:
        tokenizer: Text tokenizer (RoBERTa/BERT family).
        feature_extractor: Audio feature extractor (e.g. `Wav2Vec2FeatureExtractor`).
        image_processor: Per-frame image processor (resize + normalise).
        fps: Frames sampled per second of video.
        max_frames: Frames kept per clip (evenly spaced when a clip has more).
        max_text_length: Tokens kept per transcript.
        max_audio_seconds: Audio kept per clip (None = all).
        face_crop: None, "center" (central square) or "opencv" (largest Haar-cascade face).
    """

    def __init__(
        self,
        tokenizer=None,
        feature_extractor=None,
        image_processor=None,
        fps: float = 3.0,
        max_frames: int = 64,
        max_text_length: int = 100,
        max_audio_seconds: float | None = None,
        face_crop: str | None = None,
        **kwargs,
    ):
        if face_crop is not None and face_crop not in FACE_CROPS:
            raise ValueError(f"face_crop={face_crop!r}; expected None or one of {sorted(FACE_CROPS)}.")
        self.fps = fps
        self.max_frames = max_frames
        self.max_text_length = max_text_length
        self.max_audio_seconds = max_audio_seconds
        self.face_crop = face_crop
        super().__init__(tokenizer, feature_extractor, image_processor, **kwargs)

    @classmethod
    def from_encoders(
        cls, text: str, audio: str | None = None, vision: str | None = None, image_size: int = 256, **kwargs
    ) -> "MSAProcessor":
        """A processor for the encoders of `modeling_msa.semi_iin_config_from_encoders`: the text encoder's tokenizer, the audio
        encoder's feature extractor (a 16 kHz normalising `Wav2Vec2FeatureExtractor` when None) and the vision
        backbone's image processor (a `image_size` resize + normalise for the FabNet-style CNN when None)."""
        from transformers import AutoFeatureExtractor, AutoImageProcessor, AutoTokenizer, Wav2Vec2FeatureExtractor

        try:  # the PIL/numpy backend: no torchvision needed, identical output
            from transformers import ViTImageProcessorPil as ViTImageProcessor
        except ImportError:
            from transformers import ViTImageProcessor

        tokenizer = AutoTokenizer.from_pretrained(text)
        if audio is None:
            feature_extractor = Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True,
                                                         return_attention_mask=True)
        else:
            feature_extractor = AutoFeatureExtractor.from_pretrained(audio)
        if vision is None or vision == "face_cnn":
            image_processor = ViTImageProcessor(size={"height": image_size, "width": image_size})
        else:
            image_processor = AutoImageProcessor.from_pretrained(vision)
        return cls(tokenizer, feature_extractor, image_processor, **kwargs)

    @property
    def sampling_rate(self) -> int:
        return self.feature_extractor.sampling_rate

    def decode_video(self, path: str | Path, start: float | None = None, end: float | None = None) -> dict:
        """{"audio", "frames", "frame_times", "duration"} of a video file at this processor's fps and sampling rate."""
        decoded = decode_video(path, fps=self.fps, sampling_rate=self.sampling_rate, start=start, end=end)
        return {"audio": decoded.audio, "frames": decoded.frames, "frame_times": decoded.frame_times,
                "duration": decoded.duration}

    def __call__(
        self,
        text: str | list[str] | None = None,
        videos: str | Path | list[str | Path] | None = None,
        audio: np.ndarray | list[np.ndarray] | None = None,
        frames: np.ndarray | list[np.ndarray] | None = None,
        sampling_rate: int | None = None,
        return_tensors: str = "pt",
        max_text_length: int | None = None,
        max_audio_samples: int | None = None,
        max_frames: int | None = None,
        **kwargs,
    ) -> BatchFeature:
        """`text` with either `videos` (file paths, decoded with PyAV) or `audio` (1-D waveforms at
        `sampling_rate`, default the feature extractor's) and `frames` (uint8 [F, H, W, 3] each).

        `max_text_length` / `max_audio_samples` (at 16 kHz) / `max_frames` cap this call further than the
        processor's own settings (the pipeline passes what the model accepts, see `model_input_limits`)."""
        if text is None:
            raise ValueError("MSAProcessor needs `text` (the transcript of each clip; an empty string is allowed).")
        texts = [text] if isinstance(text, str) else list(text)
        if videos is not None:
            if audio is not None or frames is not None:
                raise ValueError("Pass either `videos` or `audio` + `frames`, not both.")
            paths = [videos] if isinstance(videos, (str, Path)) else list(videos)
            decoded = [self.decode_video(path) for path in paths]
            audio, frames = [d["audio"] for d in decoded], [d["frames"] for d in decoded]
            sampling_rate = self.sampling_rate
        if audio is None or frames is None:
            raise ValueError("MSAProcessor needs `videos`, or both `audio` (waveforms) and `frames` (video frames).")
        # One array = one clip, except a 2-D audio / 5-D frames array (a stacked batch).
        audios = list(audio) if not isinstance(audio, np.ndarray) or audio.ndim == 2 else [audio]
        clips = list(frames) if not isinstance(frames, np.ndarray) or frames.ndim == 5 else [frames]
        if not len(texts) == len(audios) == len(clips):
            raise ValueError(f"Batch sizes differ: {len(texts)} texts, {len(audios)} waveforms, {len(clips)} clips.")

        encoded = self.tokenizer(texts, padding=True, truncation=True,
                                 max_length=_tightest(self.max_text_length, max_text_length),
                                 return_tensors=return_tensors)
        encoded = dict(encoded)
        encoded.update(self._audio_inputs(audios, sampling_rate or self.sampling_rate, max_audio_samples))
        encoded.update(self._frame_inputs(clips, max_frames))
        return BatchFeature(encoded, tensor_type=return_tensors)

    def _audio_inputs(self, audios: list[np.ndarray], sampling_rate: int, max_samples: int | None = None) -> dict:
        seconds_cap = None if self.max_audio_seconds is None else int(self.max_audio_seconds * self.sampling_rate)
        cap = _tightest(seconds_cap, max_samples)
        waveforms = []
        for index, waveform in enumerate(audios):
            waveform = np.asarray(waveform, dtype=np.float32)
            if waveform.ndim != 1 or waveform.size == 0:
                raise ValueError(f"audio[{index}] must be a non-empty mono waveform [samples], got shape {waveform.shape}.")
            if not np.isfinite(waveform).all():
                raise ValueError(f"audio[{index}] contains NaN or inf samples.")
            if sampling_rate != self.sampling_rate:
                from scipy.signal import resample_poly

                waveform = resample_poly(waveform, self.sampling_rate, sampling_rate).astype(np.float32)
            waveforms.append(waveform[:cap])
        audio = self.feature_extractor(waveforms, sampling_rate=self.sampling_rate, padding=True,
                                       return_attention_mask=True, return_tensors="np")
        return {"input_values": audio["input_values"], "waveform_attention_mask": audio["attention_mask"].astype(np.int64)}

    def _frame_inputs(self, clips: list[np.ndarray], max_frames: int | None = None) -> dict:
        processed = []
        cap = _tightest(self.max_frames, max_frames)
        for index, clip in enumerate(clips):
            clip = np.asarray(clip)
            if clip.ndim != 4 or clip.shape[0] == 0 or clip.shape[-1] != 3:
                raise ValueError(f"frames[{index}] must be RGB frames [frames, height, width, 3], got {clip.shape}.")
            if cap is not None and len(clip) > cap:
                clip = clip[np.linspace(0, len(clip) - 1, cap).round().astype(int)]
            if self.face_crop is not None:
                clip = FACE_CROPS[self.face_crop](clip)
            pixels = self.image_processor(list(clip), return_tensors="pt")["pixel_values"]
            processed.append(pixels)
        longest = max(len(pixels) for pixels in processed)
        pixel_values = torch.zeros(len(processed), longest, *processed[0].shape[1:])
        frame_mask = torch.zeros(len(processed), longest, dtype=torch.long)
        for row, pixels in enumerate(processed):
            pixel_values[row, : len(pixels)] = pixels
            frame_mask[row, : len(pixels)] = 1
        return {"pixel_values": pixel_values, "frame_attention_mask": frame_mask}

    @property
    def model_input_names(self) -> list[str]:
        return [*self.tokenizer.model_input_names, "input_values", "waveform_attention_mask", "pixel_values",
                "frame_attention_mask"]


def _tightest(*caps: int | None) -> int | None:
    """The smallest of the caps that are set (None when none is)."""
    caps = [cap for cap in caps if cap is not None]
    return min(caps) if caps else None


__all__ = ["MSAProcessor"]
