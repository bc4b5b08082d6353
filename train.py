"""Train an msa-hub model: `accelerate launch train.py [config.yaml | --flags]` (or `python train.py`).

With no arguments it trains Semi-IIN on the embedded synthetic dataset in a few minutes on a CPU,
evaluates on the test split, prints the metric table and writes a Hub-ready folder to
`<output_dir>/model`. Paper recipes live in `configs/*.yaml`.
"""

import argparse
import dataclasses
import logging
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser, TrainingArguments
from transformers.trainer_utils import IntervalStrategy, SaveStrategy

from dataset_scripts import SUPPORTED_DATASETS, SyntheticMSAConfig
from modeling_msa.configuration_semi_iin import (
    ATTENTION_MODES,
    ENCODER_STYLES,
    FUSION_MODES,
    INITIALIZATIONS,
    SemiIINConfig,
)
from modeling_msa.configuration_shared_private import TEXT_INPUTS, UNIMODAL_WEIGHTINGS, SharedPrivateConfig
from training_msa.arguments import config_arguments, overrides, own_fields
from training_msa.training_args import (
    METRIC_PROFILES,
    MSATrainingArguments,
    SelfTrainingArguments,
    SharedPrivateTrainingArguments,
    trainer_help,
)

# Heavy modules (datasets, the models, Trainer, scikit-learn, matplotlib) are imported where they are used, so
# `train.py --help` answers in a few seconds.
logger = logging.getLogger("train")
# name -> config factory; the model and trainer classes are looked up by `model_classes` when training starts.
CONFIG_FACTORIES = {
    "semi_iin": SemiIINConfig,
    "shared_private": SharedPrivateConfig,
    "self_mm": SharedPrivateConfig.self_mm,
}
MODELS = tuple(sorted(CONFIG_FACTORIES))
# Flags that only some models read: (models, dataclass, field names). Any other model refuses them when set.
SCOPED_FLAGS = (
    (("shared_private", "self_mm"), SharedPrivateTrainingArguments,
     tuple(f.name for f in dataclasses.fields(SharedPrivateTrainingArguments)
           if f.name not in {g.name for g in dataclasses.fields(MSATrainingArguments)})),
    (("semi_iin",), SelfTrainingArguments,
     tuple(f.name for f in dataclasses.fields(SelfTrainingArguments) if not f.name.startswith("label_fraction"))),
)
# Set from the data (feature sizes) or by code (bundled encoders' sub-configs), not by flags.
DATA_DERIVED = ("text_feature_size", "audio_feature_size", "vision_feature_size", "text_input", "text_config",
                "audio_config", "vision_config")
CONFIG_CHOICES = {"attention_mode": ATTENTION_MODES, "encoder_style": ENCODER_STYLES, "fusion": FUSION_MODES,
                  "initialization": INITIALIZATIONS, "text_input": TEXT_INPUTS,
                  "unimodal_loss_weighting": UNIMODAL_WEIGHTINGS}
# Replaced by outputs/<model>-<dataset> (e.g. outputs/self-mm-mosi) when --output_dir is not given.
DEFAULT_OUTPUT_DIR = "outputs/<model>-<dataset>"
# The embedded default keeps MOSI's feature sizes but 100 vision frames so the CPU job takes minutes.
EMBEDDED_SYNTHETIC_DEFAULTS = {"vision_length": 100}

ModelConfigArguments = config_arguments(
    (SemiIINConfig, SharedPrivateConfig), "ModelConfigArguments", skip=DATA_DERIVED,
    labels={SemiIINConfig: "semi_iin", SharedPrivateConfig: "shared_private"}, choices=CONFIG_CHOICES,
    defaults={f"max_{name}_tokens": "sized from the data (its longest sample after the projections)"
              for name in ("audio", "text", "vision")},
    group="Model hyper-parameters (unset: the model's own default, shown per model; self_mm = shared_private "
          "without alignment, tanh-weighted unimodal losses)",
)
SyntheticArguments = config_arguments(
    (SyntheticMSAConfig,), "SyntheticArguments", prefix="synthetic_", defaults=EMBEDDED_SYNTHETIC_DEFAULTS,
    group="Embedded synthetic dataset (--dataset_name synthetic)",
)


