"""Is one model better than another (analysis/compare.py)? Real runs: LeNet-5 on scikit-learn's digits
(a few one- to three-epoch runs and a study of two cells over three seeds, built once for the module,
about 10 s on 2 cores), paired by McNemar and the bootstrap (tested on their own in test_stats.py) and
over seeds."""

from __future__ import annotations

import itertools
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from cnnlab.analysis.compare import (
    Comparison,
    Comparisons,
    accuracy_interval,
    compare,
    compare_groups,
    expand_studies,
    compare_runs,
    group_accuracies,
    is_single_run,
)
from cnnlab.analysis.stats import EXACT_BELOW
from cnnlab.errors import ConfigError, DataError

# ---- the Comparison's sentence ------------------------------------------------------------------------------


def test_sentence_says_significant_or_not_at_alpha_with_the_effect():
    c = Comparison("a", "b", "mcnemar", 0.9, 0.8, 0.1, 0.03, (0.02, 0.18))
    assert c.sentence() == ("a vs b: +10.00 points of accuracy (90.00% vs 80.00%), 95 % CI +2.00 to +18.00; "
                            "p = 0.03, significant at 0.05.")
    assert c.sentence(0.01).endswith("p = 0.03, not significant at 0.01.")
    c.p_holm = 0.09
    assert c.sentence().endswith("p = 0.09 (Holm-adjusted), not significant at 0.05.")
    nan = Comparison("a", "b", "seeds", 0.9, 0.8, 0.1, math.nan, notes=["1 pair: no test possible (run more seeds)"])
    assert "no test possible (1 pair" in nan.sentence()
    assert "significant" not in nan.sentence()


# ---- real runs ---------------------------------------------------------------------------------------------

BASE = {"data": "digits", "model": "lenet5", "train": {"epochs": 3, "lr": 0.01, "threads": 1}}
# adam is the default optimizer: the base cell; base and sgd x 3 seeds = 6 runs
STUDY = {"name": "s", "base": {"data": "digits", "model": "lenet5", "train": {"epochs": 2, "threads": 1}},
         "ablate": {"train.optimizer": ["sgd"]}, "seeds": 3}


def with_(**changes) -> dict:
    config = json.loads(json.dumps(BASE))
    for key, value in changes.items():
        section, name = key.split("__")
        if not isinstance(config[section], dict):
            config[section] = {"name": config[section]}
        config[section][name] = value
    return config


