"""Model cards (README.md with model-index metrics) for Hub-ready msa-hub folders."""

from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

TEMPLATE = """---
{{ card_data }}
---

# {{ model_name }}

{{ description }}

Trained with msa-hub on `{{ dataset_name }}` (metrics profile `{{ metrics_profile }}`).

## Usage
{% if with_pipeline %}
```python
from transformers import pipeline

pipe = pipeline("multimodal-sentiment-analysis", model="{{ repo_hint }}", trust_remote_code=True)
pipe("clip.mp4", text="the transcript of the clip")
# {"score": 1.2, "label": "positive", "emotion": "weakly positive", "emotion_scores": {...}, "gate_values": {...}}
```

The folder also holds the processor (`AutoProcessor.from_pretrained(..., trust_remote_code=True)`: video file ->
16 kHz audio + frames + tokens) and `handler.py` for Inference Endpoints. Lower level:
{% endif %}
```python
import torch
from transformers import AutoModelForSequenceClassification

model = AutoModelForSequenceClassification.from_pretrained("{{ repo_hint }}", trust_remote_code=True).eval()
outputs = model(text_features=..., audio_features=..., vision_features=...)  # [B, frames, dim] each
intensity = outputs.logits                        # sentiment intensity in [-3, 3]
sentiment_class = outputs.emotion_logits.argmax(-1)  # 0 = strongly negative ... 6 = strongly positive
```

## Test metrics

| metric | value |
|---|---|
{% for name, value in metrics.items() %}| {{ name }} | {{ "%.4f"|format(value) }} |
{% endfor %}

## Training

Command: `{{ command }}`

Hyper-parameters are in `config.json` (model) and `training_args.json` (optimisation).
"""


def write_model_card(
    save_directory: str | Path,
    model_name: str,
    description: str,
    dataset_name: str,
    metrics: dict[str, float],
    metrics_profile: str,
    command: str,
    with_pipeline: bool = False,
) -> Path:
    """Write README.md with a model-index (one EvalResult per finite metric) into `save_directory`."""
    finite = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and v == v}
    card_data = ModelCardData(
        library_name="transformers",
        model_name=model_name,
        tags=["multimodal-sentiment-analysis", "msa-hub", "custom_code"],
        eval_results=[
            EvalResult(
                task_type="multimodal-sentiment-analysis",
                task_name="Multimodal Sentiment Analysis",
                dataset_type=dataset_name,
                dataset_name=dataset_name,
                dataset_split="test",
                metric_type=name.lower(),
                metric_name=name,
                metric_value=round(value, 6),
            )
            for name, value in finite.items()
        ] or None,
    )
    card = ModelCard.from_template(
        card_data,
        template_str=TEMPLATE,
        model_name=model_name,
        description=description,
        dataset_name=dataset_name,
        metrics_profile=metrics_profile,
        metrics=finite,
        command=command,
        repo_hint=f"your-org/{model_name}",
        with_pipeline=with_pipeline,
    )
    path = Path(save_directory) / "README.md"
    card.save(path)
    return path
