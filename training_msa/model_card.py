"""Model cards (README.md: Hub metadata, usage, metrics, pictures, limitations, citations) for msa-hub folders."""

import json
import math
import os
import re
import shlex
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .msa_metrics.msa_metrics import MODEL_INDEX_TYPES

LICENSE = "apache-2.0"  # the project's license; the data a model was trained on may add its own terms (see card)
# Corpus names as the community cites them (none of the CMU/SIMS corpora is an official Hub dataset repository).
DATASET_NAMES = {"mosi": "CMU-MOSI", "mosei": "CMU-MOSEI", "sims": "CH-SIMS", "ami": "AMI Meeting Corpus"}
CITATIONS = {
    "semi_iin": """@inproceedings{lin2025semiiin,
  title     = {Semi-IIN: Semi-supervised Intra-inter modal Interaction Learning Network for Multimodal Sentiment Analysis},
  author    = {Lin, Jinhao and Wang, Yifei and Xu, Yanwu and Liu, Qi},
  booktitle = {Proceedings of the AAAI Conference on Artificial Intelligence},
  year      = {2025},
  eprint    = {2412.09784},
  archivePrefix = {arXiv}
}""",
    "shared_private": """@article{lai2023sharedprivate,
  title   = {Shared and Private Information Learning in Multimodal Sentiment Analysis with Deep Modal Alignment and
             Self-supervised Multi-Task Learning},
  author  = {Lai, Songning and Li, Jiakang and Guo, Guinan and Hu, Xifeng and Li, Yulong and Tan, Yuan and Song, Zichen
             and Liu, Yutong and Ren, Zhaoxia and Wan, Chun and Miao, Danmin and Liu, Zhi},
  journal = {arXiv preprint arXiv:2305.08473},
  year    = {2023}
}""",
    "self_mm": """@inproceedings{yu2021selfmm,
  title     = {Learning Modality-Specific Representations with Self-Supervised Multi-Task Learning for Multimodal
               Sentiment Analysis},
  author    = {Yu, Wenmeng and Xu, Hua and Yuan, Ziqi and Wu, Jiele},
  booktitle = {Proceedings of the AAAI Conference on Artificial Intelligence},
  year      = {2021}
}""",
}
PLOT_TITLES = {
    "learning_curves.png": "Learning curves",
    "predicted_vs_true.png": "Predicted vs true intensity (test set)",
    "confusion_matrix.png": "7-class confusion matrix (test set)",
    "gate_values.png": "Gate values at val/cls (test set)",
}

