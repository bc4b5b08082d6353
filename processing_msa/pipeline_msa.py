"""The `multimodal-sentiment-analysis` pipeline: a video file (+ transcript) in, sentiment out."""

from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .video_io import MediaDecodingError

TASK = "multimodal-sentiment-analysis"
MODALITY_NAMES = ("text", "audio", "vision")  # literal: this file travels to the Hub without the model package
# Request budgets, checked before any work: a longer transcript, a shorter window or stride, or more windows are refused.
MAX_TRANSCRIPT_CHARACTERS = 20_000
MIN_WINDOW_SECONDS, MIN_STRIDE_SECONDS, MAX_WINDOWS = 0.25, 0.1, 600
SENTIMENT_CLASSES = (
    "strongly negative", "negative", "weakly negative", "neutral", "weakly positive", "positive", "strongly positive"
)


@torch.no_grad()
def modality_contributions(model, **model_inputs: torch.Tensor) -> dict[str, torch.Tensor]:
    """How much each modality moves a Semi-IIN's predicted intensity: `score(all) - score(modality masked out)`, [B]
    per modality. Masking out replaces the modality by one all-zero frame (the model has no "missing modality"
    input), so this is an occlusion estimate, not an exact attribution; the encoders run once."""
    features, masks = model.semi_iin.encode_inputs(**model_inputs)
    inputs = {f"{name}_{kind}": value for name in MODALITY_NAMES
              for kind, value in (("features", features[name]), ("attention_mask", masks[name]))}
    full = model(**inputs).logits
    contributions = {}
    for name in MODALITY_NAMES:
        batch, _, size = features[name].shape
        occluded = {**inputs, f"{name}_features": features[name].new_zeros(batch, 1, size),
                    f"{name}_attention_mask": torch.ones(batch, 1, dtype=torch.long, device=full.device)}
        contributions[name] = full - model(**occluded).logits
    return contributions


def model_input_limits(model) -> dict:
    """The longest inputs `model` accepts, as `MSAProcessor` call caps: `max_text_length` (Semi-IIN text slots and
    the text encoder's positions), `max_audio_samples` (16 kHz samples whose encoder frames still fit Semi-IIN's
    audio slots after its Conv1d stack) and `max_frames` (vision slots). Absent where the model has no limit."""
    config = model.config
    limits = {}
    text_caps = [getattr(config, "max_text_tokens", None)]
    text_config = getattr(config, "text_config", None)
    if text_config is not None and getattr(text_config, "max_position_embeddings", None):
        text_caps.append(text_config.max_position_embeddings - 2)  # RoBERTa's padding offset; 2 spare for BERT
    text_caps = [n for n in text_caps if n]
    if text_caps:
        limits["max_text_length"] = min(text_caps)
    if getattr(config, "max_vision_tokens", None):
        limits["max_frames"] = config.max_vision_tokens
    encoders = getattr(model, "encoders", None)
    encoder = encoders["audio"] if encoders is not None and "audio" in encoders else None
    # Semi-IIN's audio Conv1d stack, which knows its own output lengths
    projection = getattr(getattr(getattr(model, "semi_iin", None), "embeddings", None), "audio_projection", None)
    if getattr(config, "max_audio_tokens", None) and hasattr(encoder, "_get_feat_extract_output_lengths") and hasattr(
        projection, "output_lengths"
    ):
        def tokens(samples: int) -> int:
            frames = encoder._get_feat_extract_output_lengths(torch.tensor([samples]))
            return int(projection.output_lengths(frames)[0])

        low, high = 1, 1 << 34  # largest sample count whose tokens fit: tokens() is non-decreasing
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if tokens(middle) <= config.max_audio_tokens else (low, middle - 1)
        limits["max_audio_samples"] = low
    return limits


def polarity(score: float) -> str:
    """MOSI/MOSEI convention: < 0 negative, 0 neutral, > 0 positive."""
    return "positive" if score > 0 else "negative" if score < 0 else "neutral"


def intensity_class(score: float) -> str:
    """The 7-class label of an intensity (bins of width 1 centred on -3..3), as Acc-7 scores it."""
    return SENTIMENT_CLASSES[min(6, max(0, int(round(max(-3.0, min(3.0, score))) + 3)))]


