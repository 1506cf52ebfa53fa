"""`cnnlab evaluate` (its analysis: weighted F1, the most-confused pairs, --per-class) and `cnnlab compare`,
in-process with typer's CliRunner, on real LeNet-5 runs on scikit-learn's digits and a study of two cells
over three seeds (built once for the module, a few seconds)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_line_error, table_row
from data_helpers import noise_folder
from scipy import stats
from sklearn import metrics as skm
from statsmodels.stats.proportion import proportion_confint

BASE = {"data": "digits", "model": "lenet5", "train": {"epochs": 3, "lr": 0.01, "threads": 1}}
# adam is the default optimizer: the base cell; base and sgd x 3 seeds = 6 runs
STUDY = {"name": "s", "base": {"data": "digits", "model": "lenet5", "train": {"epochs": 2, "threads": 1}},
         "ablate": {"train.optimizer": ["sgd"]}, "seeds": 3}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from cnnlab.experiments.run import train_run
    from cnnlab.experiments.study import run_study

    threads = torch.get_num_threads()
    root = tmp_path_factory.mktemp("cli-compare")
    configs = {
        "good": BASE,
        "good_seed1": {**BASE, "train": {**BASE["train"], "seed": 1}},
        "weak": {**BASE, "train": {**BASE["train"], "lr": 1e-4, "epochs": 1}},
        "carved": {**BASE, "data": {"name": "digits", "carve_from": "train", "split_seed": 1},
                   "train": {**BASE["train"], "epochs": 1}},
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNNLAB_DATA", str(tmp_path_factory.mktemp("cli-compare-home")))
        patch.setenv("CNNLAB_OFFLINE", "1")
        paths = {name: train_run(config, root / name, progress=False).path for name, config in configs.items()}
        study = run_study(STUDY, root / "study", progress=False)
    torch.set_num_threads(threads)
    assert [o["status"] for o in study.outcomes] == ["finished"] * 6
    paths["base"], paths["sgd"] = study.folder.path / "base", study.folder.path / "optimizer=sgd"
    return paths


@pytest.fixture
def run_copy(runs, tmp_path) -> Path:
    """A copy of the good run, for `evaluate` (it rewrites predictions.npz)."""
    return Path(shutil.copytree(runs["good"], tmp_path / "run"))


def predictions(run: Path, split: str = "test"):
    with np.load(run / "predictions.npz") as data:
        labels = data[f"{split}_labels"]
        return labels, data[f"{split}_logits"].astype(np.float32).argmax(1)


def flat(text: str) -> str:
    return " ".join(text.split())


# ---- evaluate: the analysis ---------------------------------------------------------------------------------


def test_evaluate_prints_weighted_f1_and_the_most_confused_pairs_by_name(cli, run_copy):
    result = cli("evaluate", run_copy)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    labels, predicted = predictions(run_copy)  # as evaluate rewrote them
    line = (f"weighted F1 {skm.f1_score(labels, predicted, average='weighted'):.4f}, "
            f"macro precision {skm.precision_score(labels, predicted, average='macro', zero_division=0):.4f}, "
            f"macro recall {skm.recall_score(labels, predicted, average='macro', zero_division=0):.4f}\n")
    assert line in result.stdout
    assert "case-insensitive" not in result.stdout  # digits have no letter case
    assert "most-confused pairs (test)" in result.stdout
    assert "per class (test)" not in result.stdout
    # the pairs, from the predictions: both directions summed, the largest first, at most 8 (the default)
    matrix = skm.confusion_matrix(labels, predicted, labels=np.arange(10))
    pairs = sorted(((matrix[i, j] + matrix[j, i], str(i), str(j)) for i in range(10) for j in range(i + 1, 10)
                    if matrix[i, j] + matrix[j, i]), key=lambda p: (-p[0], p[1], p[2]))[:8]
    assert pairs, "a three-epoch LeNet-5 on digits still confuses some digits"
    rows = [table_row(result.stdout, f"'{a}' ↔ '{b}'") for _, a, b in pairs]
    for row, (total, a, b) in zip(rows, pairs):
        i, j = int(a), int(b)
        assert row[1:] == [str(matrix[i, j]), str(matrix[j, i]),
                           f"{total / (matrix[i].sum() + matrix[j].sum()):.1%}"]
    shown = [line for line in result.stdout.splitlines() if "↔" in line and "'" in line]
    assert len(shown) == len(pairs)


def test_evaluate_confused_sets_how_many_pairs(cli, run_copy):
    result = cli("evaluate", run_copy, "--confused", 2)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert len([line for line in result.stdout.splitlines() if " ↔ " in line]) == 2
    result = cli("evaluate", run_copy, "--confused", 0)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "most-confused pairs" not in result.stdout
    assert "weighted F1" in result.stdout


def test_evaluate_refuses_a_negative_confused_count(cli, run_copy):
    """--confused -1 is not a number of pairs; today it lists every pair but the last (pairs[:-1])."""
    result = cli("evaluate", run_copy, "--confused", -1)
    assert result.exit_code == 2, result.stdout
    assert "most-confused pairs" not in result.stdout


def test_evaluate_per_class_prints_every_class(cli, run_copy):
    result = cli("evaluate", run_copy, "--per-class")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "per class (test)" in result.stdout
    labels, predicted = predictions(run_copy)
    precision, recall, f1, support = skm.precision_recall_fscore_support(labels, predicted, labels=np.arange(10),
                                                                         zero_division=0)
    for c in range(10):
        assert table_row(result.stdout, str(c)) == [str(c), f"{support[c]:,}", f"{precision[c]:.3f}",
                                                    f"{recall[c]:.3f}", f"{f1[c]:.3f}"]
    assert sum(support) == 360


def test_evaluate_on_other_data_prints_no_analysis(cli, run_copy, tmp_path):
    noise_folder(tmp_path / "noise")
    result = cli("evaluate", run_copy, "--data", f"folder:{tmp_path / 'noise'}", "--per-class")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "weighted F1" not in result.stdout and "per class" not in result.stdout


def test_evaluate_naming_the_runs_own_data_still_prints_the_analysis(cli, run_copy):
    """`--data digits` on a digits run is the run's own data (evaluate_run rewrites predictions.npz), so
    the help's 'on the run's own data also weighted F1, ... and --per-class' applies."""
    result = cli("evaluate", run_copy, "--data", "digits", "--per-class")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert not list(run_copy.glob("predictions-*.npz"))  # it was treated as the run's own data
    assert "weighted F1" in result.stdout
    assert "per class (test)" in result.stdout


# ---- compare: runs ---------------------------------------------------------------------------------------


def wilson_line(run: Path, split: str = "test") -> str:
    labels, predicted = predictions(run, split)
    k, n = int((labels == predicted).sum()), len(labels)
    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    return f"{run}: {split} accuracy {k / n:.2%} (95 % Wilson interval {low:.2%}–{high:.2%})\n"


def counts(a: Path, b: Path, split: str = "test") -> tuple[int, int]:
    labels, pa = predictions(a, split)
    _, pb = predictions(b, split)
    right_a, right_b = pa == labels, pb == labels
    return int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())


def test_compare_two_runs(cli, runs):
    good, weak = runs["good"], runs["weak"]
    result = cli("compare", good, weak, "--resamples", 1000)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert result.stderr == ""
    assert wilson_line(good) in result.stdout and wilson_line(weak) in result.stdout
    only_a, only_b = counts(good, weak)
    p = stats.chi2.sf((abs(only_a - only_b) - 1) ** 2 / (only_a + only_b), 1)
    sentence = next(line for line in result.stdout.splitlines() if line.startswith(f"{good} vs {weak}: "))
    assert sentence.endswith(f"p = {p:.3g}, significant at 0.05.")
    assert "points of accuracy" in sentence and "95 % CI" in sentence
    assert (f"  only the first right on {only_a:,} images, only the second on {only_b:,} (chi-square McNemar)\n"
            in result.stdout)


def test_compare_a_run_with_its_copy_is_not_significant(cli, runs, tmp_path):
    copy = shutil.copytree(runs["good"], tmp_path / "copy")
    result = cli("compare", runs["good"], copy, "--resamples", 200)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "+0.00 points of accuracy" in result.stdout
    assert "p = 1, not significant at 0.05." in result.stdout
    assert "  only the first right on 0 images, only the second on 0 (exact binomial McNemar)\n" in result.stdout


def test_compare_alpha_and_split(cli, runs):
    good, weak = runs["good"], runs["weak"]
    result = cli("compare", good, weak, "--alpha", "1e-300", "--split", "val", "--resamples", 200)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert wilson_line(good, "val") in result.stdout
    assert "not significant at 1e-300." in result.stdout
    only_a, only_b = counts(good, weak, "val")
    assert f"only the first right on {only_a:,} images, only the second on {only_b:,}" in result.stdout


def test_compare_three_runs_is_holm_adjusted(cli, runs):
    paths = [runs["good"], runs["weak"], runs["good_seed1"]]
    result = cli("compare", *paths, "--resamples", 200)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    for path in paths:
        assert wilson_line(path) in result.stdout
    sentences = [line for line in result.stdout.splitlines() if " vs " in line]
    assert [s.split(": ")[0] for s in sentences] == [f"{paths[0]} vs {paths[1]}", f"{paths[0]} vs {paths[2]}",
                                                     f"{paths[1]} vs {paths[2]}"]
    assert all("(Holm-adjusted)" in s for s in sentences)
    assert result.stdout.count("McNemar)") == 3


# ---- compare: folders of seeds ------------------------------------------------------------------------------


def test_compare_two_folders_of_seeds(cli, runs):
    base, sgd = runs["base"], runs["sgd"]
    result = cli("compare", base, sgd)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "Wilson" not in result.stdout and "McNemar" not in result.stdout
    acc = {}
    for folder in (base, sgd):
        for file in folder.glob("*/summary.json"):
            s = json.loads(file.read_text())
            acc[folder, s["seed"]] = s["test"]["accuracy"]
    x, y = [acc[base, s] for s in range(3)], [acc[sgd, s] for s in range(3)]
    p = stats.ttest_rel(x, y).pvalue
    verdict = "significant" if p < 0.05 else "not significant"
    lines = result.stdout.splitlines()
    assert lines[0] == (f"{base} vs {sgd}: {(np.mean(x) - np.mean(y)) * 100:+.2f} points of accuracy "
                        f"({np.mean(x):.2%} vs {np.mean(y):.2%}); p = {p:.3g}, {verdict} at 0.05.")
    assert lines[1] == f"  paired over seeds [0, 1, 2]; Wilcoxon p = {stats.wilcoxon(x, y).pvalue:.3g}"
    assert "  note: Wilcoxon cannot reach p < 0.05 with 3 seeds (needs ≥ 6)" in lines


def test_compare_folders_sharing_some_seeds(cli, runs, tmp_path):
    partial = tmp_path / "partial"
    for seed in (1, 2):
        run = next(runs["base"].glob(f"seed={seed}-*"))
        shutil.copytree(run, partial / run.name)
    result = cli("compare", partial, runs["sgd"])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "  paired over seeds [1, 2]; Wilcoxon p = " in result.stdout
    assert "  note: paired on the 2 seeds both have\n" in result.stdout


# ---- compare: errors ------------------------------------------------------------------------------------


def test_compare_a_single_path_is_an_error(cli, runs):
    assert_one_line_error(cli("compare", runs["good"]), "at least two")


def test_compare_a_path_without_runs_is_an_error(cli, runs, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(cli("compare", runs["base"], empty), str(empty), "no finished run folders")
    assert_one_line_error(cli("compare", tmp_path / "missing", runs["sgd"]), "no finished run folders")


def test_compare_a_run_with_a_folder_of_seeds_is_an_error(cli, runs):
    assert_one_line_error(cli("compare", runs["good"], runs["base"]), "not a mix")


def test_compare_runs_on_different_images_is_an_error(cli, runs):
    assert_one_line_error(cli("compare", runs["good"], runs["carved"], "--resamples", 100), "different test images",
                          str(runs["carved"]))


def test_compare_folders_without_a_shared_seed_is_an_error(cli, runs, tmp_path):
    lone = tmp_path / "lone"
    shutil.copytree(runs["good_seed1"], lone / "run")  # seed 1
    zero = tmp_path / "zero"
    shutil.copytree(runs["good"], zero / "run")  # seed 0
    assert_one_line_error(cli("compare", zero, lone), "share no seed")
