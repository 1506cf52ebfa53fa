"""`cnnlab quickstart`, the README's main command, for real: it explores a dataset and runs a
three-model, three-seed study (1-2 minutes on two CPU cores; `-m "not quickstart"` leaves it out)."""

from __future__ import annotations

import json

import pytest
from cli_helpers import assert_png

from cnnlab.data import DATASETS


@pytest.mark.quickstart
def test_quickstart_explores_and_runs_a_three_model_three_seed_study(cli, tmp_path):
    """The README's main command, for real (about a minute): figures, a finished study, its table."""
    import csv

    name = "fashion-mnist" if DATASETS.get("fashion-mnist").source.present() else "digits"
    result = cli("quickstart", "-o", tmp_path / "qs")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert result.stdout.startswith(f"{name}: 10 classes")
    assert "imbalance (train)" in result.stdout
    assert_png(tmp_path / "qs" / f"{name}-grid.png")
    assert_png(tmp_path / "qs" / f"{name}-hist.png")
    rows = [r for r in csv.DictReader((tmp_path / "qs" / "results.csv").open()) if r["factor"] != "base"]
    assert [(r["value"], r["seed"]) for r in rows] == [
        (model, str(seed)) for seed in range(3)
        for model in ("lenet5", "lenet5-activation_relu-pool_max", "rescnn-widths_8-16-32")]
    for row in rows:
        assert row["status"] == "finished" and row["factor"] == "model"
        summary = json.loads((tmp_path / "qs" / "study" / row["cell"] / "summary.json").read_text())
        assert summary["test"]["accuracy"] == pytest.approx(float(row["test_accuracy"]))
        assert float(row["test_accuracy"]) > 0.6  # ten classes: chance is 0.1
    assert "mean ± 95 % CI over seeds" in result.stdout and result.stdout.count("★") == 2  # legend, best row
    assert "best by validation" in result.stdout or "the base value is the best" in result.stdout
    assert "Wilcoxon cannot reach p < 0.05 with 3 seeds" in result.stdout
    assert "epoch 1/" in result.stderr and "[9/9]" in result.stderr  # progress on stderr, the table on stdout
    report = (tmp_path / "qs" / "report" / "report.html").read_text()
    assert "report:" in result.stdout and report.count("data:image/png;base64,") == 6
    again = cli("quickstart", "-o", tmp_path / "qs")  # finished cells are kept: nothing trains again
    assert again.exit_code == 0 and "epoch 1/" not in again.stderr and "9 finished, 0 failed, 0 to run" in again.stderr
