"""Argument dataclasses of msa-hub training (no Trainer import: `train.py --help` stays fast)."""

import os
from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments

METRIC_PROFILES = ("mosi", "mosei", "sims", "synthetic")


def trainer_help(name: str, note: str = "") -> dict:
    """The help of the TrainingArguments field `name` (a re-defaulted field keeps it), plus `note`."""
    text = TrainingArguments.__dataclass_fields__[name].metadata.get("help", "")
    return {"help": f"{text} {note}".strip()}


@dataclass
class MSATrainingArguments(TrainingArguments):
    """`TrainingArguments` with msa-hub defaults (Semi-IIN paper: Adam lr 1e-4, weight decay 1e-4, batch 32).

    metrics_profile: Which metric definitions evaluation uses: "mosi"/"mosei"/"synthetic" or "sims".
    max_text_length / max_audio_length / max_vision_length: Truncation in the default collator.
    """

    output_dir: str | None = field(default="outputs/msa", metadata=trainer_help("output_dir"))
    metrics_profile: str = field(default="mosi", metadata={"help": f"One of {METRIC_PROFILES}."})
    max_text_length: int | None = field(default=None, metadata={"help": "Truncate text to this many frames."})
    max_audio_length: int | None = field(default=None, metadata={"help": "Truncate audio to this many frames."})
    max_vision_length: int | None = field(default=None, metadata={"help": "Truncate vision to this many frames."})
    learning_rate: float = field(default=1e-4, metadata=trainer_help("learning_rate"))
    weight_decay: float = field(default=1e-4, metadata=trainer_help("weight_decay"))
    per_device_train_batch_size: int = field(default=32, metadata=trainer_help("per_device_train_batch_size"))
    per_device_eval_batch_size: int = field(default=64, metadata=trainer_help("per_device_eval_batch_size"))
    remove_unused_columns: bool = field(default=False, metadata=trainer_help("remove_unused_columns"))
    report_to: None | str | list[str] = field(
        default="none", metadata={"help": "Loggers: none, tensorboard (pip install tensorboard; logs in "
                                          "<output_dir>/runs), wandb, ..., or all installed ones."}
    )
    ddp_find_unused_parameters: bool | None = field(
        default=False,
        metadata={"help": "DDP's find_unused_parameters. msa-hub models use every trainable parameter in each step, "
                          "so the extra graph traversal (and its warning) is off; set true for a model that does not "
                          "(e.g. trainable bundled encoders fed precomputed features)."},
    )
    lr_scheduler_type: str = field(default="constant", metadata=trainer_help("lr_scheduler_type", "Both papers: constant."))
    max_grad_norm: float = field(default=0.0, metadata=trainer_help("max_grad_norm", "Both papers: no clipping."))
    adam_l2_weight_decay: bool = field(
        default=True,
        metadata={"help": "Adam with L2 weight decay added to the gradient (torch.optim.Adam(weight_decay=...)), as "
                          "both papers; false: Trainer's --optim (AdamW by default)."},
    )
    decay_every_parameter: bool = field(
        default=True,
        metadata={"help": "Weight decay on every parameter (torch.optim.Adam(model.parameters(), ...), Semi-IIN); "
                          "false: not on biases and LayerNorms (Trainer's default)."},
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata={"help": "Stop after this many evaluations without improving metric_for_best_model (Self-MM: 8 "
                          "epochs on validation MAE); needs load_best_model_at_end."},
    )
    cpu_word_dropout: bool = field(
        default=True,
        metadata={"help": "Eager training on a CPU: draw the dropout masks from random words and fuse the "
                          "feed-forward ReLU into its dropout (training_msa/cpu_dropout.py; the same distribution, "
                          "another random stream; the saved model is unchanged). No effect on accelerators or with "
                          "--torch_compile."},
    )
    cpu_amx_bf16: bool = field(
        default=False,
        metadata={"help": "Semi-IIN on a machine without an accelerator whose CPU has AMX bf16 units (Intel Xeon 4th "
                          "generation and later): train with bf16 autocast, as --bf16 true would. A deviation from "
                          "the papers' fp32 recipes; no effect on other CPUs, on accelerators or with --bf16/--fp16 "
                          "set."},
    )
    torch_compile_dynamic: bool | None = field(
        default=True,
        metadata={"help": "With --torch_compile: compile for dynamic shapes from the first step (the default "
                          "collator pads each batch to its longest sample, so lengths vary). Default job on a 2-core "
                          "CPU: 330 s of training vs 666 s with torch's automatic dynamic shapes (one recompile per "
                          "modality whose length changes); false: static shapes, for batches padded to fixed "
                          "lengths. Sets ACCELERATE_DYNAMO_USE_DYNAMIC."},
    )
    stop_on_non_finite_loss: bool = field(
        default=True,
        metadata={"help": "Stop with an error naming the step when a training loss is NaN/inf (instead of "
                          "training, and publishing, a NaN model)."},
    )

    def __post_init__(self):
        if self.metrics_profile not in METRIC_PROFILES:
            raise ValueError(f"--metrics_profile {self.metrics_profile!r}: expected one of {METRIC_PROFILES}.")
        if self.label_names is None:
            self.label_names = ["labels"]
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not self.use_cpu and not torch.accelerator.is_available():
            # Without an accelerator, Trainer runs DDP (gloo) only with use_cpu; otherwise every process of a
            # `torchrun`/`accelerate launch` job would silently train alone on the whole dataset.
            self.use_cpu = True
        if not torch.accelerator.is_available():
            self.dataloader_pin_memory = False  # nothing to pin for; torch warns on every data loader otherwise
            # --bf16 on a machine without an accelerator is CPU autocast (Trainer asks for use_cpu)
            self.use_cpu = self.use_cpu or self.bf16
        super().__post_init__()
        if self.torch_compile and self.torch_compile_dynamic is not None:  # read by accelerate's TorchDynamoPlugin
            os.environ["ACCELERATE_DYNAMO_USE_DYNAMIC"] = str(self.torch_compile_dynamic).lower()


