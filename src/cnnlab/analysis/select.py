"""Model selection on measured figures: each candidate's validation accuracy (mean over its seeds),
its latency and throughput measured on this machine, and its size; a weighted sum of normalised
criteria ranks them, and the accuracy-vs-latency and accuracy-vs-size Pareto fronts show the trade-off.

The reference study ranked models by ImageNet top-5, a GPU latency from a table and a parameter count;
here every figure is the user's: their data's validation split (never test) and their hardware.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError, DataError, bad_value
from ..folders import RunRef, StudyRef, resolve_folders
from ..runfolder import SUMMARY, RunFolder

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CRITERIA = {  # name -> (summary field or measured key, higher is better)
    "accuracy": ("val_accuracy", True),
    "top5": ("val_top5", True),
    "latency": ("latency_ms", False),
    "throughput": ("images_per_s", True),
    "size": ("params", False),
}
NORMALISATIONS = ("minmax", "rank", "zscore")
DEFAULT_WEIGHTS = {"accuracy": 0.6, "latency": 0.2, "size": 0.2}


@dataclass
class Candidate:
    name: str
    runs: list[Path]
    figures: dict = field(default_factory=dict)  # val_accuracy, val_top5, params, latency_ms, images_per_s, seeds
    score: float = math.nan
    parts: dict = field(default_factory=dict)  # criterion -> normalised value (1 = best)


def candidates_from(paths: list[str | Path]) -> list[Candidate]:
    """A run folder is a candidate; a folder of runs (a study's `optimizer=sgd/`) is one candidate over
    its seeds; a study folder gives one candidate per factor value (its `<factor=value>/` folders)."""
    out = []
    for ref in resolve_folders(paths):
        if isinstance(ref, RunRef):
            status = ref.folder.read_summary().get("status")
            if status != "finished":
                raise DataError(f"{ref.path} is a {status or 'failed'} run (see its {SUMMARY}); select ranks "
                                f"finished runs: rerun it or leave it out")
            out.append(Candidate(ref.path.name, [ref.path]))
        elif isinstance(ref, StudyRef):
            for group in ref.groups:
                runs = _finished(group.runs)
                if runs:
                    out.append(Candidate(group.path.name, runs))
        else:
            runs = _finished(ref.runs)
            if not runs:
                raise DataError(f"{ref.path}: no finished run folders in it ({SUMMARY} with status finished); give "
                                f"run folders, folders of seeds or a study folder")
            out.append(Candidate(ref.path.name, runs))
    if len(out) < 2:
        raise DataError(f"select needs at least two candidates and found {len(out)}; give two or more runs or "
                        f"folders of seeds, or a study folder")
    return out


def _finished(runs) -> list[Path]:
    return [r for r in runs if RunFolder(r).read_summary().get("status") == "finished"]


def measure(candidate: Candidate, device: str | None = None, repeats: int = 30) -> None:
    """Fill in the candidate's figures: validation metrics from its runs, speed timed here (first run)."""
    from ..engine.inference import time_inference

    summaries = [RunFolder(r).read_summary() for r in candidate.runs]
    candidate.figures["seeds"] = len(summaries)
    for run, summary in zip(candidate.runs, summaries):
        val = summary.get("val")
        if not isinstance(val, dict) or not isinstance(val.get("accuracy"), (int, float)) \
                or not isinstance(summary.get("params"), int):
            raise DataError(f"{run / SUMMARY} lacks the validation accuracy or parameter count of a finished run; "
                            f"restore the file or retrain the run")
    candidate.figures["val_accuracy"] = float(np.mean([s["val"]["accuracy"] for s in summaries]))
    tops = [s["val"].get("top5") for s in summaries]
    candidate.figures["val_top5"] = float(np.mean(tops)) if all(t is not None for t in tops) else math.nan
    candidate.figures["params"] = summaries[0]["params"]
    timing = time_inference(candidate.runs[0], device, repeats=repeats)
    candidate.figures.update(latency_ms=timing["latency_ms"], images_per_s=timing["images_per_s"],
                             device=timing["device"])


def normalise(values: np.ndarray, higher_is_better: bool, how: str) -> np.ndarray:
    """Each value mapped so that 1 is the best candidate's and 0 the worst's (minmax, rank), or a
    z-score with the sign making higher better."""
    v = np.asarray(values, dtype=float)
    v = v if higher_is_better else -v
    if how == "minmax":
        span = v.max() - v.min()
        return np.ones_like(v) if span == 0 else (v - v.min()) / span
    if how == "rank":
        from scipy.stats import rankdata

        ranks = rankdata(v)  # ties share their mean rank
        return np.ones_like(v) if len(v) == 1 else (ranks - 1) / (len(v) - 1)
    if how == "zscore":
        sd = v.std()
        return np.zeros_like(v) if sd == 0 else (v - v.mean()) / sd
    raise _bad_normalisation(how)


def _bad_normalisation(how) -> ConfigError:
    return bad_value("--normalisation", "select", f"one of {', '.join(NORMALISATIONS)}", how)


def parse_weights(text: str | dict | None) -> dict[str, float]:
    """'accuracy=0.6,latency=0.2,size=0.2' (or a dict) -> weights; unknown criteria are refused."""
    if text is None:
        return dict(DEFAULT_WEIGHTS)
    example = "e.g. --weights accuracy=0.6,latency=0.2,size=0.2"
    if not isinstance(text, (str, dict)):
        raise ConfigError(f"--weights takes criterion=weight pairs ({example}); got {text!r}")
    items = text.items() if isinstance(text, dict) else (part.split("=", 1) for part in text.split(",") if part.strip())
    weights = {}
    for item in items:
        if len(item) != 2:
            raise ConfigError(f"--weights takes criterion=weight pairs ({example}); got {text!r}")
        name, value = str(item[0]).strip(), item[1]
        if name not in CRITERIA:
            raise ConfigError(f"--weights: unknown criterion {name!r}; choose from {', '.join(CRITERIA)}")
        if name in weights:
            raise ConfigError(f"--weights gives {name} twice; give each criterion once")
        try:
            weights[name] = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"--weights: the weight of {name} must be a number, got {value!r}") from None
        if not math.isfinite(weights[name]) or weights[name] < 0:
            raise ConfigError(f"--weights: the weight of {name} must be a number >= 0, got {value!r}")
    if not weights or sum(weights.values()) == 0:
        raise ConfigError(f"--weights: at least one criterion needs a weight above 0 ({example}); got {text!r}")
    return weights