def write_inverted_digits_csv(folder: Path) -> str:
    """digits as a csv: dataset, whose test images are the digits test images inverted (same labels)."""
    from cnnlab.data import load_dataset

    digits = load_dataset("digits")
    folder.mkdir(parents=True)
    for split, invert in (("train", False), ("test", True)):
        images, labels = digits[split].images, digits[split].labels
        pixels = images.reshape(len(images), -1)
        pixels = 255 - pixels if invert else pixels
        rows = np.column_stack([labels, pixels]).astype(int)
        np.savetxt(folder / f"{split}.csv", rows, fmt="%d", delimiter=",")
    return f"csv:{folder / 'train.csv'},{folder / 'test.csv'}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from cnnlab.experiments.run import train_run
    from cnnlab.experiments.study import run_study

    threads = torch.get_num_threads()
    root = tmp_path_factory.mktemp("compare")
    configs = {
        "good": BASE,
        "good_seed1": with_(train__seed=1),
        "weak": with_(train__lr=1e-4, train__epochs=1),
        "split_seed1": with_(data__split_seed=1),  # another val split, the same test images
        "subset": with_(data__subset=0.5, train__epochs=1),  # a smaller train, the same val and test
        "carved": with_(data__carve_from="train", data__split_seed=1, train__epochs=1),  # another test split
        "seed7": with_(train__seed=7, train__epochs=1),
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNNLAB_DATA", str(tmp_path_factory.mktemp("compare-home")))
        patch.setenv("CNNLAB_OFFLINE", "1")
        configs["csv"] = with_(data__name=write_inverted_digits_csv(root / "csv-data"), train__epochs=1)
        paths = {name: train_run(config, root / name, progress=False).path for name, config in configs.items()}
        study = run_study(STUDY, root / "study", progress=False)
    torch.set_num_threads(threads)
    assert [o["status"] for o in study.outcomes] == ["finished"] * 6
    paths["study"] = study.folder.path
    return paths


def correctness(run: Path, split: str = "test"):
    with np.load(run / "predictions.npz") as data:
        labels = data[f"{split}_labels"]
        return data[f"{split}_logits"].astype(np.float32).argmax(1) == labels


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def test_compare_runs_a_clear_difference_is_significant(runs):
    result = compare_runs(runs["good"], runs["weak"], resamples=2000)
    right_a, right_b = correctness(runs["good"]), correctness(runs["weak"])
    assert result.kind == "mcnemar"
    assert result.accuracy_a == pytest.approx(right_a.mean())
    assert result.accuracy_a == pytest.approx(summary(runs["good"])["test"]["accuracy"])
    assert result.accuracy_b == pytest.approx(right_b.mean())
    assert result.difference == pytest.approx(right_a.mean() - right_b.mean())
    assert result.difference > 0.3  # three epochs at lr 0.01 against one at 1e-4
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    assert (result.details["only_a_right"], result.details["only_b_right"]) == (only_a, only_b)
    assert result.details["exact"] is False  # well over 25 discordant images
    statistic = (abs(only_a - only_b) - 1) ** 2 / (only_a + only_b)
    assert result.p == pytest.approx(stats.chi2.sf(statistic, 1), rel=1e-9)
    low, high = result.ci
    assert low < result.difference < high and low > 0
    sentence = result.sentence()
    assert sentence.startswith(f"{runs['good']} vs {runs['weak']}: +")
    assert "significant at 0.05" in sentence and "not significant" not in sentence


def test_compare_runs_a_run_with_its_copy_is_not_significant(runs, tmp_path):
    copy = shutil.copytree(runs["good"], tmp_path / "copy")
    result = compare_runs(runs["good"], copy, resamples=500)
    assert result.p == 1.0 and result.difference == 0.0 and result.ci == (0.0, 0.0)
    assert result.details["exact"] is True
    assert "not significant at 0.05" in result.sentence()


def test_compare_runs_on_two_seeds_matches_the_predictions(runs):
    result = compare_runs(runs["good"], runs["good_seed1"], resamples=1000)
    right_a, right_b = correctness(runs["good"]), correctness(runs["good_seed1"])
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    assert result.details["table"] == [[int((right_a & right_b).sum()), only_a],
                                       [only_b, int((~right_a & ~right_b).sum())]]
    if only_a + only_b < EXACT_BELOW:
        expected = stats.binomtest(only_a, only_a + only_b).pvalue
    else:
        expected = stats.chi2.sf((abs(only_a - only_b) - 1) ** 2 / (only_a + only_b), 1)
    assert result.p == pytest.approx(expected, rel=1e-9)
    verdict = "not significant" if expected >= 0.05 else "significant"
    assert result.sentence().endswith(f"{verdict} at 0.05.")


def test_compare_runs_on_another_subset_or_split_seed_pairs_the_same_test_images(runs):
    # digits' test split is fixed: data.subset changes train, data.split_seed the validation images only
    for other in ("subset", "split_seed1"):
        result = compare_runs(runs["good"], runs[other], resamples=200)
        assert result.accuracy_b == pytest.approx(correctness(runs[other]).mean())
    compare_runs(runs["good"], runs["subset"], split="val", resamples=200)  # the same val images too


@pytest.mark.parametrize("other, split", [("carved", "test"), ("csv", "test"), ("split_seed1", "val")])
def test_compare_runs_refuses_predictions_on_different_images(runs, other, split):
    with pytest.raises(DataError, match="different") as caught:
        compare_runs(runs["good"], runs[other], split=split, resamples=200)
    assert str(runs["good"]) in str(caught.value) and str(runs[other]) in str(caught.value)


def test_compare_runs_refuses_same_labels_on_different_images(runs):
    """The csv run's test labels are digits' own, in order: only the image fingerprint tells them apart."""
    with np.load(runs["good"] / "predictions.npz") as a, np.load(runs["csv"] / "predictions.npz") as b:
        np.testing.assert_array_equal(a["test_labels"], b["test_labels"])
        assert str(a["test_sha256"]) != str(b["test_sha256"])
    with pytest.raises(DataError, match="different test images"):
        compare_runs(runs["good"], runs["csv"])


def test_accuracy_interval_is_wilson(runs):
    right = correctness(runs["good"])
    accuracy, low, high = accuracy_interval(runs["good"])
    k, n = int(right.sum()), len(right)
    assert accuracy == pytest.approx(k / n)
    assert low < accuracy < high
    assert (low, high) == pytest.approx(proportion_confint(k, n, alpha=0.05, method="wilson"))
    # the textbook formula
    z, p = stats.norm.ppf(0.975), k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert (low, high) == pytest.approx((centre - half, centre + half))
    _, low99, high99 = accuracy_interval(runs["good"], level=0.99)
    assert low99 < low and high < high99
    assert accuracy_interval(runs["good"], "val")[0] == pytest.approx(correctness(runs["good"], "val").mean())


# ---- folders of seeds --------------------------------------------------------------------------------------


def seed_accuracies(folder: Path) -> dict[int, float]:
    out = {}
    for file in folder.glob("*/summary.json"):
        s = json.loads(file.read_text())
        out[s["seed"]] = s["test"]["accuracy"]
    return out


def test_group_accuracies_reads_every_finished_seed(runs):
    base = runs["study"] / "base"
    assert group_accuracies(base) == seed_accuracies(base)
    assert sorted(group_accuracies(base)) == [0, 1, 2]
    one = next(base.glob("seed=1-*"))
    assert group_accuracies(one) == {1: summary(one)["test"]["accuracy"]}  # a single run is a group of one
    assert group_accuracies(base, "val")[0] == summary(next(base.glob("seed=0-*")))["val"]["accuracy"]


def test_compare_groups_is_paired_over_the_seeds(runs):
    base, sgd = runs["study"] / "base", runs["study"] / "optimizer=sgd"
    a, b = seed_accuracies(base), seed_accuracies(sgd)
    result = compare_groups(base, sgd)
    assert result.kind == "seeds" and result.details["seeds"] == [0, 1, 2]
    x, y = [a[s] for s in (0, 1, 2)], [b[s] for s in (0, 1, 2)]
    assert result.accuracy_a == pytest.approx(np.mean(x)) and result.accuracy_b == pytest.approx(np.mean(y))
    assert result.difference == pytest.approx(np.mean(x) - np.mean(y))
    assert result.p == pytest.approx(stats.ttest_rel(x, y).pvalue)
    assert result.details["wilcoxon_p"] == pytest.approx(stats.wilcoxon(x, y).pvalue)
    assert result.ci is None
    # three seeds: Wilcoxon's smallest two-sided p is 2/2**3 = 0.25
    assert any("Wilcoxon cannot reach p < 0.05 with 3 seeds" in note for note in result.notes)
    assert result.sentence().startswith(f"{base} vs {sgd}: ")
    assert ("not significant at 0.05" in result.sentence()) == (result.p >= 0.05)


def test_compare_groups_pairs_only_the_shared_seeds(runs, tmp_path):
    base, sgd = runs["study"] / "base", runs["study"] / "optimizer=sgd"
    partial = tmp_path / "partial"
    for seed in (0, 2):
        run = next(base.glob(f"seed={seed}-*"))
        shutil.copytree(run, partial / run.name)
    result = compare_groups(partial, sgd)
    assert result.details["seeds"] == [0, 2]
    b = seed_accuracies(sgd)
    assert result.accuracy_b == pytest.approx((b[0] + b[2]) / 2)  # seed 1 of sgd is left out
    assert "paired on the 2 seeds both have" in result.notes
    assert any("Wilcoxon cannot reach" in note for note in result.notes)


def test_compare_groups_with_one_shared_seed_says_no_test_is_possible(runs):
    base = runs["study"] / "base"
    one = next(base.glob("seed=0-*"))
    result = compare_groups(one, base)
    assert result.details["seeds"] == [0]
    assert math.isnan(result.p)
    assert "no test possible" in result.sentence()
    assert "significant" not in result.sentence()


def test_compare_groups_without_a_shared_seed_is_an_error(runs, tmp_path):
    lone = tmp_path / "seed7"
    shutil.copytree(runs["seed7"], lone / "run")
    with pytest.raises(DataError, match="share no seed"):
        compare_groups(runs["study"] / "base", lone)


def test_group_without_finished_runs_is_an_error(runs, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no finished run folders"):
        compare_groups(runs["study"] / "base", empty)
    failed = tmp_path / "failed"
    run = shutil.copytree(runs["seed7"], failed / "run")
    s = summary(run)
    s["status"] = "failed"
    (run / "summary.json").write_text(json.dumps(s))
    with pytest.raises(DataError, match="no finished run folders"):
        group_accuracies(failed)
    with pytest.raises(DataError, match="no finished run folders"):
        compare_groups(failed, runs["study"] / "base")


def test_group_with_two_runs_of_one_seed_is_an_error(runs, tmp_path):
    twice = tmp_path / "twice"
    shutil.copytree(runs["good"], twice / "a")
    shutil.copytree(runs["good"], twice / "b")
    with pytest.raises(DataError, match="two finished runs with seed 0"):
        group_accuracies(twice)


# ---- compare(): every pair, Holm-corrected ---------------------------------------------------------------


def holm_by_hand(p: list[float]) -> list[float]:
    order = sorted(range(len(p)), key=lambda i: p[i])
    adjusted, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def test_compare_two_runs_is_one_unadjusted_comparison(runs):
    [result] = compare([runs["good"], runs["weak"]], resamples=500)
    assert result.p_holm is None
    assert result.p == pytest.approx(compare_runs(runs["good"], runs["weak"], resamples=500).p)


def test_compare_three_runs_is_every_pair_holm_adjusted(runs):
    paths = [runs["good"], runs["weak"], runs["good_seed1"]]
    results = compare(paths, resamples=500)
    assert [(r.a, r.b) for r in results] == [(str(a), str(b)) for a, b in itertools.combinations(paths, 2)]
    for result, (a, b) in zip(results, itertools.combinations(paths, 2)):
        assert result.p == pytest.approx(compare_runs(a, b, resamples=500).p)
    raw = [r.p for r in results]
    assert [r.p_holm for r in results] == pytest.approx(holm_by_hand(raw))
    for r in results:
        assert r.p_holm >= r.p
        assert "(Holm-adjusted)" in r.sentence()


def test_compare_three_folders_of_seeds(runs, tmp_path):
    base, sgd = runs["study"] / "base", runs["study"] / "optimizer=sgd"
    results = compare([base, sgd, base])
    assert len(results) == 3 and {r.kind for r in results} == {"seeds"}
    assert results[1].p == pytest.approx(1.0)  # base against itself: no difference
    assert [r.p_holm for r in results] == pytest.approx(holm_by_hand([r.p for r in results]))
    assert all(r.p_holm >= r.p for r in results)


def test_compare_refuses_a_mix_of_a_run_and_a_folder_and_a_single_path(runs):
    assert is_single_run(runs["good"]) and not is_single_run(runs["study"] / "base")
    with pytest.raises(DataError, match="not a mix"):
        compare([runs["good"], runs["study"] / "base"])
    with pytest.raises(DataError, match="at least two"):
        compare([runs["good"]])
    with pytest.raises(DataError, match="different"):
        compare([runs["good"], runs["weak"], runs["carved"]], resamples=200)


def test_a_study_folder_stands_for_its_values(runs):
    study = runs["study"]
    assert expand_studies([study]) == [study / "base", study / "optimizer=sgd"]
    [result] = compare([study])
    direct = compare_groups(study / "base", study / "optimizer=sgd")
    assert result.kind == "seeds" and result.p == direct.p and result.p_holm is None


# ---- what compare() returns -----------------------------------------------------------------------------


def test_compare_of_runs_gives_the_pairs_and_each_runs_wilson_interval(runs):
    paths = [runs["good"], runs["weak"], runs["good_seed1"]]
    found = compare(paths, split="val", alpha=0.01, resamples=300)
    assert isinstance(found, Comparisons) and (found.split, found.alpha) == ("val", 0.01)
    assert len(found) == 3 and list(found) == found.results and found[1] is found.results[1]
    assert [interval.path for interval in found.intervals] == paths
    for interval, path in zip(found.intervals, paths):
        assert (interval.accuracy, interval.low, interval.high) == pytest.approx(accuracy_interval(path, "val"))
        assert interval.low < interval.accuracy < interval.high
    assert found.sentences() == [r.sentence(0.01) for r in found.results]


def test_compare_of_folders_of_seeds_has_no_intervals(runs):
    found = compare([runs["study"]])
    assert len(found.results) == 1 and found.intervals == []


@pytest.mark.parametrize("kwargs, message", [
    ({"split": "train"}, "The '--split' parameter of compare must be test or val. Got 'train' instead."),
    ({"alpha": 2}, "The '--alpha' parameter of compare must be a significance level between 0 and 1 (e.g. 0.05). "
                   "Got 2 instead."),
    ({"resamples": 0}, "The '--resamples' parameter of compare must be a whole number of bootstrap resamples, 1 or "
                       "more (10,000 is usual). Got 0 instead."),
])
def test_compare_refuses_bad_settings_in_the_one_template(runs, kwargs, message):
    with pytest.raises(ConfigError) as caught:
        compare([runs["good"], runs["weak"]], **kwargs)
    assert str(caught.value) == message


def test_compare_says_what_a_path_is_that_it_cannot_compare(runs, tmp_path):
    bare = shutil.copytree(runs["good"], tmp_path / "bare")
    (bare / "predictions.npz").unlink()
    with pytest.raises(DataError, match=f"{bare} is a run without predictions.npz; write it with `cnnlab evaluate"):
        compare([runs["good"], bare])
    unfinished = shutil.copytree(runs["good"], tmp_path / "unfinished")
    (unfinished / "summary.json").unlink()
    with pytest.raises(DataError, match="is an unfinished run .summary.json is missing.; finish it with `cnnlab train"):
        compare([runs["good"], unfinished])
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="file is a file, not a run folder; give run folders, folders of seeds"):
        compare([runs["good"], tmp_path / "file"])