TEMPLATE = """---
{{ card_data }}
---

# {{ model_name }}

{{ description }}

{{ data_sentence }}

## Usage
{% if with_pipeline %}
```python
from transformers import pipeline

repo = "."  # this folder; once pushed to the Hub, its id ("{{ repo_hint }}")
pipe = pipeline("multimodal-sentiment-analysis", model=repo, trust_remote_code=True)
pipe({{ example_video }}, text={{ example_text }}, explain=True, window_seconds=4)
# {"score": 1.2, "label": "positive", "emotion": "weakly positive", "emotion_scores": {...}, "gate_values": {...},
#  "modality_contributions": {"text": ..., "audio": ..., "vision": ...}, "timeline": [{"start": 0.0, ...}, ...]}
```

`label` and `emotion` come from `score` (its sign and its Acc-7 bin). The folder also holds the processor
(`AutoProcessor.from_pretrained(..., trust_remote_code=True)`: video file -> 16 kHz audio + frames + tokens),
`handler.py` for Inference Endpoints{% if with_examples %} and example clips (`examples/`, with `examples.json`){% endif %}.
Demo: `python -m processing_msa.demo {{ repo_hint }}` (msa-hub). Lower level:
{% endif %}
```python
import torch
from transformers import AutoModelForSequenceClassification

repo = "."  # this folder; once pushed to the Hub, its id ("{{ repo_hint }}")
model = AutoModelForSequenceClassification.from_pretrained(repo, trust_remote_code=True).eval()
# frame features [batch, frames, dim] (random here); masks *_attention_mask: 1 = real frame, 0 = padding
outputs = model({{ feature_inputs }})
intensity = outputs.logits                        # sentiment intensity in [-3, 3]
```

{{ feature_sentence }}

## Test metrics
{% if metrics %}
| metric | value |
|---|---|
{% for name, value in metrics.items() %}| {{ name }} | {{ "%.4f"|format(value) }} |
{% endfor %}
{% else %}
Not evaluated: this folder was saved without test metrics{% if not_evaluated_reason %} ({{ not_evaluated_reason }}){% endif %}.
{% endif %}
{% if plots %}
## Training pictures
{% for file, title in plots %}
![{{ title }}]({{ file }})
{% endfor %}
{% endif %}
## Training

Command: `{{ command }}`

Hyper-parameters are in `config.json` (model){% if with_training_args %} and `training_args.json` (optimisation){% endif %}.
{% if base_models %}Bundled encoders start from: {% for name in base_models %}[{{ name }}](https://huggingface.co/{{ name }}){% if not loop.last %}, {% endif %}{% endfor %}.{% endif %}

## Limitations

- {{ data_limitation }}
- Multimodal sentiment corpora are small (MOSI: 2,199 clips of English YouTube reviews), from few speakers, in one
  language and one genre; scores on other languages, cultures, recording conditions or topics are not validated.
- The intensity is an opinion rating of what is said and shown, not a measure of a person's emotional state; do not
  use it to make decisions about individuals.
- `modality_contributions` of Semi-IIN are occlusion estimates (a modality replaced by a zero frame), not exact
  attributions.

## Citation

{% for citation in citations %}
```bibtex
{{ citation }}
```
{% endfor %}
"""


def feature_frames(config) -> dict[str, int]:
    """Frames per modality that fit the model: up to 10 tokens each within a Semi-IIN's position slots (the audio
    frames that its Conv1d stack turns into at most that many tokens)."""
    if getattr(config, "model_type", None) != "semi_iin":
        return {"text": 10, "audio": 80, "vision": 10}
    from .data import model_token_limits

    audio_tokens = min(10, config.max_audio_tokens)
    frames = {"text": min(10, config.max_text_tokens), "audio": audio_tokens * math.prod(config.audio_strides),
              "vision": min(10, config.max_vision_tokens)}
    while frames["audio"] > 1 and model_token_limits(config, frames)["max_audio_tokens"] > audio_tokens:
        frames["audio"] -= 1
    return frames


def feature_inputs(config) -> str:
    """The keyword arguments of a runnable forward call on random features of the model's sizes."""
    if config is None:
        return "text_features=..., audio_features=..., vision_features=..."
    frames = feature_frames(config)
    return ", ".join(f"{name}_features=torch.randn(1, {frames[name]}, {getattr(config, f'{name}_feature_size')})"
                     for name in ("text", "audio", "vision"))


def feature_sentence(config, dataset_name: str, with_pipeline: bool) -> str:
    """Where the features the model expects come from."""
    if config is None:
        return ""
    sizes = ", ".join(f"{name} {getattr(config, f'{name}_feature_size')}-d" for name in ("text", "audio", "vision"))
    if dataset_name == "synthetic":
        source = ("random features of msa-hub's embedded synthetic dataset (`train.py` with no data): this model is a "
                  "demonstration of the machinery, not a model of real clips")
    elif with_pipeline:
        source = "the outputs of the bundled encoders, which the pipeline and the processor run on a video file"
        encoders = []
        for modality in ("text", "audio", "vision"):
            sub_config = getattr(config, f"{modality}_config", None)
            if sub_config is not None:
                name = getattr(sub_config, "_name_or_path", None)
                origin = f"pretrained {name}" if _looks_like_repo_id(name) else "built from its config with random weights"
                encoders.append(f"{modality}: `{sub_config.model_type}`, {origin}")
        frozen = "frozen during training" if getattr(config, "freeze_encoders", False) else "trained with the fusion"
        source += f" ({'; '.join(encoders)}; {frozen})"
    else:
        source = (f"the features of the training data (`{dataset_name}`); for your clips, extract the same kind with "
                  "the same encoders (`python -m processing_msa.extract_features` in msa-hub)")
    return f"Features: {sizes} frame features, {source}."


