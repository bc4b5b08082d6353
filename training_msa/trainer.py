"""`Trainer` for msa-hub models: multimodal collator and MSA metrics by default."""

import contextlib
import errno
import logging
import math
import os
import shutil

import torch

from transformers import EarlyStoppingCallback, Trainer

from .checkpoints import last_complete_checkpoint
from .collator import MSADataCollator
from .interrupt import INTERRUPT
from .metrics import build_compute_metrics
from .training_args import MSATrainingArguments

logger = logging.getLogger(__name__)


class MSATrainer(Trainer):
    """A `Trainer` whose defaults fit msa-hub models: `MSADataCollator` (padding + masks) and the metrics of
    `args.metrics_profile`; `resume_from_checkpoint=True` (or "last") resumes from the newest checkpoint that
    was written completely. Everything else (accelerate/DDP, logging) is `Trainer`'s."""

    checkpoint_required_files: tuple[str, ...] = ()

    def __init__(self, model=None, args: MSATrainingArguments | None = None, data_collator=None,
                 compute_metrics=None, **kwargs):
        args = args if args is not None else MSATrainingArguments()
        if data_collator is None:
            data_collator = self.default_data_collator(args)
        if compute_metrics is None:
            num_classes = getattr(getattr(model, "config", None), "num_emotion_classes", 7)
            compute_metrics = build_compute_metrics(getattr(args, "metrics_profile", "mosi"), num_classes)
        super().__init__(model=model, args=args, data_collator=data_collator, compute_metrics=compute_metrics,
                         **kwargs)
        self.add_callback(INTERRUPT)  # acts only where train.py installed its SIGINT handler
        if getattr(args, "cpu_word_dropout", False) and self.args.device.type == "cpu" and not args.torch_compile:
            from training_msa.cpu_dropout import apply_cpu_word_dropout

            apply_cpu_word_dropout(self.model)
        patience = getattr(args, "early_stopping_patience", None)
        if patience is not None:
            self.add_callback(ValidationEarlyStopping(early_stopping_patience=patience))

    def get_optimizer_cls_and_kwargs(self, args, model=None):
        """Trainer's optimizer hook: `torch.optim.Adam` (L2 weight decay added to the gradient) when
        `args.adam_l2_weight_decay`, else Trainer's choice (`--optim`)."""
        if not getattr(args, "adam_l2_weight_decay", False):
            return Trainer.get_optimizer_cls_and_kwargs(args, model)
        return torch.optim.Adam, {"lr": args.learning_rate, "betas": (args.adam_beta1, args.adam_beta2),
                                  "eps": args.adam_epsilon}

    def get_decay_parameter_names(self, model) -> list[str]:
        """Every parameter when `args.decay_every_parameter` (as `torch.optim.Adam(model.parameters(), ...)`),
        else Trainer's rule (no decay on biases and LayerNorms)."""
        if getattr(self.args, "decay_every_parameter", False):
            return [name for name, _ in model.named_parameters()]
        return super().get_decay_parameter_names(model)

    @staticmethod
    def default_data_collator(args, **options) -> MSADataCollator:
        """`MSADataCollator` with the truncation lengths of `args` (plain `TrainingArguments` have none)."""
        return MSADataCollator(
            max_text_length=getattr(args, "max_text_length", None),
            max_audio_length=getattr(args, "max_audio_length", None),
            max_vision_length=getattr(args, "max_vision_length", None),
            **options,
        )

    @contextlib.contextmanager
    def _inputs_checked_by_collator(self, model):
        """While `MSADataCollator` (which checks every sample on the CPU) feeds the model, switch the model's own
        data-dependent input checks off (`validate_inputs`), so a step has no host sync for them."""
        modules = [m for m in self.accelerator.unwrap_model(model).modules() if "validate_inputs" in vars(m)]
        if not isinstance(self.data_collator, MSADataCollator) or not modules:
            yield
            return
        previous = [m.validate_inputs for m in modules]
        for module in modules:
            module.validate_inputs = False
        try:
            yield
        finally:
            for module, value in zip(modules, previous):
                module.validate_inputs = value

    def training_step(self, model, inputs, num_items_in_batch=None):
        with self._inputs_checked_by_collator(model):
            loss = super().training_step(model, inputs, num_items_in_batch)
        # Trainer itself reads this loss on the host for its NaN/inf logging filter, so the check adds no sync of
        # its own that matters; without it a NaN label or feature trains (and publishes) a NaN model.
        if getattr(self.args, "stop_on_non_finite_loss", False) and not math.isfinite(float(loss)):
            raise NonFiniteLossError(
                f"The training loss is {float(loss)} at step {self.state.global_step + 1} (epoch "
                f"{self.state.epoch or 0:.2f}). Likely causes: NaN/inf labels or features in the training data (the "
                "loaders refuse them; check custom data), or a learning rate too high for this model (try a lower "
                "--learning_rate or --max_grad_norm 1). Pass --stop_on_non_finite_loss false to train on anyway."
            )
        return loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        with self._inputs_checked_by_collator(model):
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)

    def resolve_checkpoint(self, resume_from_checkpoint):
        """True, "true" or "last" -> the newest complete checkpoint of `output_dir`; anything else unchanged."""
        if resume_from_checkpoint is True or (
            isinstance(resume_from_checkpoint, str) and resume_from_checkpoint.lower() in ("true", "last")
        ):
            resume_from_checkpoint = last_complete_checkpoint(self.args.output_dir, self.checkpoint_required_files)
            if resume_from_checkpoint is None:
                raise ValueError(f"No complete checkpoint to resume from in {self.args.output_dir}.")
            logger.info("Resuming from the last complete checkpoint %s", resume_from_checkpoint)
        return resume_from_checkpoint

    def train(self, resume_from_checkpoint=None, **kwargs):
        with disk_full_names_the_folder(self.args.output_dir):
            return super().train(resume_from_checkpoint=self.resolve_checkpoint(resume_from_checkpoint), **kwargs)

    def save_model(self, output_dir=None, _internal_call=False):
        with disk_full_names_the_folder(output_dir or self.args.output_dir):
            return super().save_model(output_dir, _internal_call=_internal_call)


