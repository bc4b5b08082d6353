"""Atomic, Hub-ready model folders (safetensors weights, config with auto_map, remote code, model card)."""

import json
import shutil
from pathlib import Path

from transformers import PreTrainedModel

from dataset_scripts.atomic_write import staging_folder
from dataset_scripts.safe_paths import copy_file_inside, copy_folder_inside, path_inside
from modeling_msa.msa_utils import MODALITIES

from .model_card import REDACTED, SECRET_NAME, environment_secrets, portable_path, redact, write_model_card


NOT_METRICS = ("epoch",)  # what Trainer.evaluate returns beside the metrics


def portable_json(text: str) -> str:
    """A JSON document (e.g. `training_args.json`) whose absolute local paths are replaced by `<last component>` and
    whose credentials are redacted: a published folder never records the publisher's folders or secrets."""

    secrets = environment_secrets()

    def clean(value, key: str = ""):
        if isinstance(value, dict):
            return {name: clean(item, name) for name, item in value.items()}
        if isinstance(value, list):
            return [clean(item, key) for item in value]
        if isinstance(value, str) and SECRET_NAME.search(key) and value:
            return REDACTED
        return redact(portable_path(value), secrets) if isinstance(value, str) else value

    return json.dumps(clean(json.loads(text)), indent=2, sort_keys=True) + "\n"


def is_hub_folder(folder: Path) -> bool:
    """Whether `folder` is a model folder that msa-hub wrote (config.json of an msa-hub model + its model card)."""
    try:
        model_type = json.loads((folder / "config.json").read_text()).get("model_type")
        card = (folder / "README.md").read_text()
    except (OSError, ValueError, AttributeError):
        return False
    return model_type in ("semi_iin", "shared_private") and "msa-hub" in card


def refuse_foreign_folder(target: Path) -> None:
    """A model folder replaces only an empty folder or an earlier msa-hub model folder, never other content."""
    if target.exists() and (not target.is_dir() or (any(target.iterdir()) and not is_hub_folder(target))):
        raise FileExistsError(f"{target} exists and is not an msa-hub model folder (it would be replaced, with "
                              "everything in it): pass a new or empty folder.")


def check_examples(examples_dir: Path) -> list[dict]:
    """The items of `examples.json`, a list of {"video": file inside the folder, "text": transcript}; errors name the
    item."""
    listing = examples_dir / "examples.json"
    if not listing.is_file():
        raise ValueError(f"{examples_dir} has no examples.json ([{{\"video\": file, \"text\": transcript}}]).")
    try:
        items = json.loads(listing.read_text())
    except ValueError as error:
        raise ValueError(f"{listing} is not valid JSON ({error}).") from None
    if not isinstance(items, list):
        raise ValueError(f"{listing}: expected a list of {{\"video\": file, \"text\": transcript}}.")
    for number, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("video"), str):
            raise ValueError(f"{listing} item {number}: expected {{\"video\": file name, \"text\": transcript}}.")
        if not path_inside(examples_dir, item["video"], f"{listing} item {number}, field video").is_file():
            raise ValueError(f"{listing} item {number}, field video: {item['video']!r} is not a file in "
                             f"{examples_dir}.")
    return items


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
    refuse_foreign_folder(target)
    if examples_dir is not None:
        check_examples(Path(examples_dir))
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
            copy_file_inside(plot, Path(plot).parent, staging / "plots" / Path(plot).name)  # no link out of plots/
            plot_files.append(f"plots/{Path(plot).name}")
        if examples_dir is not None:
            copy_folder_inside(examples_dir, staging / "examples")
        for name, text in (extra_files or {}).items():
            (staging / name).write_text(portable_json(text) if name.endswith(".json") else redact(text))
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
