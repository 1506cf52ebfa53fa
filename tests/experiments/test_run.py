"""train_run: a run is a folder (DESIGN.md). What a finished folder holds, choosing on validation, bad input
leaving nothing behind, resume (in-process and after a real SIGKILL), and failed runs."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from run_helpers import Interrupt, snapshot, untimed

from cnnlab.config import build_config, to_dict
from cnnlab.data import load_dataset, prepare_splits
from cnnlab.engine.callbacks import Callback
from cnnlab.engine.device import resolve_amp
from cnnlab.engine.trainer import TrainingDiverged
from cnnlab.errors import CnnlabError, ConfigError, DataError, UnknownNameError
from cnnlab.experiments.run import model_options, train_run
from cnnlab.models import model_from_spec
from cnnlab.runfolder import METRIC_COLUMNS, RunError, RunFolder, images_sha256

REPO = Path(__file__).resolve().parents[2]
# LeNet-5 on digits whose validation accuracy peaks before the last epoch (0.88 at epoch 4 of 6)
CONFIG = {"data": "digits", "model": "lenet5", "train": {"epochs": 6, "lr": 0.01, "threads": 1}}
# Augmentation, dropout, a cosine schedule, and a plateau on validation loss that cuts the lr after epoch 2
RESUMABLE = {"data": "digits", "model": {"name": "rescnn", "stem": 8, "widths": [8, 16], "dropout": 0.2},
             "augment": {"rotation": 10, "erasing": 0.3},
             "train": {"epochs": 5, "lr": 3e-2, "schedule": "cosine", "threads": 1, "seed": 7,
                       "reduce_lr_on_plateau": 1}}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished run with train.threads unset, so train_run must record the count it used (torch's
    current one, set to 1 here: two threads on a busy two-core machine are many times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNNLAB_DATA", str(tmp_path_factory.mktemp("run-home")))
        patch.setenv("CNNLAB_OFFLINE", "1")
        config = {**CONFIG, "train": {k: v for k, v in CONFIG["train"].items() if k != "threads"}}
        result = train_run(config, tmp_path_factory.mktemp("finished") / "run", progress=False)
        dataset = prepare_splits(load_dataset("digits"), val=0.1)
    torch.set_num_threads(threads)
    return result, dataset


def test_model_options_are_the_model_section_without_its_name_and_the_training_layout():
    config = build_config({"model": {"name": "rescnn", "widths": [8, 16]}, "train": {"channels_last": False}})
    assert model_options(config) == {"widths": [8, 16], "channels_last": False}
    assert model_options(build_config({"model": "lenet5"})) == {"channels_last": True}
    own = build_config({"model": {"name": "lenet5", "channels_last": False}, "train": {"channels_last": True}})
    assert model_options(own) == {"channels_last": False}  # the model section's own setting wins


# ---- what a finished folder holds ------------------------------------------------------------------------


def test_a_finished_folder_holds_exactly_the_documented_files(finished):
    result, _ = finished
    path = result.path
    assert sorted(p.name for p in path.iterdir()) == sorted([
        "config.yaml", "env.json", "metrics.csv", "model.safetensors", "model.json", "predictions.npz",
        "tensorboard", "summary.json"])  # no checkpoint.safetensors, no temporary files
    assert list((path / "tensorboard").glob("events.out.tfevents.*"))
    assert result.folder.status == "finished"


def test_config_yaml_is_the_resolved_config_with_threads_filled_in(finished):
    result, _ = finished
    saved = yaml.safe_load((result.path / "config.yaml").read_text())
    threads = saved["train"]["threads"]
    assert threads == 1  # the count in use, not None
    expected = to_dict(build_config({**CONFIG, "train": {**CONFIG["train"], "threads": threads}}))
    assert saved == expected  # every key, defaults included
    assert list(saved) == ["data", "model", "augment", "train"]
    assert result.summary["threads"] == threads


def test_env_json_records_versions_device_threads_and_git(finished):
    result, _ = finished
    env = json.loads((result.path / "env.json").read_text())
    assert env["versions"]["torch"] == torch.__version__ and env["versions"]["numpy"] == np.__version__
    assert env["versions"]["cnnlab"] and re.fullmatch(r"3\.\d+\.\d+", env["versions"]["python"])
    assert env["device"] == "cpu" and env["threads"] == result.summary["threads"]
    assert env["host"] and env["cpu_count"] >= 1
    if (REPO / ".git").exists() and shutil.which("git"):
        assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", env["git"]), env["git"]


def test_metrics_csv_has_the_documented_columns_and_one_row_per_epoch(finished):
    result, _ = finished
    with (result.path / "metrics.csv").open() as source:
        reader = csv.DictReader(source)
        rows = list(reader)
    assert tuple(reader.fieldnames) == METRIC_COLUMNS
    assert tuple(METRIC_COLUMNS) == ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds",
                                     "images_per_s")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert untimed(result.folder.read_metrics()) == untimed(result.history)


def test_summary_json_fields(finished):
    result, _ = finished
    summary = json.loads((result.path / "summary.json").read_text())
    assert summary == result.summary
    assert summary["status"] == "finished" and summary["error"] is None
    for split in ("val", "test"):
        assert set(summary[split]) == {"accuracy", "loss", "macro_f1", "top5"}
        assert 0.5 < summary[split]["accuracy"] <= summary[split]["top5"] <= 1
    assert summary["params"] == sum(t.numel() for t in result.folder.read_weights().values())
    rows = result.folder.read_metrics()
    assert summary["train_seconds"] == pytest.approx(sum(r["seconds"] for r in rows))
    assert summary["images_per_s"] > 0 and summary["epochs_run"] == 6
    assert summary["sizes"] == {"val": 144, "test": 360}


def test_the_kept_weights_are_chosen_on_validation(finished):
    result, _ = finished
    rows = result.folder.read_metrics()
    accs = [r["val_acc"] for r in rows]
    best = accs.index(max(accs)) + 1
    assert result.summary["best_epoch"] == best
    assert best < len(rows)  # the config was chosen so the last epoch is not the best: this can fail
    assert result.summary["val"]["accuracy"] == pytest.approx(accs[best - 1], abs=1e-7)
    assert result.summary["val"]["loss"] == pytest.approx(rows[best - 1]["val_loss"], rel=1e-5)


def test_predictions_hold_val_and_test_of_the_same_images(finished):
    result, dataset = finished
    with np.load(result.path / "predictions.npz", allow_pickle=False) as raw:
        assert sorted(raw.files) == sorted(f"{s}_{k}" for s in ("val", "test")
                                           for k in ("indices", "labels", "logits", "sha256"))
    predictions = result.folder.read_predictions()
    for name in ("val", "test"):
        split, pred = dataset[name], predictions[name]
        assert pred.sha256 == images_sha256(split.images)
        np.testing.assert_array_equal(pred.labels, split.labels)
        np.testing.assert_array_equal(pred.indices, split.items)
        assert pred.logits.shape == (len(split), 10)
        accuracy = float((pred.predicted == split.labels).mean())
        assert accuracy == pytest.approx(result.summary[name]["accuracy"], abs=1.5 / len(split))  # float16 ties


def test_model_files_rebuild_the_model_and_reproduce_the_test_logits(finished):
    result, dataset = finished
    spec = json.loads((result.path / "model.json").read_text())
    assert spec["name"] == "lenet5" and spec["classes"] == [str(i) for i in range(10)]
    assert spec["in_chans"] == 1 and spec["input_size"] == [8, 8] and spec["background"] == "dark"
    built = model_from_spec(spec)
    built.module.load_state_dict(result.folder.read_weights())
    built.module.eval()
    images = torch.from_numpy(dataset["test"].images)
    amp = resolve_amp(result.folder.read_config()["train"]["amp"], torch.device("cpu"))  # as the run evaluated
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16"):
        logits = built.module(built.transform(images)).float().numpy()
    saved = result.folder.read_predictions()["test"].logits
    np.testing.assert_allclose(saved, logits, rtol=2e-3, atol=2e-3)  # float16 in the file
    np.testing.assert_array_equal(saved.argmax(1), logits.argmax(1))


def test_without_out_the_run_goes_to_runs_model_data_time(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = train_run({**CONFIG, "train": {**CONFIG["train"], "epochs": 1}}, progress=False)
    assert result.path.parent == Path("runs")
    assert re.fullmatch(r"lenet5-digits-\d{8}-\d{6}", result.path.name)
    assert (tmp_path / result.path / "summary.json").exists()


# ---- bad input leaves nothing behind -------------------------------------------------------------------------


@pytest.mark.parametrize("config, error, fragment", [
    ({**CONFIG, "model": "lenet6"}, UnknownNameError, "unknown model 'lenet6'"),
    ({**CONFIG, "model": {"name": "lenet5", "widths": [8]}}, ConfigError, "widths"),
    ({**CONFIG, "train": {"lrr": 0.1}}, ConfigError, "unknown config key 'train.lrr'; did you mean train.lr"),
    ({**CONFIG, "train": {"lr": -1}}, ConfigError, "'train.lr' setting must be greater than 0"),
    ({**CONFIG, "data": "kmnist"}, DataError, "dataset 'kmnist' is not on this machine"),
    ({**CONFIG, "augment": {"flip": True}}, ConfigError, "augment.flip is refused for digits"),
    ({**CONFIG, "data": {"name": "digits", "val": 5000}}, ConfigError, "data.val (--val) must be a count"),
    ({**CONFIG, "data": {"name": "digits", "carve_from": "validation"}}, DataError, "no 'validation' split"),
])
def test_bad_input_creates_no_folder(tmp_path, config, error, fragment):
    out = tmp_path / "runs" / "bad"
    with pytest.raises(error) as info:
        train_run(config, out, progress=False)
    assert isinstance(info.value, CnnlabError)
    assert fragment in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_refused_and_left_untouched(tmp_path, finished):
    result, _ = finished
    before = snapshot(result.path)
    with pytest.raises(RunError, match=r"already holds a run \(finished\); continue it with --resume"):
        train_run(CONFIG, result.path, progress=False)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "readme.txt").write_text("mine")
    with pytest.raises(RunError, match="already holds a run"):
        train_run(CONFIG, other, progress=False)
    assert snapshot(result.path) == before
    assert [p.name for p in other.iterdir()] == ["readme.txt"]


def test_resume_needs_a_folder(tmp_path):
    with pytest.raises(RunError, match="nothing to resume"):
        train_run(CONFIG, tmp_path / "nothing", resume=True, progress=False)
    with pytest.raises(RunError, match="nothing to resume"):
        train_run(CONFIG, None, resume=True, progress=False)


# ---- resume ---------------------------------------------------------------------------------------------------


class InterruptAtEpochEnd(Callback):
    """Ctrl-C in a user callback at the end of epoch `at`: its metrics row is written, its checkpoint not."""

    def __init__(self, at: int):
        self.at = at

    def on_epoch_end(self, epoch, logs):
        if epoch == self.at:
            raise KeyboardInterrupt


def checkpoint_epoch(folder: Path) -> int:
    from safetensors import safe_open

    with safe_open(folder / "checkpoint.safetensors", framework="pt") as source:
        return json.loads(source.metadata()["state"])["epoch"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNNLAB_DATA", str(tmp_path_factory.mktemp("resume-home")))
        patch.setenv("CNNLAB_OFFLINE", "1")
        return train_run(RESUMABLE, tmp_path_factory.mktemp("whole") / "run", progress=False)


def test_the_resumable_config_reduces_the_lr_on_a_plateau_at_epoch_2(uninterrupted):
    rows = uninterrupted.folder.read_metrics()
    steps = math.ceil(1293 / 128)
    cosine = [0.03 * 0.5 * (1 + math.cos(math.pi * (e * steps - 1) / (5 * steps))) for e in range(1, 6)]
    assert rows[1]["val_loss"] > rows[0]["val_loss"]  # no improvement at epoch 2 ...
    assert [r["lr"] / c for r, c in zip(rows, cosine)] == pytest.approx([1, 1, 0.1, 0.1, 0.1])  # ... so lr x 0.1


def _assert_same_run(resumed, whole) -> None:
    assert untimed(resumed.folder.read_metrics()) == untimed(whole.folder.read_metrics())
    assert untimed(resumed.history) == untimed(whole.history)
    for key in ("val", "test", "best_epoch", "epochs_run", "params", "status"):
        assert resumed.summary[key] == whole.summary[key], key
    a, b = resumed.folder.read_weights(), whole.folder.read_weights()
    assert all(torch.equal(a[k], b[k]) for k in b)
    assert resumed.folder.read_predictions()["test"].logits.tobytes() == \
        whole.folder.read_predictions()["test"].logits.tobytes()


def test_resume_after_an_interruption_equals_an_uninterrupted_run(tmp_path, uninterrupted):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_run(RESUMABLE, out, callbacks=[Interrupt(after=2)], progress=False)
    folder = RunFolder(out)
    assert folder.status == "unfinished" and checkpoint_epoch(out) == 2
    assert [r["epoch"] for r in folder.read_metrics()] == [1, 2]
    resumed = train_run(None, out, resume=True, progress=False)
    _assert_same_run(resumed, uninterrupted)
    assert not (out / "checkpoint.safetensors").exists()
    assert [(r["epoch"], r["host"]) for r in folder.read_env()["resumed"]] == [(2, folder.read_env()["host"])]


def test_resume_rewrites_epochs_after_the_checkpoint(tmp_path, uninterrupted):
    """Interrupted after epoch 2's metrics row but before its checkpoint: the resumed run redoes epoch 2."""
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_run(RESUMABLE, out, callbacks=[InterruptAtEpochEnd(2)], progress=False)
    assert [r["epoch"] for r in RunFolder(out).read_metrics()] == [1, 2]
    assert checkpoint_epoch(out) == 1
    resumed = train_run(build_config(RESUMABLE), out, resume=True, progress=False)  # the same config may be given
    _assert_same_run(resumed, uninterrupted)


