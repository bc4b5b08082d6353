"""Atomic, Hub-ready model folders (safetensors weights, config with auto_map, remote code, model card)."""

import json
import shutil
from pathlib import Path

from transformers import PreTrainedModel

from dataset_scripts.atomic_write import staging_folder
from modeling_msa.msa_utils import MODALITIES

from .model_card import portable_path, write_model_card


NOT_METRICS = ("epoch",)  # what Trainer.evaluate returns beside the metrics


def portable_json(text: str) -> str:
    """A JSON document (e.g. `training_args.json`) whose absolute local paths are replaced by `<last component>`:
    a published folder never records the publisher's folders."""

    def clean(value):
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        if isinstance(value, list):
            return [clean(item) for item in value]
        return portable_path(value) if isinstance(value, str) else value

    return json.dumps(clean(json.loads(text)), indent=2, sort_keys=True) + "\n"


def save_pipeline_files(model: PreTrainedModel, processor, directory: Path) -> None:
    """Model + processor + pipeline code + Inference Endpoints handler, loadable with trust_remote_code."""
    from transformers import pipeline

    from processing_msa import TASK
    from processing_msa import handler as handler_module

    missing = [m for m in MODALITIES if getattr(model.config, f"{m}_config", None) is None]
    if missing:
        raise ValueError(
            f"A pipeline folder needs a model with bundled encoders for every modality; {missing} take precomputed "
            "features (build the model with modeling_msa.semi_iin_config_from_encoders)."
        )
    pipeline(TASK, model=model, processor=processor).save_pretrained(directory, safe_serialization=True)
    processor.save_pretrained(directory)
    shutil.copyfile(handler_module.__file__, directory / "handler.py")


def save_hub_ready(
    model: PreTrainedModel,
    save_directory: str | Path,
    metrics: dict[str, float] | None = None,
    dataset_name: str = "unknown",
    metrics_profile: str = "mosi",
    command: str = "",
    extra_files: dict[str, str] | None = None,
    processor=None,
    plots: list[str | Path] | None = None,
    examples_dir: str | Path | None = None,
    not_evaluated_reason: str | None = None,
    model_name: str | None = None,
    data_description: str | None = None,
) -> Path:
    """Write the folder next to `save_directory`, then move it in place: a crash never leaves a half folder.

    With a `processor` (a model with bundled encoders), the folder also holds the processor, the
    `multimodal-sentiment-analysis` pipeline code (`custom_pipelines` in config.json) and `handler.py` for
    Inference Endpoints. `plots` (PNG files) are copied to `plots/` and shown in the model card; `examples_dir`
    (example clips + `examples.json`, for the demo) is copied to `examples/`."""
    target = Path(save_directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_folder(target.parent, prefix=f".{target.name}.")
    try:
        if processor is None:
            model.save_pretrained(staging, safe_serialization=True)
        else:
            save_pipeline_files(model, processor, staging)
        plot_files = []
        for plot in plots or []:
            (staging / "plots").mkdir(exist_ok=True)
            shutil.copyfile(plot, staging / "plots" / Path(plot).name)
            plot_files.append(f"plots/{Path(plot).name}")
        if examples_dir is not None:
            if not (Path(examples_dir) / "examples.json").is_file():
                raise ValueError(f"{examples_dir} has no examples.json ([{{\"video\": file, \"text\": transcript}}]).")
            shutil.copytree(examples_dir, staging / "examples")
        for name, text in (extra_files or {}).items():
            (staging / name).write_text(portable_json(text) if name.endswith(".json") else text)
        write_model_card(
            staging,
            model_name=model_name or target.name,
            description=f"{type(model).__name__} (`model_type={model.config.model_type}`) for multimodal sentiment "
            "analysis: sentiment intensity in [-3, 3] and a 7-way sentiment class from text, audio and vision.",
            dataset_name=dataset_name,
            metrics={k: v for k, v in (metrics or {}).items() if k not in NOT_METRICS},
            metrics_profile=metrics_profile,
            command=command,
            with_pipeline=processor is not None,
            config=model.config,
            plots=plot_files,
            with_examples=examples_dir is not None,
            with_training_args="training_args.json" in (extra_files or {}),
            not_evaluated_reason=not_evaluated_reason,
            data_description=data_description,
        )
        if metrics:
            (staging / "test_results.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
        if target.exists():
            backup = target.with_name(f".{target.name}.old")
            shutil.rmtree(backup, ignore_errors=True)
            target.rename(backup)
            staging.rename(target)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