def rank(candidates: list[Candidate], weights: dict[str, float], how: str = "minmax") -> list[Candidate]:
    """Score = sum of weight x normalised criterion (weights rescaled to sum to 1); best first."""
    total = sum(weights.values())
    for candidate in candidates:
        candidate.parts, candidate.score = {}, 0.0
    for criterion, weight in weights.items():
        key, higher = CRITERIA[criterion]
        values = np.array([c.figures[key] for c in candidates], dtype=float)
        if not np.isfinite(values).all():
            raise DataError(f"{criterion} is not known for every candidate (e.g. top-5 needs more than 5 classes); "
                            f"drop it from --weights")
        for candidate, value in zip(candidates, normalise(values, higher, how)):
            candidate.parts[criterion] = float(value)
            candidate.score += weight / total * float(value)
    return sorted(candidates, key=lambda c: -c.score)


def select(paths: list[str | Path], weights: str | dict | None = None, normalisation: str = "minmax",
           device: str | None = None, repeats: int = 30) -> list[Candidate]:
    weights = parse_weights(weights)
    if normalisation not in NORMALISATIONS:  # before the minutes of measuring
        raise _bad_normalisation(normalisation)
    candidates = candidates_from(paths)
    for candidate in candidates:
        measure(candidate, device, repeats)
    return rank(candidates, weights, normalisation)


# (criterion on x, its axis label, file stem): validation accuracy against each cost
PARETO_FIGURES = (("latency_ms", "latency, ms per image (batch 1)", "pareto-latency"),
                  ("params", "parameters", "pareto-size"))


def pareto_figures(ranked: list[Candidate]) -> dict[str, Figure]:
    """The accuracy-vs-latency and accuracy-vs-size Pareto fronts of measured candidates: file stem ->
    matplotlib Figure."""
    from .plots import pareto_scatter

    points = [{"label": c.name, **c.figures} for c in ranked]
    return {stem: pareto_scatter(points, x, "val_accuracy", x_label=label, y_label="validation accuracy")
            for x, label, stem in PARETO_FIGURES}


def write_pareto_figures(ranked: list[Candidate], folder: str | Path) -> list[Path]:
    """pareto_figures written into `folder` as PNG and SVG; the paths written."""
    from .plots import save_figure

    figures = pareto_figures(ranked)
    return [path for stem, figure in figures.items() for path in save_figure(figure, Path(folder) / stem)]
