"""Multi-task training of the shared/private model (and Self-MM) with ULGM-generated unimodal labels."""

import math
import os
from dataclasses import dataclass, field

import torch

from modeling_msa.msa_utils import MODALITIES

from .data import read_labels
from .trainer import MSATrainer, MSATrainingArguments
from .ulgm import UnimodalLabelBank

BANK_FILE = "ulgm_bank.safetensors"


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


class IndexedDataset(torch.utils.data.Dataset):
    """Adds each row's position as `index` (the key of the ULGM memory banks) without rewriting the data."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return {**self.dataset[index], "index": index}


class SharedPrivateTrainer(MSATrainer):
    """`MSATrainer` for [`SharedPrivateForSentimentAnalysis`]: feeds ULGM labels (or human SIMS labels) as the
    unimodal targets and, in `training_step`, steps the label bank after each training batch in Self-MM's order
    (the epoch read from `state.epoch`); saves the bank with every checkpoint and restores it on resume."""

    def __init__(self, model=None, args: SharedPrivateTrainingArguments | None = None, train_dataset=None,
                 data_collator=None, **kwargs):
        args = args if args is not None else SharedPrivateTrainingArguments()
        if data_collator is None:
            data_collator = self.default_data_collator(
                args, include_sample_index=True, human_unimodal_labels=args.use_human_unimodal_labels,
                text_input=model.config.text_input,
            )
        self.label_bank = None
        if train_dataset is not None and not args.use_human_unimodal_labels:
            labels = read_labels(train_dataset)
            config = model.config
            sizes = {"fusion": config.post_fusion_size, "text": config.post_text_size,
                     "audio": config.post_audio_size, "vision": config.post_vision_size}
            self.label_bank = UnimodalLabelBank(
                torch.from_numpy(labels), sizes, label_bound=args.ulgm_label_bound, exclude_zero=args.ulgm_exclude_zero
            )
            train_dataset = IndexedDataset(train_dataset)
        self._batch_features = None
        super().__init__(model=model, args=args, train_dataset=train_dataset, data_collator=data_collator, **kwargs)

    @property
    def ulgm_epoch(self) -> int:
        """The current epoch, counted from 1 (`state.epoch` is the fractional progress of the run)."""
        return math.floor((self.state.epoch or 0.0) + 1e-6) + 1

    def training_step(self, model, inputs, num_items_in_batch=None):
        """One batch with the bank's current unimodal labels as targets, then the bank's ULGM step on the batch's
        post-layer features (Self-MM's order: loss first, then labels, features, centres)."""
        indexes = inputs.pop("sample_index", None)
        if self.label_bank is None or indexes is None:
            return super().training_step(model, inputs, num_items_in_batch)
        cpu_indexes = indexes.cpu()
        for mode in MODALITIES:
            inputs[f"{mode}_labels"] = self.label_bank.labels(mode)[cpu_indexes].to(inputs["labels"].device)
        loss = super().training_step(model, inputs, num_items_in_batch)
        features, self._batch_features = self._batch_features, None
        self.label_bank.step(features, indexes, self.ulgm_epoch)
        return loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs.pop("sample_index", None)  # evaluation batches carry it too; only training uses the bank
        outputs = model(**inputs)
        if model.training:
            self._batch_features = outputs.features  # handed to `training_step`'s bank step
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def create_optimizer(self, model=None):
        """AdamW/Adam param groups with Self-MM's per-module learning rates where they are set."""
        if self.optimizer is not None:
            return self.optimizer
        model = model if model is not None else self.model
        rates = {"text_encoder.": self.args.text_encoder_learning_rate, "audio_encoder.": self.args.audio_learning_rate,
                 "vision_encoder.": self.args.vision_learning_rate}
        groups: dict[float, list] = {}
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                rate = next((r for prefix, r in rates.items() if name.startswith(prefix) and r is not None),
                            self.args.learning_rate)
                groups.setdefault(rate, []).append(parameter)
        optimizer_class, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        optimizer_kwargs.pop("params", None)
        self.optimizer = optimizer_class(
            [{"params": params, "lr": rate, "weight_decay": self.args.weight_decay} for rate, params in groups.items()],
            **optimizer_kwargs,
        )
        return self.optimizer

    @property
    def checkpoint_required_files(self) -> tuple[str, ...]:
        return (BANK_FILE,) if self.label_bank is not None else ()

    def save_model(self, output_dir=None, _internal_call=False):
        """Checkpoints (`_internal_call`) also hold the label bank, written before Trainer's state file so that
        a complete checkpoint always has it."""
        super().save_model(output_dir, _internal_call=_internal_call)
        if _internal_call and self.label_bank is not None and self.args.should_save:
            folder = output_dir or self.args.output_dir
            temporary = os.path.join(folder, BANK_FILE + ".tmp")
            self.label_bank.save(temporary)
            os.replace(temporary, os.path.join(folder, BANK_FILE))

    def train(self, resume_from_checkpoint=None, **kwargs):
        resume_from_checkpoint = self.resolve_checkpoint(resume_from_checkpoint)
        if resume_from_checkpoint and self.label_bank is not None:
            bank = os.path.join(resume_from_checkpoint, BANK_FILE)
            if not os.path.exists(bank):
                raise FileNotFoundError(f"{bank} is missing: this checkpoint holds no ULGM label bank to resume.")
            self.label_bank.load(bank)
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)
