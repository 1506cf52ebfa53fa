"""Epoch scalars as TensorBoard event files."""

from __future__ import annotations

import math
from pathlib import Path

from . import Callback


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
