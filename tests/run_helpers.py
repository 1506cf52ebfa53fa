"""Helpers of the tests that train: metrics rows without their timings, two sets of weights compared,
a folder's files as they are, and Ctrl-C raised from a callback."""

from __future__ import annotations

from pathlib import Path

from cnnlab.engine.callbacks import Callback

TIMING = ("seconds", "images_per_s")  # the metrics that differ between two runs computing the same numbers


def untimed(rows: list[dict]) -> list[dict]:
    """Metrics rows (a History or metrics.csv) without their timings."""
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def same_weights(a: dict, b: dict) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def snapshot(folder: Path, *leave_out: str) -> dict:
    """Every file's bytes and mtime under `folder`, by relative path; files named in `leave_out` aside."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in leave_out}


class Interrupt(Callback):
    """Ctrl-C in the middle of the epoch after epoch `after` (whose checkpoint is written)."""

    def __init__(self, after: int):
        self.after = after

    def on_batch_end(self, batch, logs):
        if self.trainer.epoch == self.after:
            raise KeyboardInterrupt


def train_digits(tmp_path_factory, name: str, epochs: int = 1):
    """A real LeNet-5 run on scikit-learn's digits in a data home of its own (for module-scoped fixtures,
    which the per-test data home does not reach); torch's thread count is left as it was."""
    import pytest
    import torch

    from cnnlab.experiments.run import train_run

    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNNLAB_DATA", str(tmp_path_factory.mktemp(f"{name}-home")))
        patch.setenv("CNNLAB_OFFLINE", "1")
        config = {"data": "digits", "model": "lenet5", "train": {"epochs": epochs, "lr": 0.01, "threads": 1}}
        result = train_run(config, tmp_path_factory.mktemp(name) / "run", progress=False)
    torch.set_num_threads(threads)
    return result
