"""Stop training when a metric stops improving."""

from __future__ import annotations

from . import CALLBACKS, Callback
from .monitor import Monitor
from .options import AtLeastOne, CallbackOptions, Mode, Monitored, NonNegative, checked_options


class EarlyStoppingOptions(CallbackOptions):
    monitor: Monitored = "val_acc"  # Keras watches val_loss; we choose on validation accuracy
    mode: Mode = "auto"
    patience: AtLeastOne = 5
    min_delta: NonNegative = 0.0
    restore_best_weights: bool = False


@CALLBACKS.register("early_stopping")
class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs; optionally put back
    the best epoch's weights at the end."""

    Options = EarlyStoppingOptions

    def __init__(self, monitor: str = "val_acc", mode: str = "auto", patience: int = 5, min_delta: float = 0.0,
                 restore_best_weights: bool = False):
        options = checked_options(EarlyStoppingOptions, "EarlyStopping", monitor=monitor, mode=mode,
                                  patience=patience, min_delta=min_delta, restore_best_weights=restore_best_weights)
        self.tracker = Monitor(options.monitor, options.mode, options.min_delta)
        self.patience, self.restore_best_weights = options.patience, options.restore_best_weights
        self.wait, self.best_weights = 0, None

    def on_epoch_end(self, epoch, logs):
        if self.tracker.update(epoch, logs):
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = self.trainer.weights(copy=True)
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.trainer.stop_training = True
            self.trainer.stop_reason = (f"early stopping: {self.tracker.monitor} has not improved for "
                                        f"{self.patience} epochs (best {self.tracker.best:.4f} at epoch "
                                        f"{self.tracker.best_epoch})")

    def on_train_end(self, logs):
        if self.restore_best_weights and self.best_weights is not None:
            self.trainer.load_weights(self.best_weights)

    def state_dict(self):
        return {**self.tracker.state_dict(), "wait": self.wait}

    def load_state_dict(self, state):
        self.tracker.load_state_dict(state)
        self.wait = state["wait"]
