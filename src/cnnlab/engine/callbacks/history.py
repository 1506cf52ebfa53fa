"""Every epoch's logs in memory."""

from __future__ import annotations

from . import Callback


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