def test_resume_from_a_corrupt_checkpoint_is_a_run_error(tmp_path):
    out = tmp_path / "run"
    config = {**CONFIG, "train": {**CONFIG["train"], "epochs": 3}}
    with pytest.raises(KeyboardInterrupt):
        train_run(config, out, callbacks=[Interrupt(after=1)], progress=False)
    (out / "checkpoint.safetensors").write_bytes(b"xx")
    with pytest.raises(RunError, match="checkpoint.safetensors: not a readable checkpoint") as info:
        train_run(None, out, resume=True, progress=False)
    assert "delete it" in str(info.value)
    (out / "checkpoint.safetensors").unlink()  # as the message says: the run starts again
    assert train_run(None, out, resume=True, progress=False).summary["epochs_run"] == 3
    assert [r["epoch"] for r in RunFolder(out).read_metrics()] == [1, 2, 3]


class InterruptAtTrainEnd(Callback):
    def on_train_end(self, logs):
        raise KeyboardInterrupt


def test_resume_after_early_stopping_does_not_train_on(tmp_path):
    """Stopped early at epoch 5 (val_acc peaked at epoch 4), interrupted before the summary: resuming must not
    run epoch 6."""
    config = {**CONFIG, "train": {**CONFIG["train"], "early_stopping": 1}}
    whole = train_run(config, tmp_path / "whole", progress=False)
    assert whole.summary["epochs_run"] == 5 and whole.summary["stopped"].startswith("early stopping")
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_run(config, out, callbacks=[InterruptAtTrainEnd()], progress=False)
    assert checkpoint_epoch(out) == 5 and RunFolder(out).status == "unfinished"
    resumed = train_run(None, out, resume=True, progress=False)
    assert resumed.summary["epochs_run"] == 5 and resumed.summary["stopped"] == whole.summary["stopped"]
    assert untimed(resumed.folder.read_metrics()) == untimed(whole.folder.read_metrics())
    assert resumed.summary["test"] == whole.summary["test"]


