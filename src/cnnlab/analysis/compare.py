"""Is one model better than another? With scipy / statsmodels:

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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ..runfolder import SUMMARY, RunFolder, runs_in
from ..studyfolder import study_groups
from .metrics import read_run_predictions
from .stats import holm, paired_test, wilson_interval

EXACT_BELOW = 25  # discordant pairs: below this McNemar's exact binomial version is used


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


def mcnemar(correct_a, correct_b) -> tuple[float, dict]:
    """p of McNemar's test on paired correctness; exact (binomial) when b + c < EXACT_BELOW."""
    from statsmodels.stats.contingency_tables import mcnemar as statsmodels_mcnemar

    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    table = [[int((a & b).sum()), int((a & ~b).sum())], [int((~a & b).sum()), int((~a & ~b).sum())]]
    discordant = table[0][1] + table[1][0]
    exact = discordant < EXACT_BELOW
    result = statsmodels_mcnemar(table, exact=exact, correction=True)
    return float(result.pvalue), {"table": table, "only_a_right": table[0][1], "only_b_right": table[1][0],
                                  "exact": exact, "statistic": float(result.statistic)}


def bootstrap_difference(correct_a, correct_b, resamples: int = 10_000, seed: int = 0,
                         level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of accuracy(a) - accuracy(b), resampling test examples (pairs kept together)."""
    diff = np.asarray(correct_a, np.int8) - np.asarray(correct_b, np.int8)
    rng = np.random.default_rng(seed)
    n = len(diff)
    means = np.empty(resamples)
    for start in range(0, resamples, 1000):  # in blocks: 10,000 x n indices at once would be large
        stop = min(resamples, start + 1000)
        means[start:stop] = diff[rng.integers(0, n, (stop - start, n))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def compare_runs(a: str | Path, b: str | Path, split: str = "test", resamples: int = 10_000) -> Comparison:
    pa, pb = read_run_predictions(a, split), read_run_predictions(b, split)
    if pa.predictions.sha256 != pb.predictions.sha256 or not np.array_equal(pa.predictions.labels,
                                                                            pb.predictions.labels):
        raise DataError(f"{a} and {b} were evaluated on different {split} images (their image fingerprints "
                        f"differ), so their predictions cannot be paired; evaluate both on the same data "
                        f"(cnnlab evaluate RUN --data NAME)")
    labels = pa.predictions.labels
    right_a, right_b = pa.predictions.predicted == labels, pb.predictions.predicted == labels
    p, details = mcnemar(right_a, right_b)
    return Comparison(str(a), str(b), "mcnemar", float(right_a.mean()), float(right_b.mean()),
                      float(right_a.mean() - right_b.mean()), p, bootstrap_difference(right_a, right_b, resamples),
                      details)


def group_accuracies(path: str | Path, split: str = "test") -> dict[int, float]:
    """seed -> test accuracy of every finished run in a folder of runs (or of the one run given)."""
    path = Path(path)
    runs = [path] if (path / SUMMARY).exists() else runs_in(path)
    out = {}
    for run in runs:
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


def expand_studies(paths: list[str | Path]) -> list[Path]:
    """A study folder stands for its groups of seeds (`base/`, `optimizer=sgd/`, ...): every value of
    every factor, compared pairwise."""
    out = []
    for path in map(Path, paths):
        if (path / "study.json").exists():
            out += [group for group in study_groups(path) if runs_in(group)]
        else:
            out.append(path)
    return out


def is_single_run(path: str | Path) -> bool:
    return (Path(path) / SUMMARY).exists() and (Path(path) / "predictions.npz").exists()


def _check_comparable(path: Path) -> None:
    """A run with predictions, a folder of seeds (run folders inside) or a study folder; otherwise say
    what `path` is and what to give instead."""
    if (path / "study.json").exists() or is_single_run(path):
        return
    what = "give run folders, folders of seeds (a study's optimizer=sgd/) or a study folder"
    if not path.exists():
        raise DataError(f"{path}: no such folder, so no finished run folders to compare; {what}")
    if not path.is_dir():
        raise DataError(f"{path} is a file, not a run folder; {what}")
    if (path / SUMMARY).exists():
        raise DataError(f"{path} is a run without predictions.npz; write it with `cnnlab evaluate {path}`")
    if (path / "config.yaml").exists():
        raise DataError(f"{path} is an unfinished run ({SUMMARY} is missing); finish it with "
                        f"`cnnlab train --out {path} --resume`")
    if not any(path.glob(f"*/{SUMMARY}")):
        raise DataError(f"{path} is neither a run folder ({SUMMARY} and predictions.npz), a folder of seeds "
                        f"(it holds no finished run folders) nor a study folder (study.json); {what}")


def compare(paths: list[str | Path], split: str = "test", alpha: float = 0.05,
            resamples: int = 10_000) -> list[Comparison]:
    """Every pair of the given runs or groups of runs (Holm-corrected when more than one pair)."""
    if split not in ("test", "val"):
        raise ConfigError(f"--split must be test or val. Got {split!r} instead.")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ConfigError(f"--alpha must be a significance level between 0 and 1 (e.g. 0.05). Got {alpha!r} instead.")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ConfigError(f"--resamples must be a whole number of bootstrap resamples, 1 or more (10,000 is "
                          f"usual). Got {resamples!r} instead.")
    for path in map(Path, paths):
        _check_comparable(path)
    paths = expand_studies(paths)
    if len(paths) < 2:
        raise DataError("compare needs at least two runs or folders of runs (use `cnnlab compare A B`)")
    kinds = {p: is_single_run(p) for p in paths}
    if len(set(kinds.values())) > 1:
        run = next(p for p, single in kinds.items() if single)
        group = next(p for p, single in kinds.items() if not single)
        raise DataError(f"{run} is a run but {group} is a folder of seeds: compare either runs with runs (McNemar "
                        f"on their predictions) or folders of seeds with folders of seeds (paired over seeds), "
                        f"not a mix; give only runs or only folders of seeds")
    runs = set(kinds.values()) == {True}
    results = [compare_runs(a, b, split, resamples) if runs else compare_groups(a, b, split, alpha)
               for a, b in itertools.combinations(paths, 2)]
    if len(results) > 1:
        for result, adjusted in zip(results, holm([r.p for r in results])):
            result.p_holm = adjusted
    return results


def accuracy_interval(path: str | Path, split: str = "test", level: float = 0.95) -> tuple[float, float, float]:
    """(accuracy, low, high): a Wilson interval on one run's accuracy."""
    source = read_run_predictions(path, split)
    correct = int((source.predictions.predicted == source.predictions.labels).sum())
    total = len(source.predictions.labels)
    low, high = wilson_interval(correct, total, level)
    return correct / total, low, high
