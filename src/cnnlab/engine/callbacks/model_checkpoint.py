"""Save the best weights and the last training state."""

from __future__ import annotations

from . import Callback
from .monitor import Monitor
from .options import CallbackOptions, Mode, NonNegative, checked_options


class _MonitorOptions(CallbackOptions):
    monitor: str = "val_acc"
    mode: Mode = "auto"
    min_delta: NonNegative = 0.0


class ModelCheckpoint(Callback):
    """Save weights when `monitor` improves (best) and/or the full training state every epoch (last).

    `save_best(state_dict, epoch)` and `save_last(epoch)` are the writers; the run folder supplies them,
    so this callback knows when to save, not where or how. Put it after the other callbacks: the last
    state must hold their counters (and a reduced learning rate) after the epoch, or a resumed run differs.
    Not in CALLBACKS: every run has one, with the run folder's writers.
    """

    def __init__(self, save_best=None, save_last=None, monitor: str = "val_acc", mode: str = "auto",
                 min_delta: float = 0.0):
        options = checked_options(_MonitorOptions, "ModelCheckpoint", monitor=monitor, mode=mode, min_delta=min_delta)
        self.tracker = Monitor(options.monitor, options.mode, options.min_delta)
        self.save_best, self.save_last = save_best, save_last

    @property
    def best_epoch(self):
        return self.tracker.best_epoch

    def on_epoch_end(self, epoch, logs):
        if self.tracker.update(epoch, logs) and self.save_best is not None:
            self.save_best(self.trainer.weights(), epoch)
        if self.save_last is not None:
            self.save_last(epoch)  # after the best: a resumed run must find the best it had

    def state_dict(self):
        return self.tracker.state_dict()

    def load_state_dict(self, state):
        self.tracker.load_state_dict(state)