@dataclass
class SharedPrivateTrainingArguments(MSATrainingArguments):
    """ULGM and per-module learning rates (Self-MM MOSI: text 5e-5, audio/vision 5e-3, other 1e-3)."""

    ulgm_label_bound: float = field(default=3.0, metadata={"help": "H: clamp of generated labels (SIMS: 1)."})
    ulgm_exclude_zero: bool = field(default=True, metadata={"help": "Positive centre from labels > 0."})
    use_human_unimodal_labels: bool = field(
        default=False, metadata={"help": "Use the dataset's label_T/label_A/label_V (SIMS) instead of ULGM."}
    )
    text_encoder_learning_rate: float | None = field(default=None, metadata={"help": "LR of the text encoder."})
    audio_learning_rate: float | None = field(default=None, metadata={"help": "LR of the audio LSTM."})
    vision_learning_rate: float | None = field(default=None, metadata={"help": "LR of the vision LSTM."})
    text_encoder_weight_decay: float | None = field(
        default=None, metadata={"help": "Weight decay of the text encoder (not of its biases / LayerNorms)."}
    )
    audio_weight_decay: float | None = field(default=None, metadata={"help": "Weight decay of the audio LSTM."})
    vision_weight_decay: float | None = field(default=None, metadata={"help": "Weight decay of the vision LSTM."})
    sum_accumulated_gradients: bool = field(
        default=True,
        metadata={"help": "Sum the gradients of the accumulated batches (MMSA's update_epochs) instead of "
                          "averaging them (Trainer's default)."},
    )


@dataclass
class SelfTrainingArguments:
    """Flags of the self-training procedure (Semi-IIN: one round, k = 40 on MOSI, all samples on MOSEI)."""

    _argument_group_name = "Semi-IIN self-training (Algorithm 1)"  # its --help section (HfArgumentParser)

    self_training: bool = field(default=False, metadata={"help": "Run Semi-IIN self-training."})
    self_training_rounds: int = field(default=1, metadata={"help": "Pseudo-labelling rounds after stage 0."})
    pseudo_label_top_k: int = field(default=40, metadata={"help": "Kept per class; -1 keeps every sample."})
    label_fraction: float = field(default=1.0, metadata={"help": "Fraction of the labelled train set used."})
    label_fraction_seed: int = field(default=0, metadata={"help": "Seed of the labelled subsample."})
    retrain_from_scratch: bool = field(
        default=True, metadata={"help": "Each round trains a fresh model (else it continues the previous one)."}
    )
    unlabeled_split: str = field(default="unlabeled", metadata={"help": "Split holding the unlabelled samples."})
    unlabeled_dataset: str | None = field(
        default=None,
        metadata={"help": "Read the unlabelled samples from another corpus (e.g. ami), extracted with the same "
                          "encoders as the labelled one; default: the --unlabeled_split of --dataset_name."},
    )
    unlabeled_data_dir: str | None = field(
        default=None, metadata={"help": "Folder of --unlabeled_dataset (e.g. extract_features output/dataset)."}
    )

    def __post_init__(self):
        if not 0.0 < self.label_fraction <= 1.0:
            raise ValueError(f"--label_fraction must lie in (0, 1], got {self.label_fraction}.")
        if self.self_training_rounds < 1:
            raise ValueError(f"--self_training_rounds must be >= 1, got {self.self_training_rounds}.")
        if self.unlabeled_dataset is not None and not self.self_training:
            raise ValueError("--unlabeled_dataset is read by self-training only: add --self_training true.")
        if (self.unlabeled_dataset is None) != (self.unlabeled_data_dir is None):
            raise ValueError("--unlabeled_dataset and --unlabeled_data_dir go together (e.g. --unlabeled_dataset ami "
                             "--unlabeled_data_dir ami_features/dataset).")
        if self.pseudo_label_top_k == 0 or self.pseudo_label_top_k < -1:
            raise ValueError(f"--pseudo_label_top_k must be positive or -1 (keep all), got {self.pseudo_label_top_k}.")

    @property
    def top_k(self) -> int | None:
        return None if self.pseudo_label_top_k == -1 else self.pseudo_label_top_k


__all__ = ["METRIC_PROFILES", "MSATrainingArguments", "SelfTrainingArguments", "SharedPrivateTrainingArguments"]
