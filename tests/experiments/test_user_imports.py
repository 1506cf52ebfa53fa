"""A study folder someone sends is safe to open: only the modules named in `imports:` run, loaded from
their files, and sys.path never changes, so a torch.py, multiprocessing.py, concurrent.py or json.py
beside the study file is never imported: not by a dry run, a local run or the process pool's workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from study_helpers import TINY, own_model_source, sent_folder

from cnnlab.errors import ConfigError
from cnnlab.experiments.plan import import_user_modules
from cnnlab.studyfolder import StudyFolder


def subprocess_study(path: Path, out: Path, cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    cwd.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "cnnlab.cli", "study", "run", str(path), "--out", str(out), "-q",
                           *extra], cwd=cwd, capture_output=True, text=True, env={**os.environ, "CNNLAB_OFFLINE": "1"},
                          timeout=600)


# ---- import_user_modules ----------------------------------------------------------------------------------


def test_no_imports_imports_nothing_and_leaves_sys_path_alone(tmp_path):
    (tmp_path / "cnnlab_test_unlisted.py").write_text("raise SystemExit('imported')\n")
    path, modules = list(sys.path), set(sys.modules)
    assert import_user_modules([], [str(tmp_path)]) == []
    assert sys.path == path and set(sys.modules) == modules


def test_a_listed_module_is_loaded_from_its_file_once_and_sys_path_is_untouched(tmp_path, forget_imports):
    (tmp_path / "cnnlab_test_counted.py").write_text(
        f"open({str(tmp_path / 'count')!r}, 'a').write('x')\nVALUE = 41\n")
    path = list(sys.path)
    first = import_user_modules(["cnnlab_test_counted"], [str(tmp_path)])
    again = import_user_modules(["cnnlab_test_counted"], [str(tmp_path)])  # a local executor's cell, say
    assert first == again == [("cnnlab_test_counted", str((tmp_path / "cnnlab_test_counted.py").resolve()))]
    assert sys.modules["cnnlab_test_counted"].VALUE == 41
    assert (tmp_path / "count").read_text() == "x"  # executed once
    assert sys.path == path


def test_packages_and_dotted_names_load_from_the_folder(tmp_path, forget_imports):
    package = tmp_path / "cnnlab_test_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text("from . import helpers\nNAME = helpers.NAME\n")
    (package / "helpers.py").write_text("NAME = 'from the package'\n")
    imported = import_user_modules(["cnnlab_test_pkg.models"], [str(tmp_path)])
    assert imported == [("cnnlab_test_pkg.models", str((package / "models.py").resolve()))]
    assert sys.modules["cnnlab_test_pkg.models"].NAME == "from the package"


def test_a_name_not_in_the_folder_is_imported_from_the_installed_packages(tmp_path):
    import cnnlab.models.lenet5 as lenet5

    assert import_user_modules(["cnnlab.models.lenet5"], [str(tmp_path)]) == [("cnnlab.models.lenet5",
                                                                                lenet5.__file__)]


def test_a_listed_module_shadowing_an_imported_one_is_refused(tmp_path):
    (tmp_path / "json.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\n")
    real = sys.modules["json"]
    with pytest.raises(ConfigError, match=r"imports: 'json' in .* has the name of a module already imported .*"
                                          r"rename json\.py"):
        import_user_modules(["json"], [str(tmp_path)])
    assert sys.modules["json"] is real and not (tmp_path / "ran").exists()


@pytest.mark.parametrize("name", ["../evil", "my-models", "a..b", ""])
def test_a_name_that_is_not_a_module_name_is_refused(tmp_path, name):
    with pytest.raises(ConfigError, match="is not a module name"):
        import_user_modules([name], [str(tmp_path)])


# ---- studies: dry run, local run, process pool -------------------------------------------------------------


def test_a_dry_run_imports_nothing_beside_the_study_file(tmp_path, cli):
    path, sentinels = sent_folder(tmp_path, {"name": "sent", "base": TINY, "seeds": 1})
    before = list(sys.path)
    result = cli("study", "run", path, "--dry-run", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "imported user modules" not in result.stdout
    assert sorted(os.listdir(sentinels)) == [] and sys.path == before


def test_a_local_run_imports_nothing_beside_the_study_file(tmp_path, cli):
    path, sentinels = sent_folder(tmp_path, {"name": "sent", "base": TINY, "seeds": 1})
    before = list(sys.path)
    result = cli("study", "run", path, "--out", tmp_path / "out", "-q")
    assert result.exit_code == 0, result.output
    folder = StudyFolder(tmp_path / "out")
    assert [folder.cell_state(c) for c in folder.cells()] == ["finished"]
    assert sorted(os.listdir(sentinels)) == [] and sys.path == before


def test_the_process_pool_trains_the_listed_model_and_imports_nothing_else(tmp_path, cli, forget_imports):
    model = "cnnlab_test_tinynet"
    study = {"name": "sent", "imports": ["cnnlab_test_sent_models"], "seeds": 1,
             "base": {**TINY, "model": model}, "ablate": {"model.width": [4]}}
    path, sentinels = sent_folder(tmp_path, study, {"cnnlab_test_sent_models": own_model_source(model)})
    module_file = str((path.parent / "cnnlab_test_sent_models.py").resolve())
    before = list(sys.path)
    dry = cli("study", "run", path, "--dry-run", "--out", tmp_path / "out")
    assert dry.exit_code == 0, dry.output
    [line] = [line for line in dry.stdout.splitlines() if "imported user modules" in line]
    assert line == f"imported user modules: cnnlab_test_sent_models ({module_file})"
    assert sys.path == before

    # a fresh study process, from another folder, with two spawned workers that share nothing with it
    result = subprocess_study(path, tmp_path / "out", tmp_path / "elsewhere", "--executor", "process", "--workers", "2")
    assert result.returncode == 0, result.stderr
    folder = StudyFolder(tmp_path / "out")
    cells = folder.cells()
    assert sorted(c.config["model"]["width"] for c in cells) == [4, 8]
    assert all(folder.cell_state(c) == "finished" for c in cells)
    spec = json.loads((tmp_path / "out" / cells[0].name / "model.json").read_text())
    assert spec["impl"] == "user:cnnlab_test_sent_models:TinyNet"
    assert sorted(os.listdir(sentinels)) == []


def test_the_process_pool_imports_nothing_beside_a_study_without_imports(tmp_path):
    study = {"name": "sent", "base": TINY, "ablate": {"train.optimizer": ["sgd"]}, "seeds": 1}
    path, sentinels = sent_folder(tmp_path, study)
    result = subprocess_study(path, tmp_path / "out", tmp_path / "elsewhere", "--executor", "process", "--workers", "2")
    assert result.returncode == 0, result.stderr
    folder = StudyFolder(tmp_path / "out")
    assert [folder.cell_state(c) for c in folder.cells()] == ["finished", "finished"]
    assert sorted(os.listdir(sentinels)) == []


def test_a_listed_name_that_would_replace_an_installed_module_is_refused(tmp_path, cli):
    (tmp_path / "torch.py").write_text(f"open({str(tmp_path / 'pwned')!r}, 'w').close()\n")
    study = tmp_path / "study.yaml"
    study.write_text("name: shadow\nbase: {data: digits, model: lenet5}\nimports: [torch]\nseeds: 1\n")
    result = cli("study", "run", study, "--dry-run")
    assert result.exit_code == 2 and "has the name of" in result.stderr and "rename torch.py" in result.stderr
    assert not (tmp_path / "pwned").exists()
