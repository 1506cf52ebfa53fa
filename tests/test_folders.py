"""What a folder is (folders.py): runs, folders of seeds and studies made with the run-folder writers
(no training), the folders that are none of these and the words that say so, and links refused."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnlab.errors import DataError
from cnnlab.folders import ALL_KINDS, RunRef, SeedGroupRef, StudyRef, resolve_folder, resolve_folders
from cnnlab.runfolder import Predictions, RunError, RunFolder
from cnnlab.studyfolder import StudyError, StudyFolder

SRC = Path(__file__).resolve().parents[1] / "src"


def make_run(path: Path, status: str | None = "finished", predictions: bool = True) -> Path:
    """A run folder with a config and, unless status is None (unfinished), a summary."""
    folder = RunFolder(path)
    path.mkdir(parents=True)
    folder.write_config({"data": {"name": "digits"}})
    if predictions:
        logits = np.eye(3, dtype=np.float32)
        folder.write_predictions({"test": Predictions(np.arange(3), np.arange(3), logits, "0" * 64)})
    if status is not None:
        folder.write_summary({"status": status, "error": None if status == "finished" else "boom"})
    return path


def make_study(path: Path) -> Path:
    """A study folder: base/ and optimizer=sgd/ over two seeds, a value not run yet, and the locks folder."""
    StudyFolder(path).write_manifest({"name": "s", "cells": [], "rows": []})
    for group in ("base", "optimizer=sgd"):
        for seed in (0, 1):
            make_run(path / group / f"seed={seed}-0000000{seed}")
    (path / "optimizer=adamw").mkdir()  # planned, nothing finished in it
    (path / ".locks").mkdir()
    return path


def test_a_run_folder(tmp_path):
    run = make_run(tmp_path / "run")
    ref = resolve_folder(run)
    assert ref == RunRef(run) and ref.folder.path == run
    assert resolve_folder(str(run), need_predictions=True) == RunRef(run)  # a string names the same folder
    failed = make_run(tmp_path / "failed", status="failed", predictions=False)
    assert resolve_folder(failed) == RunRef(failed)  # finished or failed: which one is for the caller to judge


def test_a_run_without_predictions_where_they_are_needed(tmp_path):
    run = make_run(tmp_path / "run", predictions=False)
    assert resolve_folder(run) == RunRef(run)
    with pytest.raises(DataError) as caught:
        resolve_folder(run, need_predictions=True)
    assert str(caught.value) == f"{run} is a run without predictions.npz; write it with `cnnlab evaluate {run}`"


def test_a_folder_of_seeds(tmp_path):
    group = tmp_path / "group"
    runs = [make_run(group / name) for name in ("seed=1-b", "seed=0-a")]
    (group / "notes.txt").write_text("not a run")
    make_run(group / "seed=2-c", status=None)  # unfinished: not among the runs
    ref = resolve_folder(group)
    assert ref == SeedGroupRef(group, tuple(sorted(runs)))


def test_a_study_folder_and_its_groups(tmp_path):
    study = make_study(tmp_path / "study")
    ref = resolve_folder(study)
    assert isinstance(ref, StudyRef) and ref.path == study
    assert [g.path.name for g in ref.groups] == ["base", "optimizer=sgd"]  # the empty value is left out
    assert all(len(g.runs) == 2 for g in ref.groups)
    assert ref.runs == sorted(p.parent for p in study.glob("*/*/summary.json"))


def test_resolve_folders_keeps_the_order(tmp_path):
    study, run = make_study(tmp_path / "study"), make_run(tmp_path / "run")
    refs = resolve_folders([run, study / "base", study])
    assert [type(r) for r in refs] == [RunRef, SeedGroupRef, StudyRef]
    assert [r.path for r in refs] == [run, study / "base", study]
    assert resolve_folders([]) == []


def test_refs_are_frozen(tmp_path):
    ref = resolve_folder(make_run(tmp_path / "run"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.path = tmp_path


GIVE_ANY = "give run folders, folders of seeds (a study's optimizer=sgd/) or a study folder"


def test_what_is_none_of_these_says_what_it_is_and_what_to_give(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir()
    unfinished = make_run(tmp_path / "unfinished", status=None)
    expected = {
        tmp_path / "gone": f"{tmp_path / 'gone'}: no such folder, so it holds no finished run folders; {GIVE_ANY}",
        tmp_path / "file": f"{tmp_path / 'file'} is a file, not a run folder; {GIVE_ANY}",
        unfinished: f"{unfinished} is an unfinished run (summary.json is missing); finish it with "
                    f"`cnnlab train --out {unfinished} --resume` or leave it out",
        tmp_path / "empty": f"{tmp_path / 'empty'} is neither a run folder (summary.json), a folder of seeds (it holds "
                            f"no finished run folders) nor a study folder (study.json); {GIVE_ANY}",
    }
    for path, message in expected.items():
        with pytest.raises(DataError) as caught:
            resolve_folder(path)
        assert str(caught.value) == message
    with pytest.raises(DataError, match=r"neither a run folder \(summary.json and predictions.npz\)"):
        resolve_folder(tmp_path / "empty", need_predictions=True)


def test_only_the_kinds_accepted(tmp_path):
    study, run = make_study(tmp_path / "study"), make_run(tmp_path / "run")
    (tmp_path / "empty").mkdir()
    runs_and_studies = (StudyRef, RunRef)
    assert resolve_folder(study, runs_and_studies).path == study
    with pytest.raises(DataError) as caught:
        resolve_folder(study / "base", runs_and_studies)
    assert str(caught.value) == (f"{study / 'base'} is a folder of seeds, not a study folder (study.json) or a run "
                                 f"folder (summary.json); give the run folders in it")
    with pytest.raises(DataError) as caught:
        resolve_folder(tmp_path / "empty", runs_and_studies)
    assert str(caught.value) == (f"{tmp_path / 'empty'} is neither a study folder (study.json) nor a run folder "
                                 f"(summary.json); give a study folder or run folders")
    with pytest.raises(DataError, match="is a study folder; give run folders or folders of seeds"):
        resolve_folder(study, (RunRef, SeedGroupRef))
    with pytest.raises(DataError, match="is a run folder; give a study folder$"):
        resolve_folder(run, (StudyRef,))
    with pytest.raises(DataError, match=r"is not a run folder \(summary.json\); give run folders$"):
        resolve_folder(tmp_path / "empty", (RunRef,))
    assert ALL_KINDS == (RunRef, SeedGroupRef, StudyRef)


def test_links_are_refused_not_followed(tmp_path):
    outside = make_run(tmp_path / "outside")
    group = tmp_path / "group"
    make_run(group / "seed=0-a")
    (group / "seed=1-b").symlink_to(outside)
    with pytest.raises(RunError, match="outside"):
        resolve_folder(group)
    study = make_study(tmp_path / "study")
    (study / "linked").symlink_to(tmp_path / "group")
    with pytest.raises(StudyError, match="is a symbolic link"):
        resolve_folder(study)


def test_importing_the_module_imports_neither_torch_nor_pandas():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    code = ("import cnnlab.folders, sys; "
            "assert 'torch' not in sys.modules, 'torch'; assert 'pandas' not in sys.modules, 'pandas'")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
