"""`cnnlab study run / status / table`, in-process with typer's CliRunner, on a real tiny study
(LeNet-5 on scikit-learn's digits, one epoch, two seeds: four cells, run once for the module)."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from cli_helpers import assert_one_line_error, table_row
from cli_helpers import invoke_cli as invoke
from run_helpers import snapshot
from study_helpers import write_study

from cnnlab.data import DATASETS
from cnnlab.studyfolder import StudyFolder

# adam is the default optimizer: 'adam' is the base cell, so base and sgd x 2 seeds = 4 cells, 6 table rows
STUDY = {
    "name": "cli-study",
    "base": {"data": "digits", "model": "lenet5", "train": {"epochs": 1, "batch_size": 64, "threads": 1}},
    "ablate": {"train.optimizer": ["adam", "sgd"]},
    "seeds": 2,
}
MANIFEST = "study.json"  # rewritten by every `study run`; the run files must stay as they are
TABLE_TITLE = "train.optimizer (mean ± 95 % CI over seeds; ★ best by validation accuracy)"


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """`study run FILE --out DIR -q` twice: the first runs the four cells, the second nothing."""
    threads = torch.get_num_threads()
    folder = tmp_path_factory.mktemp("cli-study")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNNLAB_DATA", str(tmp_path_factory.mktemp("cli-study-home")))
        patch.setenv("CNNLAB_OFFLINE", "1")
        study_file = write_study(folder, STUDY)
        out = folder / "out"
        first = invoke("study", "run", study_file, "--out", out, "-q")
        files = snapshot(out, MANIFEST)
        second = invoke("study", "run", study_file, "--out", out, "-q")
        files_after = snapshot(out, MANIFEST)
    torch.set_num_threads(threads)
    return SimpleNamespace(file=study_file, out=out, first=first, second=second, files=files,
                           files_after=files_after)


def cell_names(out: Path) -> list[str]:
    return [c.name for c in StudyFolder(out).cells()]


# ---- study run -----------------------------------------------------------------------------------------


def test_study_run_runs_every_cell_and_prints_the_tables(ran):
    result = ran.first
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    names = cell_names(ran.out)
    assert len(names) == 4
    for name in names:
        assert json.loads((ran.out / name / "summary.json").read_text())["status"] == "finished"
    # the tables on stdout: the factor's title, its two rows, the verdict and the note
    out = result.stdout
    assert TABLE_TITLE in out
    assert table_row(out, "sgd")[1] == "2"
    assert "adam" in out and "(base)" in out
    assert "21,386" in out  # LeNet-5's parameters on 8x8 digits
    assert re.search(r"^(the base value is the best of train\.optimizer|best by validation: sgd;).*\.$", out, re.M)
    assert "note: Wilcoxon cannot reach p < 0.05 with 2 seeds (needs ≥ 6)." in out
    # the progress on stderr: one line per cell, no per-epoch lines with -q
    err = result.stderr
    assert "study cli-study: 4 cells (6 table rows), 0 finished" in err and "4 to run" in err
    for i, name in enumerate(names, 1):
        assert re.search(rf"^\[{i}/4\] {re.escape(name)}: finished", err, re.M), err
    assert "epoch" not in err.lower()


def test_study_run_again_runs_nothing(ran):
    result = ran.second
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    err = result.stderr
    assert "study cli-study: 4 cells (6 table rows), 4 finished" in err, err
    # nothing is run: either no cell is listed, or each one says it was not run here
    for name in cell_names(ran.out):
        for line in err.splitlines():
            if name in line and re.match(r"^\[\d+/\d+\]", line):
                assert "not run here" in line or "finished" in line, line
    assert "0 to run" in err or err.count("not run here") == 4
    # every run file as it was: same bytes, same modification times
    assert ran.files_after == ran.files
    assert sum(name.endswith("summary.json") for name in ran.files) == 4
    # the same tables from the same files
    assert result.stdout == ran.first.stdout


def test_study_run_writes_a_manifest(ran):
    manifest = json.loads((ran.out / "study.json").read_text())
    assert manifest["name"] == "cli-study"
    assert manifest["source"] == str(ran.file.resolve())
    assert manifest["threads"] == 1
    assert len(manifest["cells"]) == 4 and len(manifest["rows"]) == 6
    assert {r["value"] for r in manifest["rows"]} == {"base", "adam", "sgd"}


def test_study_run_dry_run_lists_cells_and_an_estimate_and_runs_nothing(cli, tmp_path):
    study_file = write_study(tmp_path, STUDY)
    out = tmp_path / "dry"
    result = cli("study", "run", study_file, "--out", out, "--dry-run")
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert not out.exists()  # no manifest, no run folders
    stdout = result.stdout
    assert "study cli-study: 4 cells, 1 threads each" in stdout
    for seed in (0, 1):
        for folder in ("base", "optimizer=sgd"):
            match = re.search(rf"│ ({re.escape(folder)}/seed={seed}-[0-9a-f]{{8}}) +│", stdout)
            assert match, stdout
            cells = table_row(stdout, match[1])
            assert cells[1:4] == ["pending", "1,293", "21,386"]
            assert re.fullmatch(r"\d+ s|\d+ min", cells[4]), cells
    assert re.search(r"estimated time on this machine with 1 worker\(s\): \d+ (s|min) .*nothing was run", stdout)
    assert "not on this machine" not in stdout


def test_dry_run_of_a_finished_study_shows_its_states(ran, cli):
    result = cli("study", "run", ran.file, "--out", ran.out, "--dry-run")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    for name in cell_names(ran.out):
        assert table_row(result.stdout, name)[1] == "finished"
    assert snapshot(ran.out, MANIFEST) == ran.files


def test_dry_run_plans_a_study_whose_data_is_not_here(cli, tmp_path):
    if DATASETS.get("kmnist").source.present():
        pytest.skip("kmnist is on this machine")
    study = {"name": "kmnist-later", "base": {"data": "kmnist", "model": "lenet5",
                                              "train": {"epochs": 1, "threads": 1}}, "seeds": 1}
    result = cli("study", "run", write_study(tmp_path, study), "--out", tmp_path / "k", "--dry-run")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    (name,) = re.findall(r"base/seed=0-[0-9a-f]{8}", result.stdout)
    assert table_row(result.stdout, name)[2:4] == ["54,000", "61,706"]
    assert "data not on this machine yet: kmnist (cnnlab data download NAME)" in result.stdout
    assert not (tmp_path / "k").exists()


# ---- study status and table -------------------------------------------------------------------------------


def test_study_status(ran, cli):
    result = cli("study", "status", ran.out)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "study cli-study: 4 finished" in result.stdout
    for name in cell_names(ran.out):
        assert table_row(result.stdout, name)[1] == "finished"


def test_study_table_latex_to_a_file(ran, cli, tmp_path):
    target = tmp_path / "x.tex"
    result = cli("study", "table", ran.out, "--format", "latex", "-o", target)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert f"wrote {target}" in result.stdout.replace("\n", "")
    text = target.read_text()
    assert text.startswith("% train.optimizer: ")
    assert r"\begin{tabular}" in text and r"\end{tabular}" in text
    assert r"test acc \%" in text and r"$\pm$" in text
    assert re.search(r"^sgd & 2 & ", text, re.M) or re.search(r"^\$\\star\$ sgd & 2 & ", text, re.M)
    assert "adam (base) & 2 & " in text


def test_study_table_csv_and_markdown_on_stdout(ran, cli):
    result = cli("study", "table", ran.out, "--format", "csv")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    records = list(csv.DictReader(io.StringIO(result.stdout.strip() + "\n")))
    assert [(r["factor"], r["value"], r["seeds"]) for r in records] == [
        ("train.optimizer", "adam (base)", "2"), ("train.optimizer", "sgd", "2")]
    assert {r["params_mean"] for r in records} == {"21386.0"}
    assert sorted(r["best"] for r in records) == ["False", "True"]
    markdown = cli("study", "table", ran.out, "--format", "markdown")
    assert markdown.exit_code == 0
    assert "### train.optimizer" in markdown.stdout and "| adam (base) | 2 |" in markdown.stdout.replace("★ ", "")


def test_study_table_text_is_the_run_output(ran, cli):
    result = cli("study", "table", ran.out)
    assert result.exit_code == 0
    assert result.stdout == ran.first.stdout


# ---- errors: exit 2 and one line -----------------------------------------------------------------------


def test_unknown_executor(cli, tmp_path):
    result = cli("study", "run", write_study(tmp_path, STUDY), "--out", tmp_path / "o", "--executor", "slurm")
    assert_one_line_error(result, "'--executor' parameter of study run must be one of local, process, ray", "'slurm'")
    assert not (tmp_path / "o").exists()


def test_workers_need_another_executor(cli, tmp_path):
    result = cli("study", "run", write_study(tmp_path, STUDY), "--out", tmp_path / "o", "--workers", "2")
    assert_one_line_error(result, "--workers needs --executor process")
    assert not (tmp_path / "o").exists()


def test_workers_must_be_positive(cli, tmp_path):
    result = cli("study", "run", write_study(tmp_path, STUDY), "--out", tmp_path / "o", "--workers", "0",
                 "--executor", "process")
    assert_one_line_error(result, "'--workers' parameter of study run must be at least 1")


def test_status_of_a_folder_that_is_no_study(cli, tmp_path):
    result = cli("study", "status", tmp_path)
    assert_one_line_error(result, f"{tmp_path} is not a study folder (no study.json)", "cnnlab study run")


def test_table_of_a_folder_that_is_no_study(cli, tmp_path):
    assert_one_line_error(cli("study", "table", tmp_path, "--format", "csv"), "is not a study folder")


def test_a_bad_study_file_key(cli, tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("base: {data: digits, model: lenet5}\nabalte: {train.lr: [0.1]}\n")
    result = cli("study", "run", path, "--out", tmp_path / "o")
    assert_one_line_error(result, str(path), "unknown study key 'abalte'", "valid: name")
    assert not (tmp_path / "o").exists()


def test_a_bad_value_in_one_cell(cli, tmp_path):
    study = {**STUDY, "ablate": {"train.optimizer": ["sgd", "adamm"]}}
    result = cli("study", "run", write_study(tmp_path, study), "--out", tmp_path / "o", "--dry-run")
    assert_one_line_error(result, "study 'cli-study', cell train.optimizer=adamm", "'adamm'")


def test_a_missing_study_file(cli, tmp_path):
    assert_one_line_error(cli("study", "run", tmp_path / "nope.yaml"), "cannot read the study file")


def test_table_format_errors(ran, cli, tmp_path):
    assert_one_line_error(cli("study", "table", ran.out, "--format", "html"),
                          "'--format' parameter of study table must be one of text, csv, latex, markdown", "'html'")
    assert_one_line_error(cli("study", "table", ran.out, "-o", tmp_path / "t.txt"), "--out needs --format")
    assert not (tmp_path / "t.txt").exists()


def test_another_study_in_the_same_folder_is_refused(ran, cli, tmp_path):
    other = write_study(tmp_path, {**STUDY, "name": "other-study"})
    result = cli("study", "run", other, "--out", ran.out, "-q")
    assert_one_line_error(result, "holds study 'cli-study', not 'other-study'", "choose another --out")
    assert snapshot(ran.out, MANIFEST) == ran.files