def test_resume_of_a_finished_run_returns_its_summary_without_training(finished):
    result, _ = finished
    before = snapshot(result.path)

    class Forbidden(Callback):
        def on_train_begin(self, logs):
            raise AssertionError("a finished run was trained again")

    again = train_run(None, result.path, resume=True, callbacks=[Forbidden()], progress=False)
    assert again.summary == result.summary
    assert untimed(again.history) == untimed(result.history)
    assert snapshot(result.path) == before


def test_resume_with_a_different_config_names_the_differing_keys(finished):
    result, _ = finished
    saved = result.folder.read_config()
    changed = {**saved, "train": {**saved["train"], "lr": 0.5, "epochs": 9}, "augment": {"rotation": 5}}
    with pytest.raises(ConfigError, match="these settings differ") as info:
        train_run(changed, result.path, resume=True, progress=False)
    message = str(info.value)
    assert re.search(r"differ: ([a-z_.]+(, )?)+;", message)
    named = set(message.split("differ: ")[1].split(";")[0].split(", "))
    assert named == {"train.lr", "train.epochs", "augment.rotation"}
    with pytest.raises(ConfigError, match=r"differ: model\.activation;"):
        train_run({**saved, "model": {"name": "lenet5", "activation": "relu"}}, result.path, resume=True,
                  progress=False)
    # threads left unset is no difference: the run's own count is reused
    same = train_run({**saved, "train": {**saved["train"], "threads": None}}, result.path, resume=True,
                     progress=False)
    assert same.summary == result.summary