def _looks_like_repo_id(name: str | None) -> bool:
    return bool(name) and not os.path.isabs(name) and not os.path.exists(name) and bool(
        re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", name))


def base_models(config) -> list[str]:
    """Hub ids of the bundled encoders' checkpoints (`_name_or_path` of each encoder sub-config that names one)."""
    names = []
    for modality in ("text", "audio", "vision"):
        sub_config = getattr(config, f"{modality}_config", None)
        name = getattr(sub_config, "_name_or_path", None) if sub_config is not None else None
        if _looks_like_repo_id(name) and name not in names:
            names.append(name)
    return names


# Flag/key names whose values are credentials (`--hub_token`, `push_to_hub_token`, `wandb_api_key`, ...), and
# values that look like one whatever their name (Hugging Face, GitHub, OpenAI-style tokens).
SECRET_NAME = re.compile(r"(^|[_-])(token|password|passwd|secret|api[_-]?key|access[_-]?key|credentials?)$", re.I)
SECRET_VALUE = re.compile(
    r"(hf_[A-Za-z0-9]{16,}|api_org_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,})")
REDACTED = "<redacted>"


def environment_secrets() -> list[str]:
    """Values of environment variables named like credentials (HF_TOKEN, WANDB_API_KEY, ...), 8 characters or more."""
    return [value for name, value in os.environ.items() if SECRET_NAME.search(name) and len(value) >= 8]


def redact(value: str, secrets: list[str] | None = None) -> str:
    """`value` with token-like substrings and the environment's secret values replaced by `<redacted>`."""
    for secret in environment_secrets() if secrets is None else secrets:
        value = value.replace(secret, REDACTED)
    return SECRET_VALUE.sub(REDACTED, value)


def portable_path(value: str) -> str:
    """`<last component>` for an absolute, home or drive path (a publisher's local folder) or a relative one that
    climbs out of the working folder (`../other/run`), else `value`."""
    if value.startswith(("/", "~")) or re.match(r"^[A-Za-z]:[\\/]", value) or ".." in Path(value).parts:
        return f"<{Path(value).name or 'path'}>"
    return value


def portable_command(command: str) -> str:
    """`command` with every absolute, home or climbing path replaced by its last component (`portable_path`) and
    every credential redacted (the value of a flag named like one, token-like values): a card never records the
    publisher's local folders or secrets."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    return shlex.join(redact_arguments(words, value=portable_path))


def redact_arguments(words: list[str], value=lambda text: text) -> list[str]:
    """Command-line words with every credential redacted: the value of a flag named like one (`--hub_token X`,
    `--hub_token=X`), token-like values and the environment's secret values; `value` maps each value first."""
    secrets = environment_secrets()
    cleaned, previous_is_secret = [], False
    for word in words:
        prefix, _, text = word.partition("=") if word.startswith("--") and "=" in word else ("", "", word)
        if previous_is_secret or (prefix and SECRET_NAME.search(prefix.lstrip("-"))):
            text = REDACTED
        text = redact(value(text), secrets)
        cleaned.append(f"{prefix}={text}" if prefix else text)
        previous_is_secret = not prefix and word.startswith("--") and bool(SECRET_NAME.search(word.lstrip("-")))
    return cleaned


def citation_keys(model_type: str, config=None) -> list[str]:
    if model_type == "semi_iin":
        return ["semi_iin"]
    keys = ["shared_private", "self_mm"]  # the shared/private model builds on Self-MM (ULGM)
    return keys[::-1] if getattr(config, "alignment_loss_weight", None) == 0 else keys


def write_model_card(
    save_directory: str | Path,
    model_name: str,
    description: str,
    dataset_name: str,
    metrics: dict[str, float],
    metrics_profile: str,
    command: str,
    with_pipeline: bool = False,
    config=None,
    plots: list[str] | None = None,
    with_examples: bool = False,
    with_training_args: bool = False,
    not_evaluated_reason: str | None = None,
    data_description: str | None = None,
) -> Path:
    """Write README.md into `save_directory` (`data_description`: a sentence about the training data): Hub metadata (library, pipeline tag, license, datasets, base models,
    tags, a model-index with one EvalResult per finite metric), usage, metrics (or why there are none), the
    training pictures (`plots`: file names relative to the folder), limitations and BibTeX."""
    finite = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and v == v}
    model_type = getattr(config, "model_type", "semi_iin")
    encoders = base_models(config) if config is not None else []
    known_dataset = DATASET_NAMES.get(dataset_name)
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="video-classification" if with_pipeline else "other",
        license=LICENSE,
        model_name=model_name,
        datasets=[known_dataset] if known_dataset else None,
        base_model=encoders or None,
        tags=["multimodal-sentiment-analysis", "msa-hub", "custom_code", model_type.replace("_", "-")],
        eval_results=[
            EvalResult(
                task_type="multimodal-sentiment-analysis",
                task_name="Multimodal Sentiment Analysis",
                dataset_type=dataset_name,
                dataset_name=known_dataset or dataset_name,
                dataset_split="test",
                metric_type=MODEL_INDEX_TYPES.get(name, name.lower()),  # the Hub's metric ids: accuracy, f1, mae, ...
                metric_name=name,
                metric_config=metrics_profile,  # the configuration of the `evaluate` module training_msa/msa_metrics
                metric_value=round(value, 6),
            )
            for name, value in finite.items()
        ] or None,
    )
    if known_dataset:
        data_sentence = (f"Trained with msa-hub on {known_dataset} (`{dataset_name}`, metrics profile "
                         f"`{metrics_profile}`).")
        data_limitation = (f"{known_dataset} is distributed under its own terms by its authors; check them before "
                           "using this model commercially.")
    elif dataset_name in ("synthetic", "custom", "none"):
        data_sentence = {
            "synthetic": "Trained with msa-hub on its generated synthetic features (`dataset_scripts.synthetic`): a "
                         "demonstration model, not a sentiment model of real people.",
            "custom": "Trained with msa-hub on a `custom` clip folder (label.csv + Raw/).",
            "none": "The fusion layers are untrained: this folder bundles encoders for feature extraction.",
        }[dataset_name]
        data_limitation = ("Trained on generated or user data, not on a published benchmark: its numbers say nothing "
                           "about real-world sentiment analysis.")
    else:
        data_sentence = f"Trained with msa-hub on `{dataset_name}` (metrics profile `{metrics_profile}`)."
        data_limitation = "Check the terms of the training data before using this model."
    example_video, example_text = "clip.mp4", "the transcript of the clip"  # a clip of yours
    if with_examples and (listing := Path(save_directory) / "examples" / "examples.json").is_file():
        first = (json.loads(listing.read_text()) or [{}])[0]
        example_video, example_text = f"examples/{first.get('video', 'clip.mp4')}", first.get("text", example_text)
    if data_description:
        data_sentence += f" {data_description.strip()}"
    card = ModelCard.from_template(
        card_data,
        template_str=TEMPLATE,
        model_name=model_name,
        description=description,
        data_sentence=data_sentence,
        data_limitation=data_limitation,
        metrics=finite,
        not_evaluated_reason=not_evaluated_reason,
        plots=[(file, PLOT_TITLES.get(Path(file).name, Path(file).stem)) for file in plots or []],
        command=portable_command(command),
        repo_hint=f"your-org/{model_name}",
        example_video=json.dumps(example_video),  # Python string literals, whatever the listing holds
        example_text=json.dumps(example_text),
        feature_inputs=feature_inputs(config),
        feature_sentence=feature_sentence(config, dataset_name, with_pipeline),
        with_pipeline=with_pipeline,
        with_examples=with_examples,
        with_training_args=with_training_args,
        base_models=encoders,
        citations=[CITATIONS[key] for key in citation_keys(model_type, config)],
    )
    path = Path(save_directory) / "README.md"
    # no credential anywhere in the card (e.g. a token pasted into a description)
    path.write_text(redact(str(card)), encoding="utf-8")
    return path
