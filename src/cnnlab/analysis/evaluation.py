"""A finished run evaluated in one call: its kept weights scored on a test split (the predictions
written into the run folder), its inference speed timed on this machine, and, on its own data, the
analysis of those predictions (weighted F1, per-class table, most-confused pairs). The run is loaded
once for the scoring and the timing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import bad_value
from .metrics import RunReport, analyse_run


@dataclass(frozen=True)
class Evaluation:
    scores: dict  # engine.inference.evaluate_run: data, own_data, images, accuracy, loss, macro_f1, top5, ...
    timing: dict  # engine.inference.time_inference: latency_ms, images_per_s, batch, device, threads
    analysis: RunReport | None  # of the test split, on the run's own data only (None on other data)

    @property
    def own_data(self) -> bool:
        return bool(self.scores["own_data"])


def evaluate(run: str | Path, data: str | None = None, device: str | None = None, confused: int = 8) -> Evaluation:
    """Score `run` on the test split of its own data (rewriting predictions.npz) or of `data` (a dataset
    with the same classes), time its inference, and analyse the predictions on its own data, listing the
    `confused` most-confused class pairs."""
    from ..engine.inference import evaluate_run, load_run, time_inference

    if isinstance(confused, bool) or not isinstance(confused, int) or confused < 0:
        raise bad_value("--confused", "evaluate", "a whole number of class pairs, 0 or more", confused)
    loaded = load_run(run, device)
    scores = evaluate_run(run, data, device, loaded=loaded)
    timing = time_inference(run, device, loaded=loaded)
    # the analysis reads predictions.npz, which holds the run's own test split
    analysis = analyse_run(run, "test", confused) if scores["own_data"] else None
    return Evaluation(scores, timing, analysis)
