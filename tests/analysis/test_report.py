"""The report: files, tables and figures written, and the HTML opened in headless Chromium with
every embedded figure decoded."""

from __future__ import annotations

import os
import re

import pytest
from report_helpers import chromium_dom

from cnnlab.analysis.report import write_report
from cnnlab.errors import DataError


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from cnnlab.experiments.study import run_study

    out = tmp_path_factory.mktemp("report") / "study"
    os.environ.setdefault("CNNLAB_OFFLINE", "1")
    run_study({"name": "rep", "base": {"data": "digits", "model": "lenet5", "train": {"epochs": 2, "threads": 1}},
               "ablate": {"train.optimizer": ["sgd"]}, "seeds": 2}, out, progress=False)
    return out


def test_a_study_report_renders_in_chromium_with_every_figure(study, tmp_path):
    written = write_report([study], tmp_path / "report", "digits study")
    out = tmp_path / "report"
    # the data's class histogram; per factor: bars and curves; the best cell: confusion, per-class, gallery
    assert written["figures"] == 6
    for stem in ("rep-train.optimizer-bars", "rep-train.optimizer-curves"):
        assert (out / "figures" / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / "figures" / f"{stem}.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
    for table in ("rep.tex", "rep.md", "rep-cells.csv", "rep-train.optimizer.csv"):
        assert (out / "tables" / table).stat().st_size > 0
    markdown = written["markdown"].read_text()
    assert markdown.startswith("# digits study") and "| value | seeds |" in markdown
    assert len(re.findall(r"!\[[^]]*\]\(figures/[^)]+\.png\)", markdown)) == 6
    assert "latency ms (batch 1)" in markdown and "## Data: digits" in markdown
    page = written["html"].read_text()
    assert page.count("data:image/png;base64,") == 6 and "src=\"figures/" not in page  # self-contained
    body = re.search(r"<body[^>]*>", chromium_dom(written["html"])).group(0)
    assert 'data-figures="6"' in body and 'data-figures-rendered="6"' in body
    [counts] = (out / "tables").glob("*-confusion-counts.csv")
    rows = counts.read_text().splitlines()
    assert len(rows) == 11 and sum(int(v) for row in rows[1:] for v in row.split(",")[1:]) == 360  # digits' test


def test_a_run_report_and_bad_sources(study, tmp_path):
    runs = sorted(p.parent for p in study.glob("*/*/summary.json"))[:2]
    written = write_report(runs, tmp_path / "runs")
    assert "not on this machine" not in written["markdown"].read_text(), written["markdown"].read_text()[-3000:]
    assert written["figures"] == 2 + 3 * 2  # data, overlaid curves; per run: confusion, per-class, gallery
    html = written["html"].read_text()
    assert "most-confused" not in html or "↔" in html
    with pytest.raises(DataError, match="neither a study folder"):
        write_report([tmp_path], tmp_path / "bad")
