"""Transfer runs in the study table and the report, on a real tiny transfer study: ImageNet-pretrained
EfficientNet-Lite0 on 300 images of the real CIFAR-10 subset, frozen against fully fine-tuned, one
epoch, two seeds (about 15 s on 2 cores, built once for the module)."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from report_helpers import chromium_dom

from cnnlab.analysis.plots import save_figure, trainable_bars
from cnnlab.analysis.report import write_report
from cnnlab.analysis.study_table import formatted_row, headings, shows_trainable, study_tables
from cnnlab.runfolder import RunFolder

HEADINGS = headings()  # the columns every study has

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEAD = 1280 * 10 + 10  # a linear head on EfficientNet-Lite0's 1280 pooled features, 10 classes
STUDY = {
    "name": "tiny-transfer",
    # test images carved from the training batch: 200 of them, not the official 10,000, keep evaluation short
    "base": {"data": {"name": "cifar10", "carve_from": "train", "test": 200, "val": 100, "subset": 300},
             "model": {"name": "efficientnet_lite0", "pretrained": True, "target_size": 32, "head": "linear",
                       "finetune": "frozen"},
             "train": {"epochs": 1, "batch_size": 64, "threads": 1}},
    "ablate": {"model.finetune": ["frozen", "all"]},
    "seeds": 2,
}
_BUILT: dict[Path, tuple[Path, Path]] = {}


@pytest.fixture
def transfer_study(shared_data, tmp_path_factory, monkeypatch) -> Path:
    """The finished study (built on first use), with this test's data home set to the one holding CIFAR-10."""
    from cnnlab.data import add_local
    from realdata import need

    archive = need(shared_data / "cifar10" / "cifar-10-python-subset.tar.gz")
    if archive not in _BUILT:
        from cnnlab.experiments.study import run_study

        home = tmp_path_factory.mktemp("transfer-home")
        monkeypatch.setenv("CNNLAB_DATA", str(home))
        add_local("cifar10", archive)
        run = run_study(STUDY, tmp_path_factory.mktemp("transfer") / "study", progress=False)
        assert [o["status"] for o in run.outcomes] == ["finished"] * 4, run.outcomes
        _BUILT[archive] = (run.folder.path, home)
    study, home = _BUILT[archive]
    monkeypatch.setenv("CNNLAB_DATA", str(home))
    return study


def cells(study: Path, mode: str) -> list[Path]:
    """The study's finished runs whose model.finetune is `mode`, by folder name."""
    return sorted(p.parent for p in study.glob("*/*/summary.json")
                  if RunFolder(p.parent).read_config()["model"]["finetune"] == mode)


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


@pytest.mark.realdata
def test_each_cell_counts_its_trainable_and_frozen_parameters(transfer_study):
    frozen, tuned = cells(transfer_study, "frozen"), cells(transfer_study, "all")
    assert len(frozen) == len(tuned) == 2
    for run in frozen + tuned:
        s = summary(run)
        assert s["trainable_params"] + s["frozen_params"] == s["params"]
    assert {summary(r)["trainable_params"] for r in frozen} == {HEAD}  # only the head trains
    assert {summary(r)["frozen_params"] for r in tuned} == {0}
    import timm

    backbone = sum(p.numel() for p in timm.create_model("efficientnet_lite0", num_classes=0).parameters())
    assert {summary(r)["frozen_params"] for r in frozen} == {backbone}  # by hand: timm's, without its classifier
    total = summary(tuned[0])["params"]
    assert total == backbone + HEAD and {summary(r)["trainable_params"] for r in tuned} == {total}
    assert all(summary(r)["features"][0]["split"] == "train" for r in frozen)  # the head trained on features


@pytest.mark.realdata
def test_the_study_table_has_a_trainable_column(transfer_study, cli):
    tables = study_tables(transfer_study)
    [table] = tables
    assert table.factor == "model.finetune" and shows_trainable(tables)
    rows = {r["value"]: r for r in table.rows}
    assert set(rows) == {"frozen (base)", "all"}
    total = summary(cells(transfer_study, "all")[0])["params"]
    heads = headings(trainable=True)
    column = heads.index("trainable")
    assert heads[column - 1] == "params" and heads == [*HEADINGS[:column], "trainable", *HEADINGS[column:]]
    assert formatted_row(rows["frozen (base)"], trainable=True)[column - 1:column + 1] == [f"{total:,}", f"{HEAD:,}"]
    assert formatted_row(rows["all"], trainable=True)[column - 1:column + 1] == [f"{total:,}", f"{total:,}"]
    assert len(formatted_row(rows["all"])) == len(HEADINGS)  # without it, the columns every study has
    markdown = cli("study", "table", transfer_study, "--format", "markdown")
    assert markdown.exit_code == 0, markdown.stderr
    assert "| params | trainable | val acc % |" in markdown.stdout
    assert f"| {total:,} | {HEAD:,} |" in markdown.stdout and f"| {total:,} | {total:,} |" in markdown.stdout
    records = {r["value"]: r for r in csv.DictReader(io.StringIO(
        cli("study", "table", transfer_study, "--format", "csv").stdout))}
    assert float(records["frozen (base)"]["trainable_params_mean"]) == HEAD
    assert float(records["all"]["trainable_params_mean"]) == total
    latex = cli("study", "table", transfer_study, "--format", "latex").stdout
    assert "params & trainable & val acc" in latex and f"{total:,} & {HEAD:,} &" in latex
    text = cli("study", "table", transfer_study)
    assert text.exit_code == 0 and f"{total:,}" in text.stdout  # the parameters, in the printed table too


