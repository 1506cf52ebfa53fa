"""Callbacks with the Keras shape: hooks get (epoch, logs); stopping is a flag on the trainer.

`logs` at epoch end holds lr, train_loss, train_acc, val_loss, val_acc, seconds, images_per_s.
A callback that must survive --resume returns its counters from state_dict() and takes them back
in load_state_dict(); the trainer stores them in the checkpoint.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from ..errors import ConfigError


class Callback:
    trainer = None

    def set_trainer(self, trainer) -> None:
        self.trainer = trainer

    def on_train_begin(self, logs: dict) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict) -> None: ...
    def on_batch_end(self, batch: int, logs: dict) -> None:
        """Called every few batches (when the trainer syncs): logs has the running loss and accuracy."""
    def on_epoch_end(self, epoch: int, logs: dict) -> None: ...
    def on_train_end(self, logs: dict) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


class _Monitor:
    """Tracks the best value of one logged metric (mode min or max, min_delta)."""

    def __init__(self, monitor: str, mode: str, min_delta: float):
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        if mode not in ("min", "max"):
            raise ConfigError(f"The 'mode' parameter must be 'min', 'max' or 'auto'. Got {mode!r} instead.")
        if min_delta < 0:
            raise ConfigError(f"The 'min_delta' parameter must be >= 0. Got {min_delta!r} instead.")
        self.monitor, self.mode, self.min_delta = monitor, mode, min_delta
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = None

    def value(self, logs: dict) -> float:
        if self.monitor not in logs:
            raise ConfigError(f"cannot monitor {self.monitor!r}: the logs have {', '.join(sorted(logs))}")
        return float(logs[self.monitor])

    def improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, epoch: int, logs: dict) -> bool:
        value = self.value(logs)
        if self.improved(value):
            self.best, self.best_epoch = value, epoch
            return True
        return False

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs; optionally put back
    the best epoch's weights at the end."""

    def __init__(self, monitor: str = "val_acc", mode: str = "auto", patience: int = 5, min_delta: float = 0.0,
                 restore_best_weights: bool = False):
        if patience < 1:
            raise ConfigError(f"The 'patience' parameter of EarlyStopping must be >= 1. Got {patience} instead.")
        self.tracker = _Monitor(monitor, mode, min_delta)
        self.patience, self.restore_best_weights = patience, restore_best_weights
        self.wait, self.stopped_epoch, self.best_weights = 0, None, None

    def on_epoch_end(self, epoch, logs):
        if self.tracker.update(epoch, logs):
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = self.trainer.weights(copy=True)
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
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


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` when `monitor` stalls for `patience` epochs (down to min_lr)."""

    def __init__(self, monitor: str = "val_loss", mode: str = "auto", factor: float = 0.1, patience: int = 3,
                 min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0):
        if not 0 < factor < 1:
            raise ConfigError(f"The 'factor' parameter of ReduceLROnPlateau must be in (0, 1). Got {factor} instead.")
        if patience < 1:
            raise ConfigError(f"The 'patience' parameter of ReduceLROnPlateau must be >= 1. Got {patience} instead.")
        if cooldown < 0:
            raise ConfigError(f"The 'cooldown' parameter of ReduceLROnPlateau must be >= 0. Got {cooldown} instead.")
        if min_lr < 0:
            raise ConfigError(f"The 'min_lr' parameter of ReduceLROnPlateau must be >= 0. Got {min_lr} instead.")
        self.tracker = _Monitor(monitor, mode, min_delta)
        self.factor, self.patience, self.cooldown, self.min_lr = factor, patience, cooldown, min_lr
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


class ModelCheckpoint(Callback):
    """Save weights when `monitor` improves (best) and/or the full training state every epoch (last).

    `save_best(state_dict, epoch)` and `save_last(epoch)` are the writers; the run folder supplies them,
    so this callback knows when to save, not where or how. Put it after the other callbacks: the last
    state must hold their counters (and a reduced learning rate) after the epoch, or a resumed run differs.
    """

    def __init__(self, save_best=None, save_last=None, monitor: str = "val_acc", mode: str = "auto",
                 min_delta: float = 0.0):
        self.tracker = _Monitor(monitor, mode, min_delta)
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


class CSVLogger(Callback):
    """One row per epoch, appended and flushed as the epoch ends (the run folder's metrics.csv)."""

    def __init__(self, append_row):
        self.append_row = append_row

    def on_epoch_end(self, epoch, logs):
        self.append_row({"epoch": epoch, **logs})


class TensorBoard(Callback):
    """Epoch scalars (losses, accuracies, lr, images/s) as TensorBoard event files."""

    def __init__(self, log_dir: str | Path):
        self.log_dir = Path(log_dir)
        self.writer = None

    def on_train_begin(self, logs):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(self.log_dir))

    def on_epoch_end(self, epoch, logs):
        for key, value in logs.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                group = "loss" if key.endswith("loss") else "accuracy" if key.endswith("acc") else "train"
                self.writer.add_scalar(f"{group}/{key}", value, epoch)
        self.writer.flush()

    def on_train_end(self, logs):
        if self.writer is not None:
            self.writer.close()


class History(Callback):
    """Keeps every epoch's logs in memory (also what fit() returns)."""

    def __init__(self):
        self.epochs: list[dict] = []

    def on_epoch_end(self, epoch, logs):
        self.epochs.append({"epoch": epoch, **logs})

    def state_dict(self):
        return {"epochs": self.epochs}

    def load_state_dict(self, state):
        self.epochs = list(state["epochs"])


class ProgressPrinter(Callback):
    """Live progress on a terminal (a transient bar within the epoch) and one line per epoch anywhere."""

    def __init__(self, console=None, every: float = 0.5):
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.every = every
        self.progress = self.task = None
        self.started = None

    def on_train_begin(self, logs):
        self.started = time.perf_counter()
        self.first_epoch = logs.get("initial_epoch", 0) + 1

    def on_epoch_begin(self, epoch, logs):
        if not self.console.is_terminal:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn(f"epoch {epoch}/{self.trainer.epochs}"), BarColumn(),
                                 TextColumn("{task.fields[status]}"), TimeRemainingColumn(),
                                 console=self.console, transient=True)
        self.progress.start()
        self.task = self.progress.add_task("train", total=logs["steps"], status="")

    def on_batch_end(self, batch, logs):
        if self.progress is not None:
            status = f"loss {logs['loss']:.4f} acc {logs['acc']:.2%} {logs['images_per_s']:,.0f} img/s"
            self.progress.update(self.task, completed=batch, status=status)

    def on_epoch_end(self, epoch, logs):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        done = epoch - self.first_epoch + 1
        elapsed = time.perf_counter() - self.started
        left = (self.trainer.epochs - epoch) * elapsed / max(done, 1)
        self.console.print(
            f"epoch {epoch}/{self.trainer.epochs}  loss {logs['train_loss']:.4f}  acc {logs['train_acc']:.2%}  "
            f"val_loss {logs['val_loss']:.4f}  val_acc {logs['val_acc']:.2%}  lr {logs['lr']:.2e}  "
            f"{logs['images_per_s']:,.0f} img/s  {logs['seconds']:.1f} s  left ~{_duration(left)}",
            highlight=False, soft_wrap=True)

    def on_train_end(self, logs):
        if self.progress is not None:
            self.progress.stop()


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
