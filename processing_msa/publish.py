"""Publish a model with bundled encoders as one Hub folder: model, processor, pipeline code, handler, card.

    python -m processing_msa.publish MODEL_DIR OUTPUT_DIR [--processor DIR] [--push-to-hub ORG/NAME]

MODEL_DIR is a `save_pretrained` folder (e.g. `<output_dir>/model` of train.py); the processor is read from
`--processor` or MODEL_DIR. Metrics in MODEL_DIR/test_results.json go into the model card's model-index.
"""

import argparse
import json
import sys
from pathlib import Path

from transformers import AutoModelForSequenceClassification, AutoProcessor

import modeling_msa  # noqa: F401  (registers the models)
import processing_msa  # noqa: F401  (registers the processor and the pipeline task)


def trained_on(model_dir: Path) -> str:
    """The dataset named by MODEL_DIR's model card (its model-index), or "unknown"."""
    card = model_dir / "README.md"
    if not card.is_file():
        return "unknown"
    from huggingface_hub import ModelCard

    try:
        results = ModelCard.load(card).data.eval_results or []
    except (ValueError, KeyError, TypeError):
        return "unknown"
    return results[0].dataset_type if results else "unknown"


def publish(model_dir: str, output_dir: str, processor_dir: str | None = None, push_to_hub: str | None = None,
            private: bool = True) -> Path:
    from training_msa.export import save_hub_ready

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise SystemExit(f"{model_dir} has no config.json: pass a folder written by save_pretrained (e.g. "
                         "<output_dir>/model of train.py).")
    output = Path(output_dir).resolve()
    if output == model_dir.resolve() or output in model_dir.resolve().parents:
        raise SystemExit(f"OUTPUT_DIR {output_dir} is or contains MODEL_DIR {model_dir}: write the Hub folder "
                         "somewhere else.")
    from training_msa.export import refuse_foreign_folder

    try:
        refuse_foreign_folder(Path(output_dir))
    except FileExistsError as error:
        raise SystemExit(f"OUTPUT_DIR {error}") from None
    results = model_dir / "test_results.json"
    try:
        metrics = json.loads(results.read_text()) if results.is_file() else None
    except ValueError as error:
        raise SystemExit(f"{results} is not valid JSON ({error}): fix or delete it (it feeds the model card).")
    if metrics is not None and not (isinstance(metrics, dict)
                                    and all(isinstance(v, (int, float)) for v in metrics.values())):
        raise SystemExit(f"{results}: expected {{metric: number}}, got {str(metrics)[:80]}.")
    # the installed package's code reads the folder; the folder's own .py files are not run
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    processor_source = Path(processor_dir or model_dir)
    if not (processor_source / "processor_config.json").is_file():
        raise SystemExit(
            f"{processor_source} has no processor_config.json: pass --processor DIR (an MSAProcessor saved with "
            "save_pretrained, e.g. MSAProcessor.from_encoders(...).save_pretrained(DIR))."
        )
    processor = AutoProcessor.from_pretrained(processor_source)
    from dataset_scripts.safe_paths import path_inside

    for name in ("plots", "examples"):  # copied into the Hub folder: never through a link out of MODEL_DIR
        if (model_dir / name).exists():
            path_inside(model_dir, name, f"{model_dir}/{name}")
    training_args = model_dir / "training_args.json"
    folder = save_hub_ready(
        model, output_dir, metrics=metrics, processor=processor, dataset_name=trained_on(model_dir),
        command="python -m processing_msa.publish " + " ".join(sys.argv[1:]),
        plots=sorted((model_dir / "plots").glob("*.png")),  # save_hub_ready refuses a link out of plots/
        examples_dir=model_dir / "examples" if (model_dir / "examples" / "examples.json").is_file() else None,
        extra_files={"training_args.json": training_args.read_text()} if training_args.is_file() else None,
        not_evaluated_reason=None if metrics else f"{results.name} was not found in {model_dir.name}",
    )
    if push_to_hub:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(push_to_hub, private=private, exist_ok=True)
        api.upload_folder(repo_id=push_to_hub, folder_path=folder, commit_message="Upload msa-hub model")
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("output_dir")
    parser.add_argument("--processor", default=None, help="folder of the saved MSAProcessor (default: MODEL_DIR)")
    parser.add_argument("--push-to-hub", default=None, metavar="REPO_ID")
    parser.add_argument("--public", action="store_true", help="create the Hub repo public (default private)")
    args = parser.parse_args(argv)
    folder = publish(args.model_dir, args.output_dir, args.processor, args.push_to_hub, private=not args.public)
    print(f"Hub-ready folder: {folder}")


if __name__ == "__main__":
    main()
