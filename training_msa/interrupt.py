"""Ctrl-C during training that always stops it, at a step boundary.

Python raises KeyboardInterrupt at whatever bytecode the main thread runs when SIGINT arrives. During training that
is often Python code called back from C++ (pyarrow's extension types while `datasets` gathers a batch, finalizers),
where the exception is swallowed (training went on to the end, exit status 0) or turned into another error
(`ArrowInvalid: Schema at index 5 was different`). With [`GracefulInterrupt`] installed, a Ctrl-C during training
only records the request, and the callback raises KeyboardInterrupt at the next step, evaluation batch, evaluation
or save; outside training, or at a second Ctrl-C, it raises at once as usual.
"""

import signal
import threading

from transformers import TrainerCallback


class GracefulInterrupt(TrainerCallback):
    """A `TrainerCallback` (every `MSATrainer` has the one instance, `INTERRUPT`) plus the SIGINT handler that
    [`install`] sets; without the handler it never acts."""

    def __init__(self):
        self.requested = False
        self.running = 0  # trainers in `train()` (self-training nests a predictor inside a stage)

    def install(self) -> bool:
        """Route SIGINT through this object (main thread only); returns whether it did."""
        if threading.current_thread() is not threading.main_thread():
            return False
        signal.signal(signal.SIGINT, self._on_sigint)
        return True

    def _on_sigint(self, signum, frame) -> None:
        if not self.running or self.requested:  # outside training, or a second Ctrl-C: at once
            raise KeyboardInterrupt
        self.requested = True

    def _stop_if_requested(self) -> None:
        if self.requested:
            self.requested, self.running = False, 0
            raise KeyboardInterrupt

    def on_train_begin(self, args, state, control, **kwargs):
        self.running += 1

    def on_train_end(self, args, state, control, **kwargs):
        self.running = max(self.running - 1, 0)
        self._stop_if_requested()

    def on_step_end(self, args, state, control, **kwargs):
        self._stop_if_requested()

    def on_prediction_step(self, args, state, control, **kwargs):
        self._stop_if_requested()

    def on_evaluate(self, args, state, control, **kwargs):
        self._stop_if_requested()

    def on_save(self, args, state, control, **kwargs):
        self._stop_if_requested()


INTERRUPT = GracefulInterrupt()