@dataclass
class ModelArguments:
    _argument_group_name = "Model"
    model: str = field(default="semi_iin", metadata={"help": "Which model to train.", "choices": list(MODELS)})
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Start from a saved msa-hub folder instead of a fresh model. A folder with "
                                        "bundled encoders and a processor (python -m training_msa.encoders_folder) "
                                        "trains on raw clips and is published pipeline-ready."}
    )
    lora_r: int = field(default=0, metadata={
        "help": "Raw clips: LoRA of this rank on the bundled encoders' attention projections (and the face CNN's "
                "convolutions), the fusion part and heads trained in full, merged into the published model. 0: no "
                "LoRA (the encoders train in full, or stay fixed with --freeze_encoders true)."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator (with --lora_r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA branch (with --lora_r)."})
    text_encoder: str | None = field(
        default=None,
        metadata={"help": "shared_private/self_mm: a pretrained transformers text encoder (name or folder) run on "
                          "the dataset's input_ids, e.g. bert-base-uncased; default: precomputed text_features."},
    )


@dataclass
class DataArguments:
    _argument_group_name = "Data"
    dataset_name: str = field(default="synthetic", metadata={"help": "Corpus to read.",
                                                             "choices": list(SUPPORTED_DATASETS)})
    data_dir: str | None = field(default=None, metadata={"help": "Folder of the corpus on disk."})
    dataset_setting: str = field(default="unaligned", metadata={"help": "MMSA pickle setting.",
                                                                "choices": ["aligned", "unaligned"]})
    dataset_cache_dir: str | None = field(default=None, metadata={"help": "Cache of the `datasets` Arrow files."})
    data_description: str | None = field(
        default=None, metadata={"help": "A sentence about the training data for the model card (e.g. how it was "
                                        "made), after the dataset's name."})
    examples_dir: str | None = field(
        default=None, metadata={"help": "Example clips (examples.json + videos) bundled into the published folder "
                                        "for the demo."},
    )


@dataclass
class TrainScriptArguments(SharedPrivateTrainingArguments):
    """Defaults of the embedded job; configs/*.yaml hold the paper recipes."""

    _argument_group_name = "Training (--help_all lists every TrainingArguments flag)"
    output_dir: str | None = field(default=DEFAULT_OUTPUT_DIR, metadata={
        "help": "Checkpoints, plots and (in <output_dir>/model) the Hub-ready folder; default: one per model and "
                "dataset (outputs/semi-iin-synthetic for the embedded job)."})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "Replace a run of another model, config or data found in --output_dir (its checkpoints, stages and "
                "plots are deleted, its model folder replaced); without it such a folder is refused."})
    metrics_profile: str | None = field(default=None, metadata={
        "help": "Metric definitions of the evaluation; unset: the dataset's (synthetic, mosi, mosei, sims; custom and "
                "ami: sims when every label lies in [-1, 1], else mosi). A profile that contradicts the labels is "
                "refused.", "choices": list(METRIC_PROFILES)})
    learning_rate: float = field(default=1e-3, metadata=trainer_help("learning_rate"))
    num_train_epochs: float = field(default=6.0, metadata=trainer_help("num_train_epochs"))
    # The quick CPU job anneals its 10x larger learning rate to 0 and clips gradients (Trainer's defaults); the
    # recipes in configs/ use the papers' constant rate without clipping.
    lr_scheduler_type: str = field(default="linear", metadata=trainer_help("lr_scheduler_type"))
    max_grad_norm: float = field(default=1.0, metadata=trainer_help("max_grad_norm"))
    eval_strategy: IntervalStrategy | str = field(default="epoch", metadata=trainer_help("eval_strategy"))
    save_strategy: SaveStrategy | str = field(default="epoch", metadata=trainer_help("save_strategy"))
    save_total_limit: int | None = field(default=2, metadata=trainer_help("save_total_limit"))
    load_best_model_at_end: bool = field(default=True, metadata=trainer_help("load_best_model_at_end"))
    metric_for_best_model: str | None = field(default="MAE", metadata=trainer_help("metric_for_best_model"))
    greater_is_better: bool | None = field(default=False, metadata=trainer_help("greater_is_better"))
    logging_steps: float = field(default=10, metadata=trainer_help("logging_steps"))
    seed: int = field(default=42, metadata=trainer_help("seed"))
    # The embedded job's CPU recipe; the paper recipes (configs/semi_iin*.yaml) keep fp32.
    cpu_amx_bf16: bool = field(default=True, metadata={
        "help": MSATrainingArguments.__dataclass_fields__["cpu_amx_bf16"].metadata["help"]
        + " The embedded job on an AMX Xeon: 2.5-2.9x per step vs fp32 before issue #15's work (1.9-2.5x for the "
        "whole job), test MAE as fp32 with the same seed (benchmarks/RESULTS.md)."})

    def __post_init__(self):
        chosen = self.metrics_profile  # None until the dataset is loaded (`with_metrics_profile`)
        self.metrics_profile = chosen or METRIC_PROFILES[0]
        super().__post_init__()
        self.metrics_profile = chosen


# The TrainingArguments flags --help shows (the others, and the --flag-with-dashes spellings, under --help_all).
COMMON_TRAINING_FLAGS = {
    "output_dir", "num_train_epochs", "max_steps", "learning_rate", "weight_decay", "per_device_train_batch_size",
    "per_device_eval_batch_size", "gradient_accumulation_steps", "lr_scheduler_type", "warmup_steps",
    "max_grad_norm", "seed", "eval_strategy", "save_strategy", "save_total_limit", "load_best_model_at_end",
    "metric_for_best_model", "greater_is_better", "logging_steps", "report_to", "logging_dir",
    "resume_from_checkpoint", "bf16", "use_cpu", "dataloader_num_workers", "torch_compile", "push_to_hub",
    "hub_model_id", "disable_tqdm",
}
HELP_ALL = "--help_all"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's "(default: X)" suffix, except on flags whose help states the real default themselves."""

    def _get_help_string(self, action):
        return action.help if getattr(action, "states_its_default", False) else super()._get_help_string(action)


def build_parser(show_all: bool = False) -> HfArgumentParser:
    """The parser of every flag. `--help` lists this script's flags and the common training ones, each once, with
    its real default and allowed values; `--help_all` adds every other TrainingArguments flag."""
    parser = HfArgumentParser(
        (ModelArguments, DataArguments, ModelConfigArguments, SyntheticArguments, SelfTrainingArguments,
         TrainScriptArguments),
        formatter_class=HelpFormatter,
        allow_abbrev=False,  # `--num_train_epoch` is a typo, not `--num_train_epochs`
        usage="train.py [RECIPE.yaml] [--flag value ...]   (train.py --help_all: every flag)",
        description="Train an msa-hub model. Usage: train.py [RECIPE.yaml] [--flag value ...] (flags override the "
                    "recipe). With no arguments: Semi-IIN on the embedded synthetic dataset.",
        epilog=f"{HELP_ALL}: also list the other TrainingArguments flags. Recipes: configs/*.yaml.",
    )
    training_fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    # msa-hub's own training flags and the ones this script re-defaults
    script_training_flags = ({f.name for f in dataclasses.fields(TrainScriptArguments)} - training_fields) | set(
        TrainScriptArguments.__annotations__)
    unset_means_default = {f.name for cls in (ModelConfigArguments, SyntheticArguments) for f in dataclasses.fields(cls)}
    for action in parser._actions:
        if isinstance(action.help, str) and "%(" not in action.help:
            action.help = action.help.replace("%", "%%")  # a literal percent ("10-25%") is not a format directive
        if action.dest in unset_means_default:
            action.states_its_default = True  # states the model's real default: no "(default: None)"
        if show_all:
            continue
        if action.option_strings and action.option_strings[0].startswith("--no_") or (
            action.dest in training_fields and action.dest not in COMMON_TRAINING_FLAGS | script_training_flags
        ):
            action.help = argparse.SUPPRESS
        action.option_strings = [o for o in action.option_strings if "-" not in o[2:]] or action.option_strings
    return parser


def parse_arguments(argv: list[str]):
    show_all = HELP_ALL in argv
    if show_all:
        argv = [a for a in argv if a != HELP_ALL] + ["--help"]
    parser = build_parser(show_all)
    recipe, recipe_flags = None, []
    if argv and argv[0].endswith((".yaml", ".yml", ".json")):
        # A recipe file, then flags that override it: `train.py configs/semi_iin.yaml --num_train_epochs 1`.
        recipe, recipe_flags = argv[0], recipe_arguments(Path(argv[0]))
        argv = recipe_flags + argv[1:]
    _, unknown = parser.parse_known_args(args=argv)  # before any dataclass validates its values
    if unknown:
        refuse_unknown_flags(parser, unknown, recipe, recipe_flags)
    return parser.parse_args_into_dataclasses(args=argv)


def refuse_unknown_flags(parser: argparse.ArgumentParser, unknown: list[str], recipe: str | None,
                         recipe_flags: list[str]) -> None:
    """Exit with status 2, the usage line and, for each unknown flag, the closest known one (and the recipe file the
    flag came from)."""
    import difflib

    known = sorted({option for action in parser._actions for option in action.option_strings
                    if option.startswith("--")})
    problems = []
    for flag in [item for item in unknown if item.startswith("-")] or unknown:
        name = flag.split("=")[0]
        where = f" (a key of {recipe})" if recipe and name in recipe_flags else ""
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f": did you mean {close[0]}?" if close else ""
        problems.append(f"unknown argument {name}{where}{hint}")
    parser.error("; ".join(problems))


def recipe_loader():
    """YAML's safe loader with YAML 1.2's booleans: only true/false; `no`, `off`, `yes`, `on` stay the strings the user
    wrote (`save_strategy: no` is the choice "no", not False)."""
    import re

    import yaml

    class RecipeLoader(yaml.SafeLoader):
        yaml_implicit_resolvers = {first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:bool"]
                                   for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}

    RecipeLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                       list("tTfF"))
    return RecipeLoader