class ValidationEarlyStopping(EarlyStoppingCallback):
    """transformers' early stopping, counting only the validation evaluations of training (a later
    `evaluate(test, metric_key_prefix="test")` is not a validation and neither counts nor warns)."""

    def on_evaluate(self, args, state, control, metrics, **kwargs):
        metric = args.metric_for_best_model
        if metric and (metric if metric.startswith("eval_") else f"eval_{metric}") not in metrics:
            return
        super().on_evaluate(args, state, control, metrics, **kwargs)


class NonFiniteLossError(RuntimeError):
    """A training loss became NaN or inf (see `MSATrainingArguments.stop_on_non_finite_loss`)."""


DISK_FULL_MARKERS = ("No space left on device", "file write failed", "There is not enough space")


@contextlib.contextmanager
def disk_full_names_the_folder(folder):
    """Re-raise a full disk (errno ENOSPC, or torch's / safetensors' C++ messages for it) as one OSError that names
    the folder being written and its free space, instead of a library's internal message."""
    try:
        yield
    except (OSError, RuntimeError) as error:
        is_full = getattr(error, "errno", None) == errno.ENOSPC or any(m in str(error) for m in DISK_FULL_MARKERS)
        if not is_full or folder is None:
            raise
        try:
            free = f"{shutil.disk_usage(folder).free / 2**20:.0f} MiB free"
        except OSError:
            free = "free space unknown"
        raise OSError(errno.ENOSPC, f"no space left on device in {os.path.abspath(folder)} ({free}) while writing a "
                                    "checkpoint or model: free space, lower --save_total_limit, or pass another "
                                    "--output_dir; --resume_from_checkpoint last continues from the last complete "
                                    f"checkpoint. ({type(error).__name__}: {error})") from error
