"""A run folder damaged by a kill, an edit or a bad file: resume repairs what it can, refuses the rest with
one message, and never loses a failed run's record."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from run_helpers import Interrupt
from safetensors.torch import load_file, save_file

from cnnlab.errors import ConfigError, Interrupted
from cnnlab.experiments.run import train_run
from cnnlab.runfolder import RunError, RunFolder

CONFIG = {"data": "digits", "model": "lenet5", "train": {"epochs": 3, "lr": 0.01, "threads": 1}}


def interrupted_run(tmp_path, after: int = 1, config=CONFIG):
    out = tmp_path / "run"
    with pytest.raises(Interrupted) as info:
        train_run(config, out, callbacks=[Interrupt(after)], progress=False)
    return out, str(info.value)


def epochs(out) -> list[int]:
    return [r["epoch"] for r in RunFolder(out).read_metrics()]


def test_ctrl_c_says_where_it_stopped_and_how_to_resume(tmp_path):
    out, message = interrupted_run(tmp_path, after=1)
    assert "interrupted during epoch 2 of 3" in message
    assert f"epochs 1–1 are saved in {out}" in message
    assert f"cnnlab train --out {out} --resume" in message
    assert train_run(None, out, resume=True, progress=False).summary["epochs_run"] == 3


def test_ctrl_c_in_the_first_epoch_says_the_run_starts_again(tmp_path):
    out, message = interrupted_run(tmp_path, after=0)
    assert "no epoch had finished" in message
    assert not (out / "checkpoint.safetensors").exists()
    assert train_run(None, out, resume=True, progress=False).summary["status"] == "finished"
    assert epochs(out) == [1, 2, 3]


@pytest.mark.parametrize("torn", ["3,0.0", "3,0.01,1.2,0.4,1.1,0.6,0.2,50", "1", "\n2,0.01,,,,,,"])
def test_a_torn_metrics_row_is_refused_on_read_and_repaired_on_resume(tmp_path, torn):
    out, _ = interrupted_run(tmp_path, after=2)
    with (out / "metrics.csv").open("a") as handle:  # killed while writing the next row
        handle.write(torn)
    with pytest.raises(RunError, match="metrics.csv: .*incomplete or out of order.*--resume"):
        RunFolder(out).read_metrics()
    summary = train_run(None, out, resume=True, progress=False).summary
    assert epochs(out) == [1, 2, 3]
    assert math.isfinite(summary["train_seconds"]) and summary["train_seconds"] > 0


def test_a_failed_run_with_a_bad_checkpoint_keeps_its_error_record(tmp_path):
    out, _ = interrupted_run(tmp_path, after=1)
    folder = RunFolder(out)
    folder.write_summary({"status": "failed", "error": "the training loss became nan", "val": None, "test": None,
                          "best_epoch": None})
    (out / "checkpoint.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(RunError, match="checkpoint.safetensors: not a readable checkpoint"):
        train_run(None, out, resume=True, progress=False)
    assert folder.read_summary()["error"] == "the training loss became nan"


@pytest.mark.parametrize("meta", [{}, {"state": "{}"}, {"state": json.dumps({"epoch": "x", "optim_scalars": 3})},
                                  {"state": "[1, 2"}])
def test_a_checkpoint_with_garbage_metadata_is_one_run_error(tmp_path, meta):
    out, _ = interrupted_run(tmp_path, after=1)
    checkpoint = out / "checkpoint.safetensors"
    save_file(load_file(checkpoint), checkpoint, metadata=meta)
    with pytest.raises(RunError, match="checkpoint.safetensors: .*delete it to train the run again"):
        train_run(None, out, resume=True, progress=False)


def test_an_edited_config_yaml_is_named_on_resume(tmp_path):
    out, _ = interrupted_run(tmp_path, after=1)
    config = yaml.safe_load((out / "config.yaml").read_text())
    config["train"]["lr"] = 0.5
    config["model"]["activation"] = "relu"
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"config.yaml differs from the config its checkpoint .*model.activation.*"
                                          r"train.lr|config.yaml differs .*train.lr.*model.activation"):
        train_run(None, out, resume=True, progress=False)
    config["train"]["lr"] = -1
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"config.yaml was changed into an invalid config .*train.lr"):
        train_run(None, out, resume=True, progress=False)


def test_an_edit_before_the_first_checkpoint_starts_the_run_over_with_it(tmp_path):
    out, _ = interrupted_run(tmp_path, after=0)
    config = yaml.safe_load((out / "config.yaml").read_text())
    config["model"]["activation"] = "relu"
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    result = train_run(None, out, resume=True, progress=False)
    assert result.summary["status"] == "finished"
    assert RunFolder(out).read_model_spec()["options"]["activation"] == "relu"


def test_resume_removes_temporary_files_a_kill_left(tmp_path):
    out, _ = interrupted_run(tmp_path, after=1)
    leftovers = [out / ".model.safetensors.k3j2h1", out / ".summary.json.x8y7z6"]
    for temp in leftovers:
        temp.write_bytes(b"half")
    train_run(None, out, resume=True, progress=False)
    assert not any(temp.exists() for temp in leftovers)


def test_out_must_be_a_folder(tmp_path):
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    with pytest.raises(RunError, match="--out .*notes.txt cannot be a run folder"):
        train_run(CONFIG, file, progress=False)
    with pytest.raises(RunError, match=r"notes.txt is a file"):
        train_run(CONFIG, file / "run", progress=False)
    assert file.read_text() == "mine"


@pytest.mark.parametrize("setup, fragment", [
    (lambda d: None, "no such run folder"),
    (lambda d: d.mkdir(), "is not a run folder: it has no config.yaml"),
    (lambda d: (d.mkdir(), (d / "config.yaml").write_text("data: {name: digits}\n")), "is an unfinished run"),
])
def test_require_says_what_the_folder_is_instead(tmp_path, setup, fragment):
    folder = tmp_path / "thing"
    setup(folder)
    with pytest.raises(RunError, match=fragment) as info:
        RunFolder(folder).read_summary()
    message = str(info.value)
    assert ("--resume" in message) == (fragment == "is an unfinished run")  # no circular advice


# ---- study folders ----------------------------------------------------------------------------------
STUDY = {"name": "tiny", "base": {"data": "digits", "model": "lenet5", "train": {"epochs": 1, "threads": 1}},
         "seeds": 1}


@pytest.mark.parametrize("factor", ["/etc/passwd", "../escape", "train.lr/../../x", "model.", "a b"])
def test_a_factor_that_is_not_a_key_is_refused_before_anything_is_written(tmp_path, factor):
    from cnnlab.experiments.study import open_study

    out = tmp_path / "study"
    with pytest.raises(ConfigError, match="is not a config key or a name"):
        open_study({**STUDY, "ablate": {factor: [1, 2]}}, out, need_data=False)
    assert not out.exists()


@pytest.mark.parametrize("kind", ["run folder", "file", "folder of other things", "under a file"])
def test_study_out_must_be_a_study_folder_or_a_new_one(tmp_path, kind):
    from cnnlab.experiments.study import run_study
    from cnnlab.studyfolder import StudyError

    target = tmp_path / "target"
    if kind == "run folder":
        target.mkdir()
        (target / "config.yaml").write_text("data: {name: digits}\n")
    elif kind == "file":
        target.write_text("x")
    elif kind == "folder of other things":
        target.mkdir()
        (target / "thesis.tex").write_text("x")
    else:
        (tmp_path / "file").write_text("x")
        target = tmp_path / "file" / "study"
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(StudyError, match="--out"):
        run_study(STUDY, target, progress=False)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