def recipe_arguments(path: Path) -> list[str]:
    """A YAML/JSON recipe as command-line flags (later flags win); errors name the file."""
    import json

    import yaml

    if not path.is_file():
        raise SystemExit(f"{path} does not exist (a recipe, e.g. configs/semi_iin.yaml).")
    try:
        values = json.loads(path.read_text()) if path.suffix == ".json" else yaml.load(path.read_text(), recipe_loader())
    except (ValueError, yaml.YAMLError) as error:
        raise SystemExit(f"{path} is not a readable recipe ({error}).") from None
    if not isinstance(values, dict):
        raise SystemExit(f"{path}: a recipe is a mapping of flag names to values, got {type(values).__name__}.")
    arguments = []
    for key, value in values.items():
        if value is None:
            continue
        items = value if isinstance(value, list) else [value]
        arguments += [f"--{key}", *(str(item).lower() if isinstance(item, bool) else str(item) for item in items)]
    return arguments


def print_table(title: str, metrics: dict[str, float]) -> None:
    width = max(len(name) for name in metrics)
    print(f"\n{title}\n" + "-" * (width + 12))
    for name, value in metrics.items():
        print(f"{name:<{width}}  {value:>9.4f}" if isinstance(value, (int, float)) else f"{name:<{width}}  {value}")


