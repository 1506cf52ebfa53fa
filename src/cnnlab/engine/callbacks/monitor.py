"""The best value so far of one logged metric, shared by the callbacks that watch one."""

from __future__ import annotations

import math

from ...errors import ConfigError


class Monitor:
    """Tracks the best value of `monitor` (mode min, max, or auto: max for accuracies) by at least min_delta.
    The callbacks that use it have checked mode and min_delta through their options."""

    def __init__(self, monitor: str, mode: str, min_delta: float):
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
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
