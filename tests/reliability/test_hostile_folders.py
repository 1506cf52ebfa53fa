"""Folders and files built to mislead: links out of run and study folders, pickled weights, YAML that
expands without bound, device files as outputs, forged study manifests; and Ctrl-C on a process pool."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from cli_helpers import invoke_cli

BASE = {"data": "digits", "model": "lenet5", "train": {"epochs": 1, "threads": 1}}


def one_line_error(result, *fragments: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr and "unexpected" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)
    return result.stderr


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    from cnnlab.experiments.run import train_run
    from cnnlab.experiments.study import run_study

    root = tmp_path_factory.mktemp("hostile")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNNLAB_DATA", str(tmp_path_factory.mktemp("hostile-home")))
        patch.setenv("CNNLAB_OFFLINE", "1")
        run = train_run(BASE, root / "run", progress=False).path
        study = run_study({"name": "tiny", "base": BASE, "ablate": {"train.optimizer": ["sgd"]}, "seeds": 1},
                          root / "study", progress=False).folder.path
    return {"run": run, "study": study}


def test_a_link_in_a_run_folder_is_refused_not_followed(made, tmp_path):
    run = shutil.copytree(made["run"], tmp_path / "run")
    victim = tmp_path / "victim"
    victim.mkdir()
    shutil.rmtree(run / "tensorboard")
    (run / "tensorboard").symlink_to(victim)
    one_line_error(invoke_cli("train", "--out", run, "--resume"), "tensorboard is a symbolic link")
    one_line_error(invoke_cli("evaluate", run), "tensorboard is a symbolic link")
    assert list(victim.iterdir()) == []


def test_a_linked_cell_cannot_point_compare_or_select_outside_the_study(made, tmp_path):
    study = shutil.copytree(made["study"], tmp_path / "study")
    cell = next((study / "optimizer=sgd").iterdir())
    shutil.rmtree(cell)
    cell.symlink_to(made["run"])
    for command in ("compare", "select"):
        one_line_error(invoke_cli(command, study), "outside", "replace the link")
    group = study / "optimizer=sgd"
    shutil.rmtree(group)
    group.symlink_to(made["study"] / "base")
    one_line_error(invoke_cli("select", study), "is a symbolic link")


def test_pickled_weights_are_one_line_and_never_unpickled(tmp_path):
    import pickle

    sentinel = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {sentinel}",))

    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"conv.weight": Evil()}))
    result = invoke_cli("train", "--data", "digits", "--model", "timm:resnet18", "--epochs", "1", "--out",
                        tmp_path / "run", "model.pretrained=true", f"model.weights={evil}")
    message = one_line_error(result, "evil.pth holds more than tensors", "safetensors")
    assert "weights_only" not in message.split("(")[0] and not sentinel.exists() and not (tmp_path / "run").exists()


BOMB = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
    f"b{i}: &b{i} [{', '.join(['*a' if i == 0 else f'*b{i - 1}'] * 10)}]\n" for i in range(8))


def test_yaml_that_expands_without_bound_is_refused_at_once(tmp_path):
    config = tmp_path / "bomb.yaml"
    config.write_text(f"{BOMB}train: {{class_weights: *b7}}\n")
    started = time.perf_counter()
    one_line_error(invoke_cli("train", "-c", config, "--out", tmp_path / "run"), "expands to more than")
    study = tmp_path / "study.yaml"
    study.write_text(f"{BOMB}name: s\nbase: {{data: digits}}\nablate: {{train.lr: *b7}}\n")
    one_line_error(invoke_cli("study", "run", study, "--dry-run"), "expands to more than")
    assert time.perf_counter() - started < 30 and not (tmp_path / "run").exists()


def test_a_study_too_large_to_plan_is_refused(tmp_path):
    study = tmp_path / "huge.yaml"
    study.write_text("name: huge\nbase: {data: digits}\nseeds: 1000000\n")
    one_line_error(invoke_cli("study", "run", study, "--dry-run"), "seeds", "1,000")
    study.write_text("name: huge\nbase: {data: digits}\ngrid: {train.lr: [" + ", ".join(["0.1"] * 400) +
                     "], train.batch_size: [" + ", ".join(["32"] * 400) + "]}\nseeds: 1\n")
    one_line_error(invoke_cli("study", "run", study, "--dry-run"), "plans 160,001 runs")


def test_outputs_replace_only_regular_files(made, tmp_path):
    link = tmp_path / "table.md"
    target = tmp_path / "elsewhere.md"
    target.write_text("mine")
    link.symlink_to(target)
    one_line_error(invoke_cli("study", "table", made["study"], "--format", "markdown", "-o", link),
                   "is a symbolic link")
    assert target.read_text() == "mine" and link.is_symlink()


def test_report_never_replaces_a_folder_with_other_files(made, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "report.html").write_text("<p>mine</p>")
    (folder / "keep.txt").write_text("precious")
    one_line_error(invoke_cli("report", made["run"], "-o", folder), "keep.txt")
    assert (folder / "keep.txt").read_text() == "precious"


def test_a_forged_manifest_row_is_one_line(made, tmp_path):
    study = shutil.copytree(made["study"], tmp_path / "study")
    manifest = json.loads((study / "study.json").read_text())
    manifest["rows"][0]["cell"] = "nowhere/seed=0-00000000"
    (study / "study.json").write_text(json.dumps(manifest))
    for args in (("study", "table", study), ("study", "status", study)):
        one_line_error(invoke_cli(*args), "study.json", "nowhere/seed=0", "delete it and run the study file again")
    one_line_error(invoke_cli("study", "status", made["run"]), "is a run folder, not a study folder")


@pytest.mark.parametrize("name, edit, fragment", [
    ("timm:resnet18", lambda spec: spec["options"].update(model_kwargs={"global_pool": "/x"}), "model_kwargs"),
    ("lenet5", lambda spec: spec["transform"].update(size=[100000, 100000], mode="resize"), "from 1 to 4096"),
])
def test_a_run_whose_model_json_cannot_be_built_is_one_line(made, tmp_path, name, edit, fragment):
    run = shutil.copytree(made["run"], tmp_path / "run")
    spec = json.loads((run / "model.json").read_text())
    spec["name"] = name
    edit(spec)
    (run / "model.json").write_text(json.dumps(spec))
    one_line_error(invoke_cli("evaluate", run), "model.json", fragment)


def test_config_errors_a_careless_user_makes(tmp_path):
    one_line_error(invoke_cli("train", "--data", "digits", "--model", "rescnn", "--out", tmp_path / "run",
                              "model.widths=[100000,100000]"), "does not fit in memory")
    one_line_error(invoke_cli("train", "--data", "digits", "--lr", "inf", "--out", tmp_path / "run"),
                   "finite number")
    binary = tmp_path / "run.yaml"
    binary.write_bytes(bytes(range(256)) * 2)
    one_line_error(invoke_cli("train", "-c", binary, "--out", tmp_path / "run"), "not a text file")
    module = tmp_path / "quits.py"
    module.write_text("raise SystemExit(3)\n")
    study = tmp_path / "study.yaml"
    study.write_text("name: q\nbase: {data: digits}\nimports: [quits]\nseeds: 1\n")
    one_line_error(invoke_cli("study", "run", study, "--dry-run"), "imports: cannot import 'quits'", "SystemExit")
    assert not (tmp_path / "run").exists()


# ---- Ctrl-C on a process pool -------------------------------------------------------------------------
POOL_STUDY = """
name: pool
base: {data: digits, model: lenet5, train: {epochs: 200, threads: 1, batch_size: 32}}
ablate: {train.optimizer: [sgd, rmsprop, adamw]}
seeds: 1
"""


def test_ctrl_c_stops_a_process_pool_at_once_and_the_study_resumes(tmp_path):
    study_file = tmp_path / "pool.yaml"
    study_file.write_text(POOL_STUDY)
    out = tmp_path / "study"
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab.cli", "study", "run", str(study_file), "--out", str(out),
                             "-e", "process", "-w", "2", "-q"], env={**os.environ, "CNNLAB_OFFLINE": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list(out.glob("*/*/metrics.csv")):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)  # the study process only: its workers must be stopped by it
    started = time.time()
    _, stderr = proc.communicate(timeout=60)
    assert time.time() - started < 15, "the pool kept training after Ctrl-C"
    assert proc.returncode == 130 and "interrupted" in stderr and "run the same command again" in stderr
    assert len(list(out.glob("*/*/summary.json"))) < 4
    sizes = {p: p.stat().st_size for p in out.glob("*/*/metrics.csv")}
    time.sleep(2)
    assert {p: p.stat().st_size for p in out.glob("*/*/metrics.csv")} == sizes  # no worker trains on
    again = subprocess.run([sys.executable, "-m", "cnnlab.cli", "study", "status", str(out)], capture_output=True,
                           text=True, env={**os.environ, "CNNLAB_OFFLINE": "1"})
    assert again.returncode == 0 and "running" not in again.stdout  # their locks died with them