def check_model_arguments(model_args, config_args, *other_arguments) -> None:
    """Fail before any data is read when a flag does not belong to the chosen model: a config hyper-parameter of
    another model, or a training flag (`SCOPED_FLAGS`) set away from its default that only other models read."""
    if model_args.model not in CONFIG_FACTORIES:
        raise SystemExit(f"--model {model_args.model!r}: expected one of {list(MODELS)}.")
    config_class = SemiIINConfig if model_args.model == "semi_iin" else SharedPrivateConfig
    unknown = set(overrides(config_args)) - {f.name for f in own_fields(config_class)}
    if unknown:
        raise SystemExit(f"--model {model_args.model} has no hyper-parameter(s) {sorted(unknown)}.")
    if model_args.model_name_or_path:
        saved_type = saved_model_type(model_args.model_name_or_path)
        if saved_type != config_class.model_type:
            raise SystemExit(f"--model_name_or_path {model_args.model_name_or_path} holds a {saved_type} model; pass "
                             f"--model {'semi_iin' if saved_type == 'semi_iin' else 'shared_private (or self_mm)'}.")
    if model_args.text_encoder and config_class is not SharedPrivateConfig:
        raise SystemExit(f"--text_encoder is for shared_private/self_mm, not {model_args.model}.")
    for models, owner, names in SCOPED_FLAGS:
        if model_args.model in models:
            continue
        defaults = {f.name: f.default for f in dataclasses.fields(owner)}
        arguments = next(a for a in other_arguments if isinstance(a, owner))
        set_flags = [f"--{name}" for name in names if getattr(arguments, name) != defaults[name]]
        if set_flags:
            raise SystemExit(f"{', '.join(set_flags)}: a flag of --model {'/'.join(models)}, which "
                             f"--model {model_args.model} does not read.")


