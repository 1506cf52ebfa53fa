"""Studies as real processes: kill -9 and resume, a process pool whose workers die with the study and
compute the sequential numbers, and a real local Ray cluster (the suite's one Ray check); and a cell's
config, validated once on its way from the study file to the trainer."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from study_helpers import own_model_source, write_study

from cnnlab.experiments.study import run_study
from cnnlab.studyfolder import StudyFolder

# adam is the default optimizer, so 'adam' is the base cell: base and sgd x 2 seeds = 4 cells
STUDY = {
    "name": "killed",
    "base": {"data": "digits", "model": "lenet5",
             "train": {"epochs": 12, "batch_size": 32, "lr": 3e-3, "threads": 1}},
    "ablate": {"train.optimizer": ["adam", "sgd"]},
    "seeds": 2,
}


def results(folder: Path) -> dict:
    """cell name -> (test metrics, metrics.csv rows without timings)."""
    study = StudyFolder(folder)
    out = {}
    for cell in study.cells():
        run = study.run(cell.name)
        rows = [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in run.read_metrics()]
        out[cell.name] = (run.read_summary()["test"], rows)
    return out


def study_command(study_file: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cnnlab.cli", "study", "run", str(study_file), "--out", str(out), "-q", *extra]


def start(command: list[str], tmp_path: Path, log_name: str) -> subprocess.Popen:
    env = {**os.environ, "CNNLAB_OFFLINE": "1"}
    log = (tmp_path / log_name).open("wb")
    return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_for(condition, process: subprocess.Popen, log: Path, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, f"the study ended first:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out:\n{log.read_text()[-3000:]}"
        time.sleep(0.01)


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    """The uninterrupted, sequential study: the numbers every other way of running it must give."""
    tmp = tmp_path_factory.mktemp("sequential")
    os.environ.setdefault("CNNLAB_OFFLINE", "1")
    run = run_study(write_study(tmp, STUDY), tmp / "study", progress=False)
    assert all(o["status"] == "finished" for o in run.outcomes)
    return results(tmp / "study")


def test_a_killed_study_resumes_where_it_was_and_gives_the_same_numbers(tmp_path, sequential):
    study_file, out = write_study(tmp_path, STUDY), tmp_path / "study"
    process = start(study_command(study_file, out), tmp_path, "log.txt")
    finished = lambda: list(out.glob("*/*/summary.json"))  # noqa: E731
    in_progress = lambda: [c for c in out.glob("*/*/checkpoint.safetensors")  # noqa: E731
                           if not (c.parent / "summary.json").exists()]
    try:
        wait_for(lambda: finished() and in_progress(), process, tmp_path / "log.txt")
        kill(process)
    finally:
        if process.poll() is None:
            process.kill()
    done_before = {p.parent.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in finished()}
    interrupted = [c.parent for c in out.glob("*/*/checkpoint.safetensors") if not (c.parent / "summary.json").exists()]
    assert done_before and interrupted, "the kill must land after one cell finished and while another ran"
    # the killed process's lock is stale (its pid is gone): the next run takes the cell over
    assert list((out / ".locks").glob("*.json"))

    again = subprocess.run(study_command(study_file, out), cwd=tmp_path, capture_output=True, text=True,
                           env={**os.environ, "CNNLAB_OFFLINE": "1"})
    assert again.returncode == 0, again.stderr
    assert results(out) == sequential
    for cell, mtime in done_before.items():  # finished cells were kept as they were, not run again
        assert (out / cell / "summary.json").stat().st_mtime_ns == mtime
    assert f"{len(done_before)} finished, 0 failed, {4 - len(done_before)} to run" in again.stderr
    resumed = json.loads((interrupted[0] / "env.json").read_text())["resumed"]
    assert len(resumed) == 1 and resumed[0]["epoch"] >= 1  # continued from its checkpoint, not from epoch 1
    assert not list((out / ".locks").glob("*.json"))


def test_process_pool_workers_die_with_the_study_and_compute_the_sequential_numbers(tmp_path, sequential):
    study_file, out = write_study(tmp_path, STUDY), tmp_path / "study"
    command = study_command(study_file, out, "--executor", "process", "--workers", "2")
    process = start(command, tmp_path, "log.txt")
    locks = lambda: list((out / ".locks").glob("*.json"))  # noqa: E731
    try:
        wait_for(lambda: len(locks()) == 2 and list(out.glob("*/*/checkpoint.safetensors")), process,
                 tmp_path / "log.txt")
        workers = set()
        for lock in locks():
            try:
                workers.add(json.loads(lock.read_text())["pid"])
            except (OSError, ValueError):  # replaced by a heartbeat or released just now
                pass
        assert workers and process.pid not in workers
        kill(process)
    finally:
        if process.poll() is None:
            process.kill()
    deadline = time.monotonic() + 15
    alive = set(workers)
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if Path(f"/proc/{pid}").exists() and
                 "Z" not in (Path(f"/proc/{pid}/stat").read_text().split()[2:3] or ["Z"])}
        time.sleep(0.1)
    assert not alive, f"pool workers {alive} outlived the killed study"

    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True,
                           env={**os.environ, "CNNLAB_OFFLINE": "1"})
    assert again.returncode == 0, again.stderr
    assert results(out) == sequential  # 1 thread per cell either way: same numbers as one after another


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.ray
def test_the_ray_executor_on_a_real_local_cluster(tmp_path, sequential, monkeypatch):
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if ray is None:
        pytest.fail("Ray is not installed: pip install 'cnnlab[ray]' (scripts/install.sh does)")
    port = _free_port()
    # a home of its own: Ray switches token authentication on when ~/.ray/auth_token exists
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "CNNLAB_OFFLINE": "1"}
    subprocess.run([ray, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                    "--disable-usage-stats", "--node-ip-address=127.0.0.1"], check=True, env=env,
                   capture_output=True, timeout=180)
    try:
        out = tmp_path / "study"
        address = f"127.0.0.1:{port}"
        run = run_study(write_study(tmp_path, STUDY), out, executor="ray", address=address, progress=False)
        assert sorted(o["status"] for o in run.outcomes) == ["finished"] * 4
        assert results(out) == sequential
        # a retried or repeated task finds each cell finished and runs nothing
        mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*/*/summary.json")}
        again = run_study(write_study(tmp_path, STUDY), out, executor="ray", address=address, progress=False)
        assert again.outcomes == []  # nothing left to submit
        from cnnlab.config import build_config
        from cnnlab.experiments.executors import CellJob, RayExecutor

        cell = StudyFolder(out).cells()[0]
        job = CellJob(str(out.resolve()), cell.name, cell.key, build_config(cell.config))
        [outcome] = list(RayExecutor(address).run([job]))
        assert outcome["status"] == "finished" and not outcome["ran"]
        assert {p: p.stat().st_mtime_ns for p in out.glob("*/*/summary.json")} == mtimes
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)


def test_a_study_imports_the_users_model_module_in_every_worker(tmp_path):
    """imports: a module beside the study file registers a model; the pool's spawned workers (which
    share nothing with this process) import it too, and the value equal to the default is the base."""
    (tmp_path / "own_models_for_study.py").write_text(own_model_source("tinynet"))
    study = {"name": "own", "imports": ["own_models_for_study"],
             "base": {"data": "digits", "model": "tinynet", "train": {"epochs": 1, "threads": 1}},
             "ablate": {"model.width": [4, 8]}, "seeds": 1}
    path = write_study(tmp_path, study)
    result = subprocess.run(study_command(path, tmp_path / "study", "--executor", "process", "--workers", "2"),
                            cwd=tmp_path.parent, capture_output=True, text=True,
                            env={**os.environ, "CNNLAB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    folder = StudyFolder(tmp_path / "study")
    assert [c.config["model"] for c in folder.cells()] == [{"name": "tinynet", "width": 8},
                                                           {"name": "tinynet", "width": 4}]
    assert all(folder.cell_state(c) == "finished" for c in folder.cells())
    spec = json.loads((tmp_path / "study" / folder.cells()[0].name / "model.json").read_text())
    assert spec["impl"] == "user:own_models_for_study:TinyNet"
    missing = subprocess.run(study_command(write_study(tmp_path, {**study, "imports": ["no_such_module_x"]}),
                                           tmp_path / "other"), capture_output=True, text=True, cwd=tmp_path)
    assert missing.returncode == 2 and "cannot import 'no_such_module_x'" in missing.stderr
    assert not (tmp_path / "other").exists()


def test_a_failed_cell_is_recorded_and_the_study_goes_on(tmp_path):
    study = {"name": "diverges", "base": {"data": "digits", "model": {"name": "lenet5", "activation": "relu"},
                                          "train": {"epochs": 2, "threads": 1, "optimizer": "sgd", "lr": 0.01}},
             "ablate": {"train.lr": [1.0e+30]}, "seeds": 1}
    out = tmp_path / "study"
    run = run_study(study, out, progress=False)
    states = {o["cell"]: o["status"] for o in run.outcomes}
    assert sorted(states.values()) == ["failed", "finished"]
    failed = next(cell for cell, state in states.items() if state == "failed")
    summary = json.loads((out / failed / "summary.json").read_text())
    assert summary["status"] == "failed" and "the training loss became" in summary["error"]

    from cnnlab.analysis.study_table import study_tables

    [table] = study_tables(out)
    assert [(r["value"], r["n"]) for r in table.rows] == [("base", 1), ("1e+30", 0)]
    mtime = (out / failed / "summary.json").stat().st_mtime_ns
    assert run_study(study, out, progress=False).outcomes == []  # failed cells stay failed...
    again = run_study(study, out, retry_failed=True, progress=False)  # ...unless asked
    assert [(o["cell"], o["status"], o["ran"]) for o in again.outcomes] == [(failed, "failed", True)]
    assert (out / failed / "summary.json").stat().st_mtime_ns != mtime


def test_a_cells_config_is_validated_once_where_the_study_is_planned(tmp_path, monkeypatch):
    """The checks, the executor's job and train_run take the RunConfig the plan made as it is."""
    from cnnlab.config import RunConfig

    validated = []
    validate = RunConfig.model_validate

    def counted(tree, *args, **kwargs):
        validated.append(tree)
        return validate(tree, *args, **kwargs)

    monkeypatch.setattr(RunConfig, "model_validate", staticmethod(counted))
    study = {"name": "once", "base": {"data": "digits", "model": "lenet5", "train": {"epochs": 1, "threads": 1}},
             "seeds": 2}
    run = run_study(study, tmp_path / "study", progress=False)
    assert [o["status"] for o in run.outcomes] == ["finished"] * 2
    assert [tree["train"]["seed"] for tree in validated] == [0, 1]  # one validation per cell, while planning
