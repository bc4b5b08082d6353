"""The `multimodal-sentiment-analysis` pipeline: a video file (+ transcript) in, sentiment out."""

from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .video_io import MediaDecodingError

TASK = "multimodal-sentiment-analysis"
SENTIMENT_CLASSES = (
    "strongly negative", "negative", "weakly negative", "neutral", "weakly positive", "positive", "strongly positive"
)


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


class MultimodalSentimentPipeline(Pipeline):
    """Sentiment of a clip: `pipe("clip.mp4", text="transcript")`, `pipe({"video": path, "text": ...})` or
    `pipe({"text": ..., "audio": waveform, "sampling_rate": 16000, "frames": uint8 [F, H, W, 3]})`.

    Returns `{"score": intensity in [-3, 3], "label": polarity, "emotion": 7-class label}` plus, for Semi-IIN,
    `"emotion_scores"` (class probabilities) and `"gate_values"` (mean InterMA weight at the val/cls positions),
    and for the shared/private model / Self-MM `"modality_scores"` (the text/audio/vision predictions). In a batch (a list of
    inputs) an input that cannot be read gives `{"error": message, "input": ...}` instead of stopping the batch.
    """

    _load_processor = True
    _load_tokenizer = False
    _load_feature_extractor = False
    _load_image_processor = False

    def _sanitize_parameters(self, text: str | None = None, **kwargs):
        preprocess = {"text": text} if text is not None else {}
        return preprocess, {}, {}

    def __call__(self, inputs, **kwargs):
        if isinstance(inputs, list) and kwargs.get("batch_size", 1) != 1:
            raise ValueError("The multimodal-sentiment-analysis pipeline runs one clip at a time (batch_size=1).")
        return super().__call__(inputs, **kwargs)

    def preprocess(self, inputs, text: str | None = None):
        described = str(inputs) if not isinstance(inputs, dict) else inputs.get("video")
        try:
            return {"model_inputs": self._processor_inputs(inputs, text), "input": described}
        except (MediaDecodingError, ValueError, OSError) as error:
            return {"error": str(error), "input": described}

    def _processor_inputs(self, inputs, text: str | None):
        if isinstance(inputs, (str, Path)):
            inputs = {"video": inputs}
        if not isinstance(inputs, dict):
            raise ValueError(f"Expected a video path or a dict with 'video' or 'audio'+'frames', got {type(inputs).__name__}.")
        text = inputs.get("text", text)
        if text is None:
            raise ValueError("No transcript: pass text=... (an empty string runs the model without words).")
        if not isinstance(text, str):
            raise ValueError(f"text must be a string (the transcript), got {type(text).__name__}.")
        if not hasattr(self, "_input_limits"):
            self._input_limits = model_input_limits(self.model)  # longer inputs are cut to what the model takes
        if "video" in inputs:
            return self.processor(text=text, videos=inputs["video"], return_tensors="pt", **self._input_limits)
        return self.processor(text=text, audio=inputs.get("audio"), frames=inputs.get("frames"),
                              sampling_rate=inputs.get("sampling_rate"), return_tensors="pt", **self._input_limits)

    def _forward(self, model_inputs):
        if "error" in model_inputs:
            return model_inputs
        try:
            with torch.no_grad():
                output = self.model(**model_inputs["model_inputs"])
        except ValueError as error:  # an input the model refuses is this item's error, not the batch's
            return {"error": str(error), "input": model_inputs.get("input")}
        return {"output": output}

    def postprocess(self, model_outputs):
        if "error" in model_outputs:
            return {"error": model_outputs["error"], "input": model_outputs["input"]}
        output = model_outputs["output"]
        score = float(output.logits[0].clamp(-3.0, 3.0))
        result = {"score": score, "label": polarity(score)}
        emotion_logits = getattr(output, "emotion_logits", None)
        if emotion_logits is not None:  # Semi-IIN's 7-class head
            probabilities = emotion_logits[0].float().softmax(-1)
            names = SENTIMENT_CLASSES if len(probabilities) == len(SENTIMENT_CLASSES) else [
                str(i) for i in range(len(probabilities))
            ]
            result["emotion"] = names[int(probabilities.argmax())]
            result["emotion_scores"] = {name: float(p) for name, p in zip(names, probabilities)}
        else:  # regression-only models: the class of the intensity (bins of width 1 centred on integers)
            result["emotion"] = SENTIMENT_CLASSES[min(6, max(0, int(score + 3.5)))]
        unimodal = {m: getattr(output, f"{m}_logits", None) for m in ("text", "audio", "vision")}
        if all(value is not None for value in unimodal.values()):  # shared/private, Self-MM
            result["modality_scores"] = {m: float(value[0]) for m, value in unimodal.items()}
        gate = getattr(output, "gate_values", None)
        if gate is not None:
            result["gate_values"] = {"val": float(gate[0, 0].mean()), "cls": float(gate[0, 1].mean())}
        return result


PIPELINE_REGISTRY.register_pipeline(
    TASK, pipeline_class=MultimodalSentimentPipeline, pt_model=AutoModelForSequenceClassification
)

__all__ = ["MultimodalSentimentPipeline", "SENTIMENT_CLASSES", "TASK", "polarity"]