def test_resume_names_model_options_the_given_config_lacks(uninterrupted):
    saved = uninterrupted.folder.read_config()
    before = snapshot(uninterrupted.path)
    with pytest.raises(ConfigError, match="these settings differ") as info:
        train_run({**saved, "model": {"name": "rescnn"}}, uninterrupted.path, resume=True, progress=False)
    named = set(str(info.value).split("differ: ")[1].split(";")[0].split(", "))
    assert named == {"model.stem", "model.widths", "model.dropout"}
    assert snapshot(uninterrupted.path) == before


# ---- a failed run ----------------------------------------------------------------------------------------


def test_divergence_writes_a_failed_summary_and_reraises(tmp_path):
    out = tmp_path / "run"
    config = {"data": "digits", "model": {"name": "lenet5", "activation": "relu"},
              "train": {"optimizer": "sgd", "lr": 1e6, "epochs": 2, "threads": 1}}
    with pytest.raises(TrainingDiverged, match="became nan") as info:
        train_run(config, out, progress=False)
    folder = RunFolder(out)
    assert folder.status == "failed"
    summary = folder.read_summary()
    assert summary["error"] == str(info.value)
    assert summary["val"] is None and summary["test"] is None and summary["best_epoch"] is None
    assert not (out / "predictions.npz").exists()