class MultimodalSentimentPipeline(Pipeline):
    """Sentiment of a clip: `pipe("clip.mp4", text="transcript")`, `pipe({"video": path, "text": ...})` or
    `pipe({"text": ..., "audio": waveform, "sampling_rate": 16000, "frames": uint8 [F, H, W, 3]})`.

    Returns `{"score": intensity in [-3, 3], "label": polarity, "emotion": 7-class label}`. `label` and `emotion`
    both come from `score` (its sign, and its bin as Acc-7 counts it), so they never disagree. Semi-IIN adds
    `"emotion_scores"` (the probabilities of its separate 7-class head, whose top class can differ from `emotion`
    near a bin edge) and `"gate_values"` (mean InterMA weight at the val/cls positions); the shared/private model /
    Self-MM adds `"modality_scores"` (its text/audio/vision heads' predictions).

    Options: `explain=True` adds `"modality_contributions"` (Semi-IIN: score minus the score with that modality
    masked out, see `modality_contributions`; shared/private: its unimodal scores). `window_seconds=` (video files)
    adds `"timeline"`: the score of each window of that length, every `stride_seconds` (default half a window),
    with the whole transcript for each window (no word timings). In a batch (a list of inputs) an input that cannot
    be read gives `{"error": message, "input": ...}` instead of stopping the batch.
    """

    _load_processor = True
    _load_tokenizer = False
    _load_feature_extractor = False
    _load_image_processor = False

    def _sanitize_parameters(self, text: str | None = None, explain: bool | None = None,
                             window_seconds: float | None = None, stride_seconds: float | None = None, **kwargs):
        preprocess = {"text": text} if text is not None else {}
        if window_seconds is not None:
            if not window_seconds >= MIN_WINDOW_SECONDS or (stride_seconds is not None
                                                            and not stride_seconds >= MIN_STRIDE_SECONDS):
                raise ValueError(f"window_seconds ({window_seconds}) must be >= {MIN_WINDOW_SECONDS} and stride_seconds "
                                 f"({stride_seconds}) >= {MIN_STRIDE_SECONDS}.")
            preprocess.update(window_seconds=window_seconds, stride_seconds=stride_seconds or window_seconds / 2)
        forward = {"explain": bool(explain)} if explain is not None else {}
        return preprocess, forward, {}

    def __call__(self, inputs, **kwargs):
        if isinstance(inputs, list) and kwargs.get("batch_size", 1) != 1:
            raise ValueError("The multimodal-sentiment-analysis pipeline runs one clip at a time (batch_size=1).")
        return super().__call__(inputs, **kwargs)

    def preprocess(self, inputs, text: str | None = None, window_seconds: float | None = None,
                   stride_seconds: float | None = None):
        described = str(inputs) if not isinstance(inputs, dict) else inputs.get("video")
        try:
            inputs, text = self._clip(inputs, text)
            if window_seconds is None:
                return {"model_inputs": self._processor_inputs(inputs, text), "input": described}
            if "video" in inputs:
                inputs = {**self.processor.decode_video(inputs["video"]), "sampling_rate": self.processor.sampling_rate}
            windows = [(start, end, self._processor_inputs(window, text))
                       for start, end, window in self._windows(inputs, window_seconds, stride_seconds)]
            return {"model_inputs": self._processor_inputs(inputs, text), "windows": windows, "input": described}
        except (MediaDecodingError, ValueError, OSError) as error:
            return {"error": str(error), "input": described}

    def _clip(self, inputs, text: str | None) -> tuple[dict, str]:
        if isinstance(inputs, (str, Path)):
            inputs = {"video": inputs}
        if not isinstance(inputs, dict):
            raise ValueError(f"Expected a video path or a dict with 'video' or 'audio'+'frames', got {type(inputs).__name__}.")
        text = inputs.get("text", text)
        if text is None:
            raise ValueError("No transcript: pass text=... (an empty string runs the model without words).")
        if not isinstance(text, str):
            raise ValueError(f"text must be a string (the transcript), got {type(text).__name__}.")
        if len(text) > MAX_TRANSCRIPT_CHARACTERS:
            raise ValueError(f"text is {len(text)} characters, above the limit of {MAX_TRANSCRIPT_CHARACTERS} (the "
                             "model reads the first few hundred tokens): send the clip's own transcript.")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(f"text is not valid Unicode at character {error.start} (an unpaired surrogate).") from None
        return inputs, text

    def _windows(self, inputs: dict, window_seconds: float, stride_seconds: float):
        """(start, end, {"audio", "frames", "sampling_rate"}) windows of a decoded clip, cut by time: the frames whose
        timestamps (`frame_times`; else evenly spaced over the audio) fall in the window (else the latest before it)
        and its audio, silence-padded where the soundtrack ended earlier. The last window ends at the end (`duration`,
        else the later of the audio's end and the last frame's)."""
        audio, frames = inputs.get("audio"), inputs.get("frames")
        if audio is None or frames is None:
            raise ValueError("window_seconds needs a video file or 'audio' + 'frames'.")
        rate = inputs.get("sampling_rate") or self.processor.sampling_rate
        times = inputs.get("frame_times")
        if times is None:
            times = torch.arange(len(frames)).double() * (len(audio) / rate / max(len(frames), 1))
        times = torch.as_tensor(times, dtype=torch.float64)
        step = float(times[1] - times[0]) if len(times) > 1 else 0.0
        duration = inputs.get("duration") or max(len(audio) / rate, float(times[-1]) + step)
        count = 1 + max(0, int(-(-(duration - window_seconds) // stride_seconds)))
        if count > MAX_WINDOWS:
            raise ValueError(f"window_seconds={window_seconds} and stride_seconds={stride_seconds} give {count} windows "
                             f"over {duration:.0f} s, above the limit of {MAX_WINDOWS}: raise stride_seconds.")
        for start in (index * stride_seconds for index in range(count)):
            end = min(start + window_seconds, duration)
            inside = ((times >= start - 1e-6) & (times < end - 1e-6)).nonzero().flatten().tolist()
            picked = inside or [max(0, int((times <= start + 1e-6).sum()) - 1)]
            window_audio = audio[int(start * rate):int(end * rate)]
            missing = max(1, int(end * rate) - int(start * rate)) - len(window_audio)
            if missing > 0:
                window_audio = np.concatenate([window_audio, np.zeros(missing, dtype=window_audio.dtype)])
            yield round(start, 3), round(end, 3), {"audio": window_audio, "frames": frames[picked[0]:picked[-1] + 1],
                                                   "sampling_rate": rate}

    def _processor_inputs(self, inputs: dict, text: str):
        if not hasattr(self, "_input_limits"):
            self._input_limits = model_input_limits(self.model)  # longer inputs are cut to what the model takes
        if "video" in inputs:
            return self.processor(text=text, videos=inputs["video"], return_tensors="pt", **self._input_limits)
        return self.processor(text=text, audio=inputs.get("audio"), frames=inputs.get("frames"),
                              sampling_rate=inputs.get("sampling_rate"), return_tensors="pt", **self._input_limits)

    def _forward(self, model_inputs, explain: bool = False):
        if "error" in model_inputs:
            return model_inputs
        try:
            with torch.no_grad():
                result = {"output": self.model(**model_inputs["model_inputs"])}
                if explain and hasattr(self.model, "semi_iin"):
                    result["contributions"] = modality_contributions(self.model, **model_inputs["model_inputs"])
                if "windows" in model_inputs:
                    result["timeline"] = [(start, end, float(self.model(**inputs).logits[0].clamp(-3.0, 3.0)))
                                          for start, end, inputs in model_inputs["windows"]]
        except ValueError as error:  # an input the model refuses is this item's error, not the batch's
            return {"error": str(error), "input": model_inputs.get("input")}
        result["explain"] = explain
        return result

    def postprocess(self, model_outputs):
        if "error" in model_outputs:
            return {"error": model_outputs["error"], "input": model_outputs["input"]}
        output = model_outputs["output"]
        score = float(output.logits[0].clamp(-3.0, 3.0))
        result = {"score": score, "label": polarity(score), "emotion": intensity_class(score)}
        emotion_logits = getattr(output, "emotion_logits", None)
        if emotion_logits is not None:  # Semi-IIN's 7-class head
            probabilities = emotion_logits[0].float().softmax(-1)
            names = SENTIMENT_CLASSES if len(probabilities) == len(SENTIMENT_CLASSES) else [
                str(i) for i in range(len(probabilities))
            ]
            result["emotion_scores"] = {name: float(p) for name, p in zip(names, probabilities)}
        unimodal = {m: getattr(output, f"{m}_logits", None) for m in MODALITY_NAMES}
        if all(value is not None for value in unimodal.values()):  # shared/private, Self-MM
            result["modality_scores"] = {m: float(value[0]) for m, value in unimodal.items()}
        gate = getattr(output, "gate_values", None)
        if gate is not None:
            result["gate_values"] = {"val": float(gate[0, 0].mean()), "cls": float(gate[0, 1].mean())}
        if model_outputs.get("explain"):
            contributions = model_outputs.get("contributions")
            result["modality_contributions"] = (
                {m: float(contributions[m][0]) for m in MODALITY_NAMES} if contributions is not None
                else result.get("modality_scores")
            )
        if "timeline" in model_outputs:
            result["timeline"] = [{"start": start, "end": end, "score": value}
                                  for start, end, value in model_outputs["timeline"]]
        return result


def register_pipeline() -> None:
    """Register the task once. A published folder's remote copy of this module, loaded beside the installed one,
    keeps the first registration (no "already registered ... Overwriting" warning) and only records its own
    task entry, which `save_pretrained` of its pipelines writes as `custom_pipelines`."""
    registered = PIPELINE_REGISTRY.supported_tasks.get(TASK)
    if registered is not None and registered["impl"].__name__ == MultimodalSentimentPipeline.__name__:
        MultimodalSentimentPipeline._registered_impl = {TASK: {**registered, "impl": MultimodalSentimentPipeline}}
        return
    PIPELINE_REGISTRY.register_pipeline(
        TASK, pipeline_class=MultimodalSentimentPipeline, pt_model=AutoModelForSequenceClassification
    )


register_pipeline()

__all__ = ["MultimodalSentimentPipeline", "SENTIMENT_CLASSES", "TASK", "intensity_class", "polarity"]