@pytest.mark.realdata
def test_the_study_report_has_the_transfer_section(transfer_study, tmp_path):
    written = write_report([transfer_study], tmp_path / "report")
    out = tmp_path / "report"
    markdown = written["markdown"].read_text()
    section = markdown[markdown.index("### Transfer: frozen and fine-tuned"):markdown.index("Best cell by")]
    total = summary(cells(transfer_study, "all")[0])["params"]
    assert "| value | finetune | seeds | params | trainable | frozen | val acc % | test acc % | features s | " \
           "train s |" in section
    frozen_row = next(line for line in section.splitlines() if line.startswith("| frozen (base) |"))
    assert frozen_row.startswith(f"| frozen (base) | frozen | 2 | {total:,} | {HEAD:,} | {total - HEAD:,} | ")
    assert re.search(r"\| \d+\.\d\d ± \d+\.\d\d \| \d+\.\d\d ± \d+\.\d\d \| \d+\.\d \| ", frozen_row)  # CIs
    tuned_row = next(line for line in section.splitlines() if line.startswith("| all |"))
    assert tuned_row.startswith(f"| all | all | 2 | {total:,} | {total:,} | 0 | ") and "| — |" in tuned_row
    for stem in ("tiny-transfer-transfer-curves", "tiny-transfer-transfer-params"):
        assert f"](figures/{stem}.png)" in section
        assert (out / "figures" / f"{stem}.png").read_bytes()[:8] == PNG_SIGNATURE
        assert (out / "figures" / f"{stem}.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
    svg = (out / "figures" / "tiny-transfer-transfer-params.svg").read_text()
    assert f"{HEAD:,} trainable" in svg and f"{total - HEAD:,} frozen" in svg
    table = list(csv.reader((out / "tables" / "tiny-transfer-transfer.csv").open()))
    assert [row[0] for row in table] == ["value", "frozen (base)", "all"]
    # data, the factor's bars and curves, the transfer curves and shares, the best cell's three
    assert written["figures"] == 8 == written["html"].read_text().count("data:image/png;base64,")
    body = re.search(r"<body[^>]*>", chromium_dom(written["html"])).group(0)
    assert 'data-figures="8"' in body and 'data-figures-rendered="8"' in body


@pytest.mark.realdata
def test_a_report_of_transfer_runs_compares_them(transfer_study, tmp_path):
    runs = [cells(transfer_study, "frozen")[0], cells(transfer_study, "all")[0]]
    written = write_report(runs, tmp_path / "runs")
    markdown = written["markdown"].read_text()
    section = markdown[markdown.index("## Transfer: frozen and fine-tuned"):markdown.index("### Run ")]
    assert f"| {runs[0].name} | frozen | 1 | " in section and f"| {runs[1].name} | all | 1 | " in section
    # the runs' learning curves are drawn once, overlaid above the section
    assert "runs-transfer-params.png" in section and "runs-transfer-curves" not in markdown
    assert written["figures"] == 1 + 1 + 1 + 3 * 2  # data, overlaid curves, shares; per run three


def test_trainable_bars_draw_labels_literally_and_say_when_empty(tmp_path):
    fig = trainable_bars({"frozen": (12_810, 3_371_008), "$x^$": (5, 0)})
    ax = fig.axes[0]
    shares = [round(p.get_width(), 3) for p in ax.patches]
    assert shares == [0.379, 100.0, 99.621, 0.0]  # trainable bars first, then the frozen ones
    # the '$' escaped for matplotlib, so it is drawn as written (the SVG holds it literally)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["frozen\n12,810 trainable, 3,371,008 frozen",
                                                            r"\$x^\$" + "\n5 trainable, 0 frozen"]
    png, svg = save_figure(fig, tmp_path / "shares")
    assert png.read_bytes()[:8] == PNG_SIGNATURE and "$x^$" in svg.read_text()
    empty = trainable_bars({})
    assert "no transfer runs" in [t.get_text() for t in empty.axes[0].texts]
