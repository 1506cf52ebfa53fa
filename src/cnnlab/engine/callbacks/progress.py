"""Progress on a terminal: a transient bar within the epoch and one line per epoch."""

from __future__ import annotations

import time

from ...text import describe_seconds
from . import Callback


class ProgressPrinter(Callback):
    """Live progress on a terminal (a transient bar within the epoch) and one line per epoch anywhere."""

    def __init__(self, console=None):
        from rich.console import Console

        self.console = console or Console(stderr=True)
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
            f"{logs['images_per_s']:,.0f} img/s  {logs['seconds']:.1f} s  left ~{describe_seconds(left)}",
            highlight=False, soft_wrap=True)

    def on_train_end(self, logs):
        if self.progress is not None:
            self.progress.stop()
