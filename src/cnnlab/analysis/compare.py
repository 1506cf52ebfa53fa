"""Is one model better than another? Which pairs are tested, and over what (the tests are in stats.py):

- two runs: McNemar's test on their paired test predictions (exact binomial when the discordant
  counts are small) and a bootstrap CI of the accuracy difference over test examples; predictions
  made on different images are refused (the sha256 recorded with them must match);
- two groups of runs (a folder of seeds, e.g. a study's `optimizer=sgd/`): paired t and Wilcoxon over
  the seeds both have, saying when there are too few seeds for a test to reach significance;
- more than two: every pair, Holm-corrected;
- one run: a Wilson interval on its accuracy.
Every result ends in one sentence: significant or not at alpha, with the effect size.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, bad_value
from ..folders import RunRef, SeedGroupRef, StudyRef, resolve_folder, resolve_folders
from ..runfolder import PREDICTIONS, SUMMARY, RunFolder
from .metrics import RunPredictions, read_run_predictions
from .stats import bootstrap_difference, check_alpha, holm, mcnemar, paired_test, wilson_interval


@dataclass
class Comparison:
    a: str
    b: str
    kind: str  # 'mcnemar' (two runs) or 'seeds' (two groups)
    accuracy_a: float
    accuracy_b: float
    difference: float  # accuracy a - b
    p: float
    ci: tuple[float, float] | None = None  # 95 % bootstrap CI of the difference (runs)
    details: dict = field(default_factory=dict)
    p_holm: float | None = None
    notes: list[str] = field(default_factory=list)

    def sentence(self, alpha: float = 0.05) -> str:
        p = self.p_holm if self.p_holm is not None else self.p
        adjusted = " (Holm-adjusted)" if self.p_holm is not None else ""
        effect = f"{self.difference * 100:+.2f} points of accuracy ({self.accuracy_a:.2%} vs {self.accuracy_b:.2%})"
        if self.ci is not None:
            effect += f", 95 % CI {self.ci[0] * 100:+.2f} to {self.ci[1] * 100:+.2f}"
        if not math.isfinite(p):
            return f"{self.a} vs {self.b}: {effect}; no test possible ({'; '.join(self.notes)})."
        verdict = "significant" if p < alpha else "not significant"
        return f"{self.a} vs {self.b}: {effect}; p = {p:.3g}{adjusted}, {verdict} at {alpha:g}."


@dataclass(frozen=True)
class AccuracyInterval:
    """One run's accuracy with a Wilson interval (95 % unless asked otherwise)."""

    path: Path
    accuracy: float
    low: float
    high: float


@dataclass(frozen=True)
class Comparisons:
    """What `compare` found: every pairwise test (Holm-adjusted when more than one) and, when the inputs
    are runs, each run's accuracy interval. Iterating it goes over the pairwise tests."""

    results: list[Comparison]
    intervals: list[AccuracyInterval]  # empty when folders of seeds were compared
    split: str
    alpha: float

    def __iter__(self) -> Iterator[Comparison]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, index: int) -> Comparison:
        return self.results[index]

    def sentences(self) -> list[str]:
        return [result.sentence(self.alpha) for result in self.results]


def compare_runs(a: str | Path, b: str | Path, split: str = "test", resamples: int = 10_000) -> Comparison:
    return _compare_predictions(read_run_predictions(a, split), read_run_predictions(b, split), resamples,
                                str(a), str(b))


def _compare_predictions(pa: RunPredictions, pb: RunPredictions, resamples: int, a: str, b: str) -> Comparison:
    if pa.predictions.sha256 != pb.predictions.sha256 or not np.array_equal(pa.predictions.labels,
                                                                            pb.predictions.labels):
        raise DataError(f"{a} and {b} were evaluated on different {pa.split} images (their image fingerprints "
                        f"differ), so their predictions cannot be paired; evaluate both on the same data "
                        f"(cnnlab evaluate RUN --data NAME)")
    labels = pa.predictions.labels
    right_a, right_b = pa.predictions.predicted == labels, pb.predictions.predicted == labels
    p, details = mcnemar(right_a, right_b)
    return Comparison(a, b, "mcnemar", float(right_a.mean()), float(right_b.mean()),
                      float(right_a.mean() - right_b.mean()), p, bootstrap_difference(right_a, right_b, resamples),
                      details)


