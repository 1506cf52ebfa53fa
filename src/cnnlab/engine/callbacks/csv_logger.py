"""One row per epoch to a writer (the run folder's metrics.csv)."""

from __future__ import annotations

from . import Callback


class CSVLogger(Callback):
    """One row per epoch, appended and flushed as the epoch ends (the run folder's metrics.csv)."""

    def __init__(self, append_row):
        self.append_row = append_row

    def on_epoch_end(self, epoch, logs):
        self.append_row({"epoch": epoch, **logs})
