"""The public API and the CLI used carelessly or with hostile folders: wrong argument types, option typos,
monitors that are never logged, run and study folders with damaged or forged files. Each must end in one
CnnlabError (one `error:` line from the CLI) that names the problem, and displaying an object never raises."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from cli_helpers import assert_one_line_error, invoke_cli

import cnnlab as cl
from cnnlab.errors import CnnlabError, ConfigError, DataError, UnknownNameError

TINY = {"data": {"name": "digits", "subset": 300}, "model": "lenet5", "train": {"epochs": 1, "threads": 1}}
TINY_FLAGS = ["--data", "digits", "--subset", "300", "--model", "lenet5", "--epochs", "1", "--threads", "1", "-q"]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("attacks")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNNLAB_DATA", str(tmp_path_factory.mktemp("attacks-home")))
        patch.setenv("CNNLAB_OFFLINE", "1")
        run = cl.train(TINY, root / "run", progress=False).path
        study = cl.run_study({"name": "tiny", "base": TINY, "ablate": {"train.optimizer": ["sgd"]}, "seeds": 2},
                             root / "study", progress=False).path
    return {"run": run, "study": study}


@pytest.fixture
def run_copy(made, tmp_path):
    return shutil.copytree(made["run"], tmp_path / "run")


@pytest.fixture
def study_copy(made, tmp_path):
    return shutil.copytree(made["study"], tmp_path / "study")


def first_cell(study):
    return next((study / "base").iterdir())


# ---- a run folder someone sends -----------------------------------------------------------------
DAMAGED_SUMMARIES = {
    "wrong types": json.dumps({"status": "finished", "params": "many", "test": {"accuracy": "x"}}),
    "scores without loss": json.dumps({"status": "finished", "test": {"accuracy": 0.5}}),
    "status not text": json.dumps({"status": 3}),
    "not JSON": '{"status": ',
    "nested without end": "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("damage", DAMAGED_SUMMARIES)
def test_a_damaged_summary_is_a_run_error_and_still_displays(run_copy, damage):
    (run_copy / "summary.json").write_text(DAMAGED_SUMMARIES[damage])
    run = cl.Run(run_copy)
    with pytest.raises(CnnlabError, match="summary.json"):
        run.summary  # noqa: B018
    shown = run._repr_html_()
    assert "cannot be shown" in shown and "summary.json" in shown
    assert repr(run).startswith(f"Run({str(run_copy)!r}, ")


def test_a_summary_that_is_a_folder_is_a_run_error(run_copy):
    (run_copy / "summary.json").unlink()
    (run_copy / "summary.json").mkdir()
    run = cl.Run(run_copy)
    with pytest.raises(CnnlabError, match="summary.json: cannot read it"):
        run.status  # noqa: B018
    assert "cannot be shown" in run._repr_html_()


def test_a_summary_of_the_status_alone_shows_dashes(run_copy):
    (run_copy / "summary.json").write_text(json.dumps({"status": "finished"}))
    shown = cl.Run(run_copy)._repr_html_()
    assert "None" not in shown and "— / —" in shown


def test_names_in_a_summary_are_escaped_in_the_html(run_copy):
    summary = json.loads((run_copy / "summary.json").read_text())
    (run_copy / "summary.json").write_text(json.dumps({**summary, "model": "<script>alert(1)</script>"}))
    shown = cl.Run(run_copy)._repr_html_()
    assert "<script>" not in shown and "&lt;script&gt;" in shown


def test_a_config_nested_thousands_deep_is_a_run_error(run_copy):
    (run_copy / "config.yaml").write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(CnnlabError, match="config.yaml: nested too deeply"):
        cl.Run(run_copy).config  # noqa: B018


def test_metrics_behind_a_link_are_not_read(run_copy, tmp_path):
    outside = tmp_path / "elsewhere.csv"
    shutil.copyfile(run_copy / "metrics.csv", outside)
    (run_copy / "metrics.csv").unlink()
    (run_copy / "metrics.csv").symlink_to(outside)
    run = cl.Run(run_copy)
    for read in (lambda: run.metrics, run.curves):
        with pytest.raises(CnnlabError, match="metrics.csv is a symbolic link"):
            read()


def test_a_file_is_not_a_run_or_a_study(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(CnnlabError, match="notes.txt is a file, not a run folder"):
        cl.Run(tmp_path / "notes.txt")
    with pytest.raises(CnnlabError, match="notes.txt is a file, not a study folder"):
        cl.Study(tmp_path / "notes.txt")
    with pytest.raises(CnnlabError, match="no such study folder"):
        cl.Study(tmp_path / "nothing")


# ---- a study folder someone sends ---------------------------------------------------------------
def edit_manifest(study, edit) -> None:
    manifest = json.loads((study / "study.json").read_text())
    edit(manifest)
    (study / "study.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("edit, problem", [
    (lambda m: m.pop("name"), "its name is None"),
    (lambda m: m.update(name=5), "its name is 5"),
    (lambda m: m.update(spec=[1]), "its spec is a list"),
])
def test_a_forged_manifest_is_a_study_error(study_copy, edit, problem):
    edit_manifest(study_copy, edit)
    with pytest.raises(CnnlabError, match=problem):
        cl.Study(study_copy)
    assert_one_line_error(invoke_cli("study", "status", study_copy), problem)


def test_a_linked_manifest_is_refused(made, tmp_path):
    study = shutil.copytree(made["study"], tmp_path / "study")
    (study / "study.json").unlink()
    (study / "study.json").symlink_to(made["study"] / "study.json")
    with pytest.raises(CnnlabError, match="study.json is a symbolic link"):
        cl.Study(study)


def test_a_cell_summary_with_text_for_a_number_names_the_file_and_key(study_copy):
    cell = first_cell(study_copy)
    summary = json.loads((cell / "summary.json").read_text())
    summary["test"]["accuracy"] = "x"
    (cell / "summary.json").write_text(json.dumps(summary))
    study = cl.Study(study_copy)
    with pytest.raises(DataError, match=r"summary.json: 'test.accuracy' is 'x', not a number"):
        study.tables()
    assert "cannot be shown" in study._repr_html_()
    assert_one_line_error(invoke_cli("study", "table", study_copy), "'test.accuracy' is 'x'")


def test_a_study_with_a_damaged_cell_still_displays(study_copy):
    (first_cell(study_copy) / "summary.json").write_text("{")
    study = cl.Study(study_copy)
    assert "cannot be shown" in study._repr_html_()
    assert "cells unreadable" in repr(study)


def test_an_unknown_table_format_fails_before_the_study_is_read(study_copy):
    (first_cell(study_copy) / "summary.json").write_text("{")
    with pytest.raises(UnknownNameError, match="'html'"):
        cl.Study(study_copy).table("html")


def test_an_unknown_cell_lists_the_cells(made):
    with pytest.raises(CnnlabError, match="has no cell 'nope'; its cells are base/seed=0-"):
        cl.Study(made["study"]).run("nope")


# ---- cl.train's arguments -----------------------------------------------------------------------
@pytest.mark.parametrize("arguments, fragment", [
    ({"overrides": [1]}, "override 1 is not key=value"),
    ({"overrides": [None]}, "override None is not key=value"),
    ({"overrides": "train.lr=0.1"}, "The 'overrides' parameter of train"),
    ({"overrides": 5}, "The 'overrides' parameter of train"),
    ({"overrides": {1: 2}}, "keys are dotted config keys"),
    ({"overrides": ["train.callbacks=[{name:"]}, "the value is not valid YAML"),
    ({"config": 5}, "The 'config' parameter of train"),
    ({"config": [TINY]}, "The 'config' parameter of train"),
    ({"callbacks": [1]}, "The 'callbacks' parameter of train must be a list of cl.Callback objects"),
    ({"callbacks": [cl.EarlyStopping]}, "The 'callbacks' parameter of train"),
    ({"callbacks": "x"}, "The 'callbacks' parameter of train"),
])
def test_train_refuses_arguments_of_the_wrong_kind_before_writing(tmp_path, arguments, fragment):
    config = arguments.pop("config", TINY)
    with pytest.raises(ConfigError, match=fragment):
        cl.train(config, tmp_path / "run", progress=False, **arguments)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("train, fragment", [
    ({"early_stopping": True}, "The 'train.early_stopping' setting must be a patience in epochs"),
    ({"reduce_lr_on_plateau": False}, "The 'train.reduce_lr_on_plateau' setting must be a patience in epochs"),
    ({"early_stopping": {"monitor": "val_accuracy"}},
     ("The 'train.early_stopping.monitor' setting must be a metric logged every epoch: 'lr', 'train_loss', "
      "'train_acc', 'val_loss', 'val_acc', 'seconds', 'images_per_s' (did you mean 'val_acc'?). Got 'val_accuracy'")),
    ({"callbacks": [{"name": "reduce_lr_on_plateau", "monitor": "loss"}]}, "'train.callbacks[0].monitor' setting"),
])
def test_a_callback_setting_that_cannot_work_is_a_config_error(train, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        cl.build_config({"train": train})


def test_a_monitor_from_python_may_be_one_another_callback_logs():
    assert cl.EarlyStopping(monitor="my_score").tracker.monitor == "my_score"


def test_the_monitorable_names_are_the_metrics_columns():
    from cnnlab.engine.callbacks import EPOCH_LOGS
    from cnnlab.runfolder import METRIC_COLUMNS

    assert EPOCH_LOGS == METRIC_COLUMNS[1:]


def test_a_yaml_file_nested_thousands_deep_is_a_config_error(tmp_path):
    (tmp_path / "run.yaml").write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="run.yaml: nested too deeply"):
        cl.load_config(tmp_path / "run.yaml")


def test_the_cli_refuses_a_monitor_that_is_never_logged_before_training(tmp_path):
    result = invoke_cli("train", *TINY_FLAGS, "--out", tmp_path / "run", "train.early_stopping.monitor=val_accuracy")
    assert_one_line_error(result, "'train.early_stopping.monitor'", "did you mean 'val_acc'?")
    assert not (tmp_path / "run").exists()


def test_a_study_whose_base_monitors_a_typo_names_the_study_and_cell_at_once(tmp_path):
    (tmp_path / "s.yaml").write_text(json.dumps({
        "name": "typo", "base": {**TINY, "train": {**TINY["train"], "reduce_lr_on_plateau": {"monitor": "val_los"}}},
        "seeds": 1}))
    result = invoke_cli("study", "run", tmp_path / "s.yaml", "--out", tmp_path / "study", "-q")
    assert_one_line_error(result, "study 'typo', cell base", "'train.reduce_lr_on_plateau.monitor'")
    assert not (tmp_path / "study").exists()


# ---- the other functions' arguments ---------------------------------------------------------------
def test_one_folder_alone_is_a_list_of_one(made):
    assert cl.compare(made["study"]).results
    assert cl.compare(cl.Study(made["study"])).results


@pytest.mark.parametrize("call, fragment", [
    (lambda: cl.compare([5]), "The 'paths' parameter of compare must be a folder"),
    (lambda: cl.compare(None), "The 'paths' parameter of compare must be a list of folders"),
    (lambda: cl.crosseval(["run"], 5), "The 'data' parameter of crosseval"),
    (lambda: cl.report(["run"], None), "The 'out' parameter of report"),
    (lambda: cl.load_dataset(5), "The 'name' parameter of load_dataset"),
    (lambda: cl.add_data(None, None), "The 'name' parameter of add_data"),
    (lambda: cl.run_study(5), "The 'study' parameter of run_study"),
    (lambda: cl.estimate_study([1]), "The 'study' parameter of estimate_study"),
    (lambda: cl.estimate_study({"name": "x", "base": TINY}, workers=0), "The 'workers' parameter of estimate_study"),
])
def test_arguments_of_the_wrong_kind_are_config_errors(call, fragment):
    with pytest.raises(ConfigError, match=fragment):
        call()


def test_the_quickstart_writes_into_neither_a_file_nor_a_run(made, tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="notes.txt is a file"):
        cl.quickstart(tmp_path / "notes.txt", progress=False)
    before = sorted(p.name for p in made["run"].iterdir())
    with pytest.raises(ConfigError, match="is a run folder"):
        cl.quickstart(made["run"], progress=False)
    assert sorted(p.name for p in made["run"].iterdir()) == before