# ---- a real process, killed ---------------------------------------------------------------------------------


KILLED = {"data": "digits", "model": "lenet5", "train": {"epochs": 25, "batch_size": 32, "lr": 3e-3, "threads": 1,
                                                          "seed": 2}}


def test_resume_after_sigkill_of_a_real_training_process(tmp_path):
    out = tmp_path / "killed"
    t = KILLED["train"]
    command = [sys.executable, "-m", "cnnlab.cli", "train", "--data", "digits", "--model", "lenet5",
               "--epochs", str(t["epochs"]), "--batch-size", str(t["batch_size"]), "--lr", str(t["lr"]),
               "--seed", str(t["seed"]), "train.threads=1", "--out", str(out), "--quiet"]
    env = {**os.environ, "CNNLAB_DATA": os.environ["CNNLAB_DATA"], "CNNLAB_OFFLINE": "1"}
    with (tmp_path / "log.txt").open("wb") as log:
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while not (out / "checkpoint.safetensors").exists():
                assert process.poll() is None, (tmp_path / "log.txt").read_text()
                assert time.monotonic() < deadline, "no checkpoint within 120 s"
                time.sleep(0.005)
            process.send_signal(signal.SIGKILL)
            assert process.wait(timeout=30) == -signal.SIGKILL
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    folder = RunFolder(out)
    assert folder.status == "unfinished", "the process finished before it was killed: give it more epochs"
    killed_at = len(folder.read_metrics())
    assert 1 <= killed_at < t["epochs"]

    resumed = train_run(None, out, resume=True, progress=False)
    whole = train_run(KILLED, tmp_path / "whole", progress=False)
    assert untimed(resumed.folder.read_metrics()) == untimed(whole.folder.read_metrics())
    assert resumed.summary["test"] == whole.summary["test"]
    assert resumed.summary["best_epoch"] == whole.summary["best_epoch"]
    assert folder.read_config() == whole.folder.read_config()
