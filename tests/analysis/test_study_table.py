"""A study's results and tables (analysis/study_table.py) on a real tiny study: LeNet-5 on
scikit-learn's digits, one epoch, three seeds, built once for the module (about 10 s on 2 cores).
Every number a table shows is checked against the cells' own summary.json files."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil

import pytest
import torch
from scipy import stats

from cnnlab.analysis.study_table import (
    COLUMNS,
    TABLE_FORMATS,
    _latex_escape,
    collect_results,
    formatted_row,
    headings,
    render_tables,
    study_tables,
    to_csv,
    to_latex,
    to_markdown,
)
from cnnlab.errors import ConfigError, UnknownNameError
from cnnlab.experiments.study import open_study, run_study, write_manifest

HEADINGS = headings()  # the columns every study has

SEEDS = 3
# lr 1e-4 learns almost nothing in one epoch, lr 0.01 a lot: the lr factor has a clear winner.
# adam is the default optimizer and 64 the base's batch size: both are the base cells.
STUDY = {
    "name": "table-study",
    "base": {"data": "digits", "model": "lenet5", "train": {"epochs": 1, "batch_size": 64, "lr": 1e-4, "threads": 1}},
    "ablate": {"train.lr": [0.01, 0.003], "train.optimizer": ["adam", "sgd"]},
    "grid": {"train.batch_size": [64, 128]},
    "seeds": SEEDS,
}
FACTOR_VALUES = {"train.lr": ["0.01", "0.003"], "train.optimizer": ["adam", "sgd"],
                 "grid": ["batch_size=64", "batch_size=128"]}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNNLAB_DATA", str(tmp_path_factory.mktemp("table-home")))
        patch.setenv("CNNLAB_OFFLINE", "1")
        run = run_study(STUDY, tmp_path_factory.mktemp("table") / "study", progress=False)
    torch.set_num_threads(threads)
    assert [o["status"] for o in run.outcomes] == ["finished"] * len(run.plan.cells)
    return run.folder.path


@pytest.fixture(scope="module")
def frame(study):
    return collect_results(study)


@pytest.fixture(scope="module")
def tables(study):
    return {t.factor: t for t in study_tables(study)}


def summary(study, cell: str) -> dict:
    return json.loads((study / cell / "summary.json").read_text())


def values_of(frame, factor: str, value: str, column: str = "test_accuracy") -> dict[int, float]:
    rows = frame[(frame["factor"] == factor) & (frame["value"] == value)]
    return dict(zip(rows["seed"], rows[column]))


def base_values(frame, column: str = "test_accuracy") -> dict[int, float]:
    return values_of(frame, "base", "base", column)


def row(table, value: str) -> dict:
    return next(r for r in table.rows if r["value"] == value)


# ---- the frame ----------------------------------------------------------------------------------------


def test_one_row_per_factor_value_and_seed(frame):
    expected = [("base", "base")] + [(f, v) for f, values in FACTOR_VALUES.items() for v in values]
    assert len(frame) == SEEDS * len(expected)
    assert not frame.duplicated(["factor", "value", "seed"]).any()
    assert set(zip(frame["factor"], frame["value"])) == set(expected)
    for factor, value in expected:
        assert sorted(values_of(frame, factor, value)) == list(range(SEEDS))
    assert set(frame["status"]) == {"finished"}


def test_the_frame_holds_each_cells_real_metrics(study, frame):
    for record in frame.itertuples():
        saved = summary(study, record.cell)
        assert saved["status"] == "finished"
        for split in ("val", "test"):
            for metric, value in saved[split].items():
                assert getattr(record, f"{split}_{metric}") == value
        assert record.params == saved["params"] == 21386  # LeNet-5 on 8x8 digits
        assert record.train_seconds == saved["train_seconds"] > 0
        assert 0.0 <= record.test_accuracy <= 1.0 and 0.0 <= record.val_accuracy <= 1.0
        assert record.test_loss > 0 and record.epochs_run == 1
        assert record.error is None


def test_values_equal_to_the_base_are_the_base_cells(frame):
    base = frame[frame["factor"] == "base"].set_index("seed")
    for factor, value in (("train.optimizer", "adam"), ("grid", "batch_size=64")):
        listed = frame[(frame["factor"] == factor) & (frame["value"] == value)].set_index("seed")
        assert (listed["cell"] == base["cell"]).all()
        assert (listed["test_accuracy"] == base["test_accuracy"]).all()
    others = frame[(frame["factor"] != "base") & ~frame["cell"].isin(base["cell"])]
    assert len(set(others["cell"])) == SEEDS * 4  # lr 0.01, lr 0.003, sgd, batch_size=128


def test_the_training_was_real(frame):
    """A good learning rate beats a tiny one by far after one epoch: the cells trained."""
    good, base = values_of(frame, "train.lr", "0.01"), base_values(frame)
    assert sum(good.values()) / SEEDS > sum(base.values()) / SEEDS + 0.2
    assert len(set(base.values())) > 1 or len(set(good.values())) > 1  # seeds differ


# ---- the tables ---------------------------------------------------------------------------------------


def test_one_table_per_factor_in_study_order(study):
    assert [t.factor for t in study_tables(study)] == ["train.lr", "train.optimizer", "grid"]


def test_rows_and_the_base(tables):
    assert [r["value"] for r in tables["train.lr"].rows] == ["base", "0.01", "0.003"]
    # a value equal to the base stands for it: "<value> (base)", and no separate base row
    assert [r["value"] for r in tables["train.optimizer"].rows] == ["adam (base)", "sgd"]
    assert [r["value"] for r in tables["grid"].rows] == ["batch_size=64 (base)", "batch_size=128"]
    for table in tables.values():
        assert [r["is_base"] for r in table.rows].count(True) == 1
        assert all(r["n"] == SEEDS for r in table.rows)


def test_exactly_one_best_row_per_factor_by_mean_validation_accuracy(tables, frame):
    for factor, table in tables.items():
        assert sum(r["best"] for r in table.rows) == 1
        best = next(r for r in table.rows if r["best"])
        assert table.best == best["value"]
        means = {}
        for r in table.rows:
            value = r["value"].removesuffix(" (base)")
            cells = base_values(frame, "val_accuracy") if r["is_base"] else values_of(frame, factor, value,
                                                                                     "val_accuracy")
            means[r["value"]] = sum(cells.values()) / len(cells)
        assert means[best["value"]] == max(means.values())
    assert tables["train.lr"].best == "0.01"


def test_means_and_intervals_are_over_the_seeds(tables, frame):
    t_factor = stats.t.ppf(0.975, SEEDS - 1)
    for factor, value, label in (("train.lr", "0.01", "0.01"), ("base", "base", "base"),
                                 ("train.optimizer", "sgd", "sgd")):
        table = tables["train.lr" if factor == "base" else factor]
        for column, *_ in COLUMNS:
            values = list(values_of(frame, factor, value, column).values())
            mean = sum(values) / len(values)
            sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
            ci = row(table, label)[column]
            assert ci.n == SEEDS
            assert ci.mean == pytest.approx(mean)
            assert ci.half_width == pytest.approx(t_factor * sd / math.sqrt(SEEDS), abs=1e-12)


def test_delta_and_p_are_paired_over_seeds_against_the_base(tables, frame):
    base = base_values(frame)
    for factor, value in (("train.lr", "0.01"), ("train.lr", "0.003"), ("train.optimizer", "sgd"),
                          ("grid", "batch_size=128")):
        cells = values_of(frame, factor, value)
        a, b = [cells[s] for s in range(SEEDS)], [base[s] for s in range(SEEDS)]
        r = row(tables[factor], value)
        assert r["delta"] == pytest.approx(sum(x - y for x, y in zip(a, b)) / SEEDS)
        differences = [x - y for x, y in zip(a, b)]
        if len({round(d, 12) for d in differences}) > 1:
            assert r["p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
        assert 0.0 <= r["p"] <= 1.0
    for table in tables.values():
        base_row = next(r for r in table.rows if r["is_base"])
        assert math.isnan(base_row["delta"]) and math.isnan(base_row["p"]) and math.isnan(base_row["p_holm"])


def test_holm_within_each_factor(tables):
    for table in tables.values():
        tested = [r for r in table.rows if math.isfinite(r["p"])]
        assert all(r["p_holm"] >= r["p"] - 1e-15 for r in tested)
        assert all(r["p_holm"] <= 1.0 for r in tested)
    # two tests in train.lr: the smaller p doubles, the larger is at least that (Holm by hand)
    lo, hi = sorted((r for r in tables["train.lr"].rows if not r["is_base"]), key=lambda r: r["p"])
    assert lo["p_holm"] == pytest.approx(min(1.0, 2 * lo["p"]))
    assert hi["p_holm"] == pytest.approx(max(lo["p_holm"], hi["p"]))
    # one test in train.optimizer: nothing to correct
    (sgd,) = [r for r in tables["train.optimizer"].rows if not r["is_base"]]
    assert sgd["p_holm"] == pytest.approx(sgd["p"])


def test_the_verdict(tables):
    for table in tables.values():
        best = next(r for r in table.rows if r["best"])
        if best["is_base"]:
            assert table.verdict == f"the base value is the best of {table.factor} by validation accuracy"
        else:
            assert table.verdict.startswith(f"best by validation: {best['value']}; ")
            assert "significant" in table.verdict or f"{SEEDS} seed" in table.verdict
            assert f"{best['delta'] * 100:+.2f} points" in table.verdict
    lr = tables["train.lr"].verdict
    assert "paired t p = " in lr and "Holm" in lr
    assert lr.endswith("significant at 0.05")
    significant = row(tables["train.lr"], "0.01")["p_holm"] < 0.05
    assert (": significant" in lr) == significant


def test_the_verdict_follows_alpha(study):
    (lr, *_) = study_tables(study, alpha=1e-300)
    assert lr.verdict.endswith(": not significant at 1e-300")


def test_notes_say_wilcoxon_cannot_reach_significance_with_three_seeds(tables):
    for table in tables.values():
        assert table.notes == [f"Wilcoxon cannot reach p < 0.05 with {SEEDS} seeds (needs ≥ 6)"]


# ---- formats ------------------------------------------------------------------------------------------


def test_formatted_row(tables):
    r = row(tables["train.lr"], "0.01")
    cells = formatted_row(r)
    assert len(cells) == len(HEADINGS)
    assert cells[0] == "★ 0.01" and cells[1] == str(SEEDS)
    assert cells[HEADINGS.index("test acc %")] == f"{r['test_accuracy'].mean * 100:.2f} ± " \
                                                   f"{r['test_accuracy'].half_width * 100:.2f}"
    assert cells[HEADINGS.index("params")] == "21,386"
    assert cells[HEADINGS.index("Δ test acc")] == f"{r['delta'] * 100:+.2f}"
    assert cells[HEADINGS.index("p (Holm)")] == f"{r['p_holm']:.3g}"
    base = formatted_row(row(tables["train.lr"], "base"), sep="±")
    assert base[0] == "base" and base[-2:] == ["", ""]
    assert "±" in base[HEADINGS.index("test loss")] and " ± " not in base[HEADINGS.index("test loss")]


def test_markdown(tables):
    text = to_markdown(list(tables.values()))
    for factor, table in tables.items():
        assert f"### {factor}\n" in text
        assert table.verdict + "." in text
    header = "| " + " | ".join(HEADINGS) + " |"
    assert text.count(header) == 3
    lines = [line for line in text.splitlines() if line.startswith("| ") and line != header]
    assert len(lines) == sum(len(t.rows) for t in tables.values())
    assert all(line.count(" | ") == len(HEADINGS) - 1 for line in lines)
    assert sum("★" in line for line in lines) == 3
    assert "| adam (base) |" in text or "| ★ adam (base) |" in text
    assert "Note: Wilcoxon cannot reach p < 0.05 with 3 seeds (needs ≥ 6)." in text


def test_csv_round_trips_the_numbers(tables):
    ordered = list(tables.values())
    reader = csv.DictReader(io.StringIO(to_csv(ordered)))
    assert reader.fieldnames[:4] == ["factor", "value", "seeds", "best"]
    assert reader.fieldnames[-3:] == ["delta_test_accuracy", "p", "p_holm"]
    records = list(reader)
    expected = [(t.factor, r) for t in ordered for r in t.rows]
    assert len(records) == len(expected)
    for record, (factor, r) in zip(records, expected):
        assert (record["factor"], record["value"], int(record["seeds"])) == (factor, r["value"], r["n"])
        assert record["best"] == str(r["best"])
        for column, *_ in COLUMNS:
            assert float(record[f"{column}_mean"]) == r[column].mean  # exactly: repr round-trips
            assert float(record[f"{column}_ci95"]) == r[column].half_width
        for key, name in (("delta", "delta_test_accuracy"), ("p", "p"), ("p_holm", "p_holm")):
            value = float(record[name])
            assert value == r[key] or (math.isnan(value) and math.isnan(r[key]))


def test_latex(tables):
    text = to_latex(list(tables.values()))
    assert text.count(r"\begin{tabular}") == text.count(r"\end{tabular}") == 3
    for line in text.splitlines():
        if line.startswith("%"):  # a comment: the factor and its verdict
            continue
        assert re.search(r"(?<!\\)[%_#&]", line.replace(" & ", "  ")) is None, line
        assert "±" not in line and "★" not in line and "Δ" not in line
    assert r"test acc \% & macro-F1 \%" in text
    assert r"$\Delta$ test acc" in text
    assert r"$\pm$" in text and r"$\star$ 0.01" in text
    assert r"batch\_size=128" in text and r"batch\_size=64 (base)" in text
    body = [line for line in text.splitlines() if line.endswith(r" \\")]
    assert len(body) == 3 + sum(len(t.rows) for t in tables.values())  # a heading per table, then the rows
    assert all(line.count(" & ") == len(HEADINGS) - 1 for line in body)
    assert "% train.lr: " + tables["train.lr"].verdict in text


def test_render_tables_in_each_registered_format(tables):
    ordered = list(tables.values())
    assert TABLE_FORMATS.names() == ["csv", "latex", "markdown"]
    assert render_tables(ordered, "markdown") == to_markdown(ordered)
    assert render_tables(ordered, "csv") == to_csv(ordered)
    assert render_tables(ordered, "latex") == to_latex(ordered)
    assert render_tables(ordered) == to_markdown(ordered)


def test_render_tables_names_the_formats_for_an_unknown_one(tables):
    with pytest.raises(UnknownNameError) as caught:
        render_tables(list(tables.values()), "html")
    assert str(caught.value) == "unknown table format (--format) 'html': known: csv, latex, markdown"
    with pytest.raises(UnknownNameError, match="did you mean 'latex'"):
        render_tables(list(tables.values()), "latx")
    with pytest.raises(ConfigError, match="must be one of csv, latex, markdown. Got None instead"):
        render_tables(list(tables.values()), None)


def test_study_tables_refuses_a_bad_alpha_in_the_one_template(study):
    with pytest.raises(ConfigError) as caught:
        study_tables(study, alpha=1.5)
    assert str(caught.value) == ("The '--alpha' parameter of study_tables must be a significance level between 0 "
                                 "and 1 (e.g. 0.05). Got 1.5 instead.")


def test_latex_escape():
    assert _latex_escape("a_b 5% #1 & c\\d") == r"a\_b 5\% \#1 \& c\textbackslash{}d"
    assert _latex_escape("★ 1.0 ± 0.2") == r"$\star$ 1.0 $\pm$ 0.2"


# ---- studies that are not done, and a changed study file -----------------------------------------------


def test_a_study_nothing_has_run_of(tmp_path):
    run = open_study({**STUDY, "name": "pending", "seeds": 2}, tmp_path / "pending")
    write_manifest(run)
    frame = collect_results(tmp_path / "pending")
    assert len(frame) == 2 * 7 and set(frame["status"]) == {"pending"}
    assert frame["test_accuracy"].isna().all()
    tables = study_tables(tmp_path / "pending")
    assert [t.factor for t in tables] == ["train.lr", "train.optimizer", "grid"]
    for table in tables:
        assert table.best is None and table.verdict == "no finished cells yet"
        assert all(r["n"] == 0 and not r["best"] for r in table.rows)
    markdown = to_markdown(tables)
    assert "| base | 0 | — | — |" in markdown
    assert to_csv(tables).count("\n") == 1 + sum(len(t.rows) for t in tables)
    assert to_latex(tables).count(r"\begin{tabular}") == 3


def test_a_base_only_version_of_the_study_reuses_its_finished_cells(study, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(study, copy)
    before = {p: p.stat().st_mtime_ns for p in copy.rglob("summary.json")}
    run = run_study({k: v for k, v in STUDY.items() if k not in ("ablate", "grid")}, copy, progress=False)
    assert run.outcomes == []  # the base cells are finished: nothing runs
    assert {p: p.stat().st_mtime_ns for p in copy.rglob("summary.json")} == before
    (table,) = study_tables(copy)
    assert table.factor == "base" and table.verdict == "the base configuration alone"
    (only,) = table.rows
    assert only["value"] == "base" and only["n"] == SEEDS and only["best"]
    assert len(collect_results(copy)) == SEEDS  # the ablation cells left the tables, not the folder