def group_accuracies(path: str | Path, split: str = "test") -> dict[int, float]:
    """seed -> test accuracy of every finished run in a folder of runs (or of the one run given)."""
    path = Path(path)
    ref = resolve_folder(path, accept=(RunRef, SeedGroupRef))
    out = {}
    for run in [ref.path] if isinstance(ref, RunRef) else ref.runs:
        summary = RunFolder(run).read_summary()
        if summary.get("status") == "finished":
            seed = summary.get("seed")
            if seed in out:
                raise DataError(f"{path} holds two finished runs with seed {seed}; a group pairs runs by seed")
            out[seed] = summary[split]["accuracy"]
    if not out:
        raise DataError(f"{path}: no finished run folders (with {SUMMARY}) in it or below it")
    return out


def compare_groups(a: str | Path, b: str | Path, split: str = "test", alpha: float = 0.05) -> Comparison:
    ga, gb = group_accuracies(a, split), group_accuracies(b, split)
    seeds = sorted(set(ga) & set(gb))
    if not seeds:
        raise DataError(f"{a} and {b} share no seed, so their runs cannot be paired; run both with the same seeds")
    test = paired_test([ga[s] for s in seeds], [gb[s] for s in seeds], alpha)
    notes = [test.note] if test.note else []
    if len(seeds) < max(len(ga), len(gb)):
        notes.append(f"paired on the {len(seeds)} seeds both have")
    mean_a, mean_b = float(np.mean([ga[s] for s in seeds])), float(np.mean([gb[s] for s in seeds]))
    return Comparison(str(a), str(b), "seeds", mean_a, mean_b, mean_a - mean_b, test.t_p,
                      details={"seeds": seeds, "wilcoxon_p": test.wilcoxon_p}, notes=notes)


def _compared(refs) -> list[RunRef | SeedGroupRef]:
    """A study folder stands for its groups of seeds (`base/`, `optimizer=sgd/`, ...): every value of
    every factor, compared pairwise."""
    return [unit for ref in refs for unit in (ref.groups if isinstance(ref, StudyRef) else (ref,))]


def expand_studies(paths: list[str | Path]) -> list[Path]:
    """The runs and folders of seeds `compare` pairs: the paths given, each study folder replaced by its
    groups of seeds."""
    return [unit.path for unit in _compared(resolve_folders(paths))]


def is_single_run(path: str | Path) -> bool:
    """Whether `path` is one run folder with predictions (not a folder of seeds or a study)."""
    return isinstance(resolve_folder(path), RunRef) and RunFolder(path).has(PREDICTIONS)


def compare(paths: list[str | Path], split: str = "test", alpha: float = 0.05,
            resamples: int = 10_000) -> Comparisons:
    """Every pair of the given runs or groups of runs (Holm-corrected when more than one pair), and each
    run's Wilson interval on its accuracy when runs are compared."""
    if split not in ("test", "val"):
        raise bad_value("--split", "compare", "test or val", split)
    check_alpha(alpha, "compare")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise bad_value("--resamples", "compare", "a whole number of bootstrap resamples, 1 or more (10,000 is "
                        "usual)", resamples)
    units = _compared(resolve_folders(paths, need_predictions=True))
    if len(units) < 2:
        raise DataError("compare needs at least two runs or folders of runs (use `cnnlab compare A B`)")
    runs = [u for u in units if isinstance(u, RunRef)]
    groups = [u for u in units if isinstance(u, SeedGroupRef)]
    if runs and groups:
        raise DataError(f"{runs[0].path} is a run but {groups[0].path} is a folder of seeds: compare either runs with "
                        f"runs (McNemar on their predictions) or folders of seeds with folders of seeds (paired over "
                        f"seeds), not a mix; give only runs or only folders of seeds")
    if runs:
        sources = [read_run_predictions(run.path, split) for run in runs]
        results = [_compare_predictions(pa, pb, resamples, str(a.path), str(b.path))
                   for (a, pa), (b, pb) in itertools.combinations(zip(runs, sources), 2)]
        intervals = [_interval(run.path, source) for run, source in zip(runs, sources)]
    else:
        results = [compare_groups(a.path, b.path, split, alpha) for a, b in itertools.combinations(groups, 2)]
        intervals = []
    if len(results) > 1:
        for result, adjusted in zip(results, holm([r.p for r in results])):
            result.p_holm = adjusted
    return Comparisons(results, intervals, split, alpha)


def accuracy_interval(path: str | Path, split: str = "test", level: float = 0.95) -> tuple[float, float, float]:
    """(accuracy, low, high): a Wilson interval on one run's accuracy."""
    interval = _interval(Path(path), read_run_predictions(path, split), level)
    return interval.accuracy, interval.low, interval.high


def _interval(path: Path, source: RunPredictions, level: float = 0.95) -> AccuracyInterval:
    correct = int((source.predictions.predicted == source.predictions.labels).sum())
    total = len(source.predictions.labels)
    low, high = wilson_interval(correct, total, level)
    return AccuracyInterval(path, correct / total, low, high)
