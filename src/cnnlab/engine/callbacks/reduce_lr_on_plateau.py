"""Lower the learning rate when a metric stops improving."""

from __future__ import annotations

from . import CALLBACKS, Callback
from .monitor import Monitor
from .options import (
    AtLeastOne,
    CallbackOptions,
    Mode,
    Monitored,
    NonNegative,
    NonNegativeInt,
    OpenUnitInterval,
    checked_options,
)


class ReduceLROnPlateauOptions(CallbackOptions):
    monitor: Monitored = "val_loss"
    mode: Mode = "auto"
    factor: OpenUnitInterval = 0.1
    patience: AtLeastOne = 3  # Keras waits 10
    min_delta: NonNegative = 1e-4
    cooldown: NonNegativeInt = 0
    min_lr: NonNegative = 0.0


@CALLBACKS.register("reduce_lr_on_plateau")
class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` when `monitor` stalls for `patience` epochs (down to min_lr),
    then wait `cooldown` epochs before counting again."""

    Options = ReduceLROnPlateauOptions

    def __init__(self, monitor: str = "val_loss", mode: str = "auto", factor: float = 0.1, patience: int = 3,
                 min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0):
        options = checked_options(ReduceLROnPlateauOptions, "ReduceLROnPlateau", monitor=monitor, mode=mode,
                                  factor=factor, patience=patience, min_delta=min_delta, cooldown=cooldown,
                                  min_lr=min_lr)
        self.tracker = Monitor(options.monitor, options.mode, options.min_delta)
        self.factor, self.patience = options.factor, options.patience
        self.cooldown, self.min_lr = options.cooldown, options.min_lr
        self.wait, self.cooldown_left = 0, 0

    def on_epoch_end(self, epoch, logs):
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.wait = 0
        if self.tracker.update(epoch, logs):
            self.wait = 0
            return
        if self.cooldown_left == 0:
            self.wait += 1
        if self.wait >= self.patience:
            lr = self.trainer.current_lr()
            new_lr = max(lr * self.factor, self.min_lr)
            if new_lr < lr:
                self.trainer.lr_scale *= new_lr / lr
            self.wait, self.cooldown_left = 0, self.cooldown

    def state_dict(self):
        return {**self.tracker.state_dict(), "wait": self.wait, "cooldown_left": self.cooldown_left}

    def load_state_dict(self, state):
        self.tracker.load_state_dict(state)
        self.wait, self.cooldown_left = state["wait"], state["cooldown_left"]
