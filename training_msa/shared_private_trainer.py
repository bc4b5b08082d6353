"""Multi-task training of the shared/private model (and Self-MM) with ULGM-generated unimodal labels."""

import math
import os

import torch
from transformers import Trainer

from dataset_scripts.loading import read_labels
from dataset_scripts.atomic_write import atomic_path
from modeling_msa.msa_utils import MODALITIES

from .trainer import MSATrainer
from .training_args import SharedPrivateTrainingArguments
from .ulgm import UnimodalLabelBank

BANK_FILE = "ulgm_bank.safetensors"


def trainer_can_skip_accumulation_division() -> bool:
    """Whether this transformers' Trainer has `loss_is_scaled_for_ga` (5.19+), its switch for a loss that must not
    be divided by the gradient accumulation steps; on older ones setting it silently changes nothing."""
    return hasattr(Trainer, "loss_is_scaled_for_ga")


class _ScaledGradient(torch.autograd.Function):
    """The loss unchanged, its gradient times `factor`."""

    @staticmethod
    def forward(ctx, loss: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return loss.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.factor, None


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
        # Summing the accumulated gradients: Trainer's switch where it has one (transformers >= 5.19: do not divide
        # by the accumulation steps), else compute_loss's loss carries a gradient that undoes the division
        self._undo_accumulation_division = False
        if getattr(args, "sum_accumulated_gradients", False):
            if trainer_can_skip_accumulation_division():
                self.loss_is_scaled_for_ga = True
            else:
                self._undo_accumulation_division = True

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
        inputs.pop("sample_index", None)  # the model takes no index (training_step has used it for the bank)
        outputs = model(**inputs)
        loss = outputs.loss
        if model.training:
            self._batch_features = outputs.features  # handed to `training_step`'s bank step
            if self._undo_accumulation_division:  # Trainer divides it by exactly this count before backward
                loss = _ScaledGradient.apply(loss, float(self.current_gradient_accumulation_steps))
        return (loss, outputs) if return_outputs else loss

    def get_optimizer_cls_and_kwargs(self, args, model=None):
        """Trainer's optimizer hook, with MMSA's SELF_MM parameter groups as `params`: the text encoder split into
        decay / no-decay (`get_decay_parameter_names`: biases and LayerNorms get none), then the audio LSTM, the
        vision LSTM and every other module, each with its own learning rate and weight decay (`*_learning_rate`,
        `*_weight_decay`; unset = `learning_rate` / `weight_decay`)."""
        optimizer_class, kwargs = super().get_optimizer_cls_and_kwargs(args, model)
        if model is None:
            return optimizer_class, kwargs
        decaying = set(Trainer.get_decay_parameter_names(self, model))
        rate = lambda value: args.learning_rate if value is None else value  # noqa: E731
        decay = lambda value: args.weight_decay if value is None else value  # noqa: E731
        groups = {
            "text_decay": (rate(args.text_encoder_learning_rate), decay(args.text_encoder_weight_decay)),
            "text_no_decay": (rate(args.text_encoder_learning_rate), 0.0),
            "audio": (rate(args.audio_learning_rate), decay(args.audio_weight_decay)),
            "vision": (rate(args.vision_learning_rate), decay(args.vision_weight_decay)),
            "other": (args.learning_rate, args.weight_decay),
        }
        members: dict[str, list] = {name: [] for name in groups}
        for name, parameter in model.named_parameters():
            if not parameter.requires_grad:
                continue
            if name.startswith("text_encoder."):
                members["text_decay" if name in decaying else "text_no_decay"].append(parameter)
            elif name.startswith("audio_encoder."):
                members["audio"].append(parameter)
            elif name.startswith("vision_encoder."):
                members["vision"].append(parameter)
            else:
                members["other"].append(parameter)
        kwargs["params"] = [{"params": members[name], "lr": lr, "weight_decay": wd}
                            for name, (lr, wd) in groups.items() if members[name]]
        return optimizer_class, kwargs

    @property
    def checkpoint_required_files(self) -> tuple[str, ...]:
        return (BANK_FILE,) if self.label_bank is not None else ()

    def save_model(self, output_dir=None, _internal_call=False):
        """Checkpoints (`_internal_call`) also hold the label bank, written before Trainer's state file so that
        a complete checkpoint always has it."""
        super().save_model(output_dir, _internal_call=_internal_call)
        if _internal_call and self.label_bank is not None and self.args.should_save:
            with atomic_path(os.path.join(output_dir or self.args.output_dir, BANK_FILE)) as temporary:
                self.label_bank.save(temporary)

    def train(self, resume_from_checkpoint=None, **kwargs):
        resume_from_checkpoint = self.resolve_checkpoint(resume_from_checkpoint)
        if resume_from_checkpoint and self.label_bank is not None:
            bank = os.path.join(resume_from_checkpoint, BANK_FILE)
            if not os.path.exists(bank):
                raise FileNotFoundError(f"{bank} is missing: this checkpoint holds no ULGM label bank to resume.")
            self.label_bank.load(bank)
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)