def saved_model_type(folder: str) -> str:
    """The `model_type` in `folder`'s config.json; errors name the folder."""
    import json

    config = Path(folder) / "config.json"
    try:
        return json.loads(config.read_text())["model_type"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SystemExit(f"--model_name_or_path {folder}: no readable config.json with a model_type ({error}); "
                         "pass a folder saved by msa-hub (train.py's <output_dir>/model, or "
                         "python -m training_msa.encoders_folder).") from None


def with_cpu_amx_bf16(training_args, model: str):
    """`training_args` with bf16 autocast switched on where `--cpu_amx_bf16` applies: Semi-IIN, no accelerator, a
    CPU with AMX bf16 units, neither --bf16 nor --fp16 given."""
    import torch

    from training_msa.runtime import cpu_has_amx_bf16

    if not training_args.cpu_amx_bf16 or model != "semi_iin" or training_args.bf16 or training_args.fp16:
        return training_args
    if torch.accelerator.is_available() or not cpu_has_amx_bf16():
        return training_args
    logger.info("CPU with AMX bf16 units: training in bf16 autocast (--cpu_amx_bf16 false for fp32)")
    return dataclasses.replace(training_args, bf16=True, use_cpu=True)


def model_classes(name: str):
    """(model class, trainer class) of `--model name`."""
    from modeling_msa import SemiIINForSentimentAnalysis, SharedPrivateForSentimentAnalysis
    from training_msa import MSATrainer, SharedPrivateTrainer

    if name == "semi_iin":
        return SemiIINForSentimentAnalysis, MSATrainer
    return SharedPrivateForSentimentAnalysis, SharedPrivateTrainer


def saved_processor(model, model_args):
    """The processor saved beside `--model_name_or_path` when the model bundles every encoder (then the published
    folder is pipeline-ready), else None."""
    folder = model_args.model_name_or_path
    if not folder or len(getattr(model.config, "encoder_modalities", ())) != 3:
        return None
    return saved_processor_of(folder)


def saved_processor_of(folder: str):
    """The processor saved in `folder`, or None when it has none."""
    if not (Path(folder) / "processor_config.json").is_file():
        return None
    from transformers import AutoProcessor

    import processing_msa  # noqa: F401  (registers the processor)

    return AutoProcessor.from_pretrained(folder)


def publish(model, metrics, data_args, model_args, training_args, argv, plots=(), processor=None) -> None:
    """The Hub-ready folder `<output_dir>/model` with the test metrics, the pictures and the command that made it."""
    from training_msa.export import save_hub_ready

    folder = save_hub_ready(
        model, Path(training_args.output_dir) / "model", metrics=metrics, dataset_name=data_args.dataset_name,
        metrics_profile=training_args.metrics_profile, command="accelerate launch train.py " + shlex.join(argv),
        extra_files={"training_args.json": training_args.to_json_string()},
        processor=processor or saved_processor(model, model_args), plots=list(plots),
        examples_dir=data_args.examples_dir,
        model_name=Path(training_args.output_dir).resolve().name, data_description=data_args.data_description,
    )
    print(f"\nHub-ready model folder: {folder}")


def write_plots(model, log_history: list[dict], test_dataset, training_args, collator=None) -> list[Path]:
    """The run's pictures in `<output_dir>/plots` (learning curves, test predictions, confusion matrix, gates)."""
    from training_msa import MSATrainer
    from training_msa.plots import collect_test_outputs, write_training_plots

    collator = collator or MSATrainer.default_data_collator(training_args)
    outputs = collect_test_outputs(model, test_dataset, collator, training_args.per_device_eval_batch_size)
    metric = (training_args.metric_for_best_model or "MAE").removeprefix("eval_")
    return write_training_plots(Path(training_args.output_dir) / "plots", log_history, outputs, metric)


def raw_clip_processor(model_args, data_args, train_dataset):
    """The processor of `--model_name_or_path` when the dataset holds raw clips (`video_path`, no features), else
    None; refuses raw clips without a folder that bundles every encoder and its processor."""
    from training_msa.data import holds_raw_clips

    if not holds_raw_clips(train_dataset):
        return None
    folder = model_args.model_name_or_path
    start = ("--model_name_or_path FOLDER with bundled encoders and a processor (python -m "
             "training_msa.encoders_folder FOLDER --text ... --audio ...)")
    where = f"--data_dir {data_args.data_dir}" if data_args.data_dir else f"--dataset_name {data_args.dataset_name}"
    if not folder:
        raise SystemExit(f"{where} holds raw clips (video_path, no features). Training on them needs {start}; or "
                         f"extract features first: python -m processing_msa.extract_features {data_args.data_dir} "
                         "OUT --model FOLDER, then --data_dir OUT/dataset.")
    from transformers import AutoConfig

    import modeling_msa  # noqa: F401  (registers the configs)

    config = AutoConfig.from_pretrained(folder)
    missing = [m for m in ("text", "audio", "vision") if m not in getattr(config, "encoder_modalities", ())
               and not (m == "text" and getattr(config, "text_input", None) == "input_ids")]
    processor = saved_processor_of(folder)
    if missing or processor is None:
        lacks = f"no {', '.join(missing)} encoder" if missing else "no processor_config.json"
        raise SystemExit(f"--model_name_or_path {folder}: {lacks}; training on raw clips ({where}) needs {start}.")
    return processor


def with_lora(model, model_args):
    """`model` wrapped by PEFT with LoRA on its bundled encoders when `--lora_r` is set."""
    if not model_args.lora_r:
        return model
    import peft

    from training_msa.peft_utils import encoder_lora_config

    lora = encoder_lora_config(model, r=model_args.lora_r, lora_alpha=model_args.lora_alpha,
                               lora_dropout=model_args.lora_dropout)
    return peft.get_peft_model(model, lora)


def build_model(model_args, config_args, dataset, training_args):
    """A fresh model sized to the dataset (or a saved one), with the config flags that were set."""
    from transformers import AutoConfig

    from training_msa.data import feature_dims, max_frames, model_token_limits

    config_factory = CONFIG_FACTORIES[model_args.model]
    model_class, _ = model_classes(model_args.model)
    config_class = model_class.config_class
    flags = overrides(config_args)
    if model_args.model_name_or_path:
        if model_args.lora_r:
            flags["freeze_encoders"] = False  # PEFT freezes the encoders' own weights; their adapters train
        return model_class.from_pretrained(model_args.model_name_or_path, **flags)
    config_kwargs = {**feature_dims(dataset["train"]), **flags}
    if config_class is SharedPrivateConfig:
        config_kwargs["text_input"] = "features"
        if model_args.text_encoder:
            if "input_ids" not in dataset["train"].column_names:
                raise SystemExit("--text_encoder needs an input_ids column (e.g. an MMSA pickle with text_bert).")
            config_kwargs.update(text_input="input_ids",
                                 text_config=AutoConfig.from_pretrained(model_args.text_encoder).to_dict())
        if training_args.use_human_unimodal_labels:
            config_kwargs.setdefault("unimodal_loss_weighting", "uniform")
    else:
        probe = config_factory(**config_kwargs)
        config_kwargs = {**model_token_limits(probe, max_frames(dataset, training_args)), **config_kwargs}
    model = model_class(config_factory(**config_kwargs))
    if config_class is SharedPrivateConfig and model_args.text_encoder:
        model.load_pretrained_text_encoder(model_args.text_encoder)
    return model


def load_run(argv: list[str]):
    """The parsed and checked arguments of a command line, its dataset and its run record
    (`training_msa.run_fingerprint`); nothing is written."""
    model_args, data_args, config_args, synthetic_args, self_training_args, training_args = parse_arguments(argv)
    check_model_arguments(model_args, config_args, self_training_args, training_args)
    training_args = with_cpu_amx_bf16(training_args, model_args.model)
    if data_args.examples_dir and not (Path(data_args.examples_dir) / "examples.json").is_file():
        raise SystemExit(f"--examples_dir {data_args.examples_dir}: no examples.json there (a list of "
                         '{"video": file name, "text": transcript}, e.g. as training_msa/video_demo.py writes it).')
    from transformers import set_seed

    from dataset_scripts import load_msa_dataset

    set_seed(training_args.seed)
    dataset_options = {}
    if data_args.dataset_name == "synthetic":
        dataset_options = {**EMBEDDED_SYNTHETIC_DEFAULTS, **overrides(synthetic_args, "synthetic_")}
    with training_args.main_process_first(desc="dataset preparation"):
        dataset = load_msa_dataset(
            data_args.dataset_name, data_dir=data_args.data_dir, setting=data_args.dataset_setting,
            cache_dir=data_args.dataset_cache_dir, **dataset_options,
        )

    if self_training_args.unlabeled_dataset:  # SelfTrainingArguments refuses it without --self_training
        with training_args.main_process_first(desc="unlabeled dataset preparation"):
            dataset = attach_unlabeled(dataset, data_args, self_training_args)
    training_args = with_metrics_profile(training_args, data_args, dataset)
    record = run_record(model_args, data_args, config_args, synthetic_args, self_training_args, dataset)
    arguments = (model_args, data_args, config_args, synthetic_args, self_training_args, training_args)
    return arguments, dataset, record


def main(argv: list[str] | None = None) -> dict[str, float]:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    arguments, dataset, record = load_run(argv)
    model_args, data_args, config_args, synthetic_args, self_training_args, training_args = arguments
    from training_msa.interrupt import INTERRUPT
    from training_msa.runtime import use_all_cpu_threads_when_alone
    from training_msa.self_training import subsample_labeled

    INTERRUPT.install()  # Ctrl-C during training stops at the next step (see run())
    use_all_cpu_threads_when_alone()
    if self_training_args.self_training:
        from training_msa.data import holds_raw_clips

        if holds_raw_clips(dataset["train"]):
            raise SystemExit("--self_training trains on features: extract them from the clips first (python -m "
                             "processing_msa.extract_features CLIPS OUT --model FOLDER), then --data_dir OUT/dataset.")
        training_args = claim_output_dir(training_args, record)
        return self_train(model_args, config_args, data_args, self_training_args, training_args, dataset, argv)
    train_dataset = subsample_labeled(
        dataset["train"], self_training_args.label_fraction, self_training_args.label_fraction_seed
    )
    processor = raw_clip_processor(model_args, data_args, dataset["train"])
    collator = None
    if processor is not None:
        from training_msa.raw_collator import RawClipCollator

        # the collator reads video_path & co. (Trainer would drop the columns the model does not take)
        training_args = dataclasses.replace(training_args, remove_unused_columns=False)
        collator = RawClipCollator(processor, include_sample_index=model_args.model != "semi_iin",
                                   human_unimodal_labels=getattr(training_args, "use_human_unimodal_labels", False))
    elif model_args.lora_r:
        raise SystemExit("--lora_r trains the bundled encoders, which run on raw clips; this dataset holds "
                         "precomputed features (drop --lora_r, or train on a dataset of clips: label.csv + Raw/).")
    model = with_lora(build_model(model_args, config_args, dataset, training_args), model_args)
    training_args = claim_output_dir(training_args, record)  # everything checked: the folder becomes this run's
    logger.info("Model %s with %.2fM parameters", model_args.model, model.num_parameters() / 1e6)

    trainer = model_classes(model_args.model)[1](
        model=model, args=training_args, train_dataset=train_dataset, eval_dataset=dataset["validation"],
        data_collator=collator,
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    test_metrics = trainer.evaluate(dataset["test"], metric_key_prefix="test")
    metrics = {k.removeprefix("test_"): v for k, v in test_metrics.items() if not k.endswith(("runtime", "per_second"))}

    if trainer.is_world_process_zero():
        print_table(f"Test metrics ({data_args.dataset_name}, {model_args.model})", metrics)
        model = trainer.accelerator.unwrap_model(trainer.model)
        if model_args.lora_r:
            model = model.merge_and_unload()  # the encoders with their adapters folded in: a plain model
        plots = write_plots(model, trainer.state.log_history, dataset["test"], training_args, trainer.data_collator)
        publish(model, metrics, data_args, model_args, training_args, argv, plots, processor)
    return metrics


def with_metrics_profile(training_args, data_args, dataset):
    """`training_args` whose metrics profile follows the dataset when --metrics_profile is not given; a given one that
    contradicts the labels (SIMS's lie in [-1, 1], MOSI/MOSEI's in [-3, 3]) is refused."""
    from dataset_scripts.loading import read_labels

    labels = read_labels(dataset["train"])
    widest = float(abs(labels[labels == labels]).max()) if labels.size else 0.0
    sims_like = data_args.dataset_name == "sims" or (data_args.dataset_name in ("custom", "ami") and widest <= 1.0)
    if training_args.metrics_profile is None:
        named = {"synthetic": "synthetic", "mosi": "mosi", "mosei": "mosei", "sims": "sims"}
        profile = named.get(data_args.dataset_name, "sims" if sims_like else "mosi")
        return dataclasses.replace(training_args, metrics_profile=profile)
    if training_args.metrics_profile == "sims" and widest > 1.0 or (
            training_args.metrics_profile in ("mosi", "mosei") and data_args.dataset_name == "sims"):
        raise SystemExit(f"--metrics_profile {training_args.metrics_profile} does not fit the labels of "
                         f"{data_args.data_dir or data_args.dataset_name} (largest |label| {widest:g}; SIMS labels lie "
                         "in [-1, 1], MOSI/MOSEI ones in [-3, 3]): drop --metrics_profile to follow the dataset.")
    return training_args


def run_record(model_args, data_args, config_args, synthetic_args, self_training_args, dataset) -> dict:
    """What this run is made from (`training_msa.run_fingerprint`): model, its config flags and starting folder,
    LoRA, the data (name, folder, options, per split its rows, columns, feature widths and content hash) and
    self-training."""
    from training_msa.run_fingerprint import dataset_digest

    def resolved(path):
        return str(Path(path).resolve()) if path else None

    return {
        "model": model_args.model, "model_name_or_path": resolved(model_args.model_name_or_path),
        "config": overrides(config_args),
        "lora": [model_args.lora_r, model_args.lora_alpha, model_args.lora_dropout] if model_args.lora_r else None,
        "data": {"dataset_name": data_args.dataset_name, "data_dir": resolved(data_args.data_dir),
                 "setting": data_args.dataset_setting, "synthetic": overrides(synthetic_args, "synthetic_"),
                 "splits": dataset_digest(dataset)},
        "self_training": dataclasses.asdict(self_training_args),
    }


def claim_output_dir(training_args, record: dict):
    """`training_args` with the per-model/dataset default output_dir filled in, once the folder is this run's (a run
    of another model, config or data there is refused unless --overwrite_output_dir)."""
    from training_msa import run_fingerprint

    if training_args.output_dir == DEFAULT_OUTPUT_DIR:
        name = f"{record['model']}-{record['data']['dataset_name']}".replace("_", "-")
        training_args = dataclasses.replace(training_args, output_dir=f"outputs/{name}")
    try:
        run_fingerprint.claim_output_dir(training_args.output_dir, record,
                                         overwrite=training_args.overwrite_output_dir,
                                         write=training_args.process_index == 0)
    except run_fingerprint.RunMismatchError as error:
        raise SystemExit(str(error)) from None
    return training_args


def attach_unlabeled(dataset, data_args, self_training_args):
    """`dataset` with `--unlabeled_dataset`'s samples as its `--unlabeled_split` (e.g. AMI clips for MOSI), after
    checking that both sets were extracted with the same encoders (same feature sizes)."""
    from datasets import DatasetDict

    from dataset_scripts import load_msa_dataset
    from modeling_msa import MODALITIES
    from training_msa.data import feature_dims

    name, folder, split = (self_training_args.unlabeled_dataset, self_training_args.unlabeled_data_dir,
                           self_training_args.unlabeled_split)
    source = load_msa_dataset(name, data_dir=folder, cache_dir=data_args.dataset_cache_dir)
    if split not in source and len(source) != 1:
        raise SystemExit(f"--unlabeled_data_dir {folder}: no {split!r} split (splits: {sorted(source)}).")
    unlabeled = source[split] if split in source else next(iter(source.values()))
    missing = [f"{m}_features" for m in MODALITIES if f"{m}_features" not in unlabeled.column_names]
    if missing:
        raise SystemExit(
            f"--unlabeled_data_dir {folder}: the {name} clips have no {missing} columns. Extract features first, "
            f"with the encoders of the labelled set: python -m processing_msa.extract_features {folder} OUT "
            f"--model HUB_FOLDER --dataset {name}, then pass --unlabeled_data_dir OUT/dataset."
        )
    labelled, other = feature_dims(dataset["train"]), feature_dims(unlabeled)
    if labelled != other:
        raise SystemExit(
            f"Feature sizes differ: {data_args.data_dir or data_args.dataset_name} has {labelled}, "
            f"{folder} has {other}. Extract both sets with the same encoders (the same --model folder)."
        )
    return DatasetDict({**dataset, split: unlabeled})


def self_train(model_args, config_args, data_args, self_training_args, training_args, dataset, argv):
    """Semi-IIN Algorithm 1: supervised stage 0, then pseudo-label rounds; prints both stages' test metrics."""
    if model_args.model != "semi_iin":
        raise SystemExit("--self_training needs --model semi_iin (it uses the 7-class head's confidences).")
    split = self_training_args.unlabeled_split
    if split not in dataset:
        raise SystemExit(f"--self_training: the dataset has no {split!r} split (splits: {sorted(dataset)}).")
    from training_msa.run_fingerprint import RunMismatchError
    from training_msa.self_training import run_self_training

    try:
        results = run_self_training(
            lambda: build_model(model_args, config_args, dataset, training_args),
            dataset["train"], dataset[split], training_args, self_training_args,
            eval_dataset=dataset["validation"], test_dataset=dataset["test"],
            overwrite_output_dir=training_args.overwrite_output_dir,
        )
    except RunMismatchError as error:  # stages of an older msa-hub without their own record
        raise SystemExit(str(error)) from None
    if not training_args.process_index == 0:
        return results[-1].test_metrics
    for result in results:
        title = "supervised" if result.stage == 0 else f"self-training round {result.stage}"
        print_table(f"Test metrics, stage {result.stage} ({title})", result.test_metrics)
        if result.pseudo_label_counts is not None:
            print(f"pseudo-labels kept per class: {result.pseudo_label_counts}")
    final = results[-1]
    import json

    from training_msa.self_training import LOG_HISTORY_FILE

    model = model_classes(model_args.model)[0].from_pretrained(final.model_dir)
    history_file = Path(final.model_dir).parent / LOG_HISTORY_FILE  # the final stage's learning curves
    history = json.loads(history_file.read_text()) if history_file.is_file() else []
    plots = write_plots(model, history, dataset["test"], training_args)
    publish(model, final.test_metrics, data_args, model_args, training_args, argv, plots)
    return final.test_metrics


def run() -> None:
    """The command line: Ctrl-C ends with one line (and exit status 130) instead of a traceback; during training at
    the next step boundary (`training_msa.interrupt`: raised anywhere, it was sometimes swallowed by pyarrow)."""
    try:
        main()
    except SystemExit as done:
        if done.code in (0, None) and {"-h", "--help", HELP_ALL} & set(sys.argv[1:]):
            # The help is printed and nothing else ran: skip the interpreter's teardown of torch & co (1-2 s).
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        raise
    except KeyboardInterrupt:
        print("\ntrain.py: interrupted. Checkpoints written so far stay in the output folder; continue with "
              "--resume_from_checkpoint last.", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        import torch.distributed

        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()  # a clean exit of every rank (no gloo abort at shutdown)


if __name__ == "__main__":
    run()
