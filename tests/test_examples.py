"""The example notebooks in examples/: executed for real (a Jupyter kernel, small parameters injected into their
parameters cell, the real EMNIST and CIFAR-10 files), and checked to be committed without outputs."""

from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path

import pytest
from realdata import REPO, SHARED_DATA, need

EXAMPLES = REPO / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
CIFAR_ARCHIVE = SHARED_DATA / "cifar10" / "cifar-10-python-subset.tar.gz"

# Small enough for both notebooks to run in under two minutes on two CPU cores.
EMNIST_PARAMETERS = {
    "DATA": "emnist-balanced",  # of its files here: 9,120 training images and 304 test images, all 47 classes
    "TRAIN_SUBSET": 1500,
    "VAL": 300,
    "EPOCHS": 1,
    "BATCH_SIZE": 128,
    "SEEDS": 2,
    "ABLATE": {"model.activation": ["relu"]},
    "DOWNLOAD": False,
    "OUT": "emnist-study",
}
TRANSFER_PARAMETERS = {
    "DATA": "cifar10",
    "TRAIN_SUBSET": 100,  # ten images per class: these runs check the machinery, not the accuracy
    "VAL": 50,
    "TEST": 50,
    "TARGET_SIZE": 32,  # a quarter of the backbone's work at 64 px; the accuracy does not matter here
    "RANDOM_INIT_FINETUNE": "frozen",
    "EPOCHS": 1,
    "BATCH_SIZE": 128,
    "SEEDS": 2,
    "DOWNLOAD": False,
    "OUT": "transfer-study",
}


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _parameters_cell(cells) -> dict:
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "a notebook has exactly one cell tagged 'parameters'"
    return tagged[0]


def _source(cell) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def _assigned_names(source: str) -> list[str]:
    return [target.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)]


def test_there_are_the_two_example_notebooks():
    assert [p.name for p in NOTEBOOKS] == ["emnist_study.ipynb", "transfer_study.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebooks_are_stripped(path):
    """No outputs, no execution counts, no metadata beyond the kernel's name and the parameters tag."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    assert notebook["nbformat"] == 4
    assert set(notebook["metadata"]) <= {"kernelspec", "language_info"}
    for cell in notebook["cells"]:
        assert set(cell.get("metadata", {})) <= {"tags"}, (path.name, cell.get("id"), cell["metadata"])
        assert set(cell["metadata"].get("tags", [])) <= {"parameters"}
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{path.name}: cell {cell.get('id')} has outputs; clear them to commit"
            assert cell["execution_count"] is None, f"{path.name}: cell {cell.get('id')} has an execution count"
    _parameters_cell(notebook["cells"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_use_only_the_public_api(path):
    code = "\n".join(_source(c) for c in _cells(path) if c["cell_type"] == "code")
    assert "import cnnlab as cl" in code
    assert not re.search(r"from\s+cnnlab\b|import\s+cnnlab\.|cnnlab\.\w", code), "only `import cnnlab as cl`"
    assert not re.search(r"\bcl\._", code), "no private names of the API"


@pytest.mark.parametrize(("name", "parameters"), [("emnist_study.ipynb", EMNIST_PARAMETERS),
                                                  ("transfer_study.ipynb", TRANSFER_PARAMETERS)])
def test_the_tests_set_every_parameter_of_the_notebook(name, parameters):
    """The injected cell replaces the notebook's parameters cell, so it must set the same names."""
    assert _assigned_names(_source(_parameters_cell(_cells(EXAMPLES / name)))) == list(parameters)


def _jupyter():
    """nbclient and nbformat (the `test` extra; a skip without them, a failure under CI)."""
    if os.environ.get("CI", "").lower() == "true":
        import ipykernel  # noqa: F401
        import nbclient
        import nbformat
    else:
        nbclient = pytest.importorskip("nbclient", reason="pip install -e '.[test]' (nbclient, nbformat, ipykernel)")
        nbformat = pytest.importorskip("nbformat")
        pytest.importorskip("ipykernel")
    return nbclient, nbformat


def _execute(name: str, parameters: dict, workdir: Path, data_home: Path):
    """The notebook run in a fresh python3 kernel in `workdir`, its parameters cell replaced by `parameters`;
    the executed copy is kept in `workdir` for a failure's inspection."""
    nbclient, nbformat = _jupyter()
    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = "\n".join(f"{key} = {value!r}" for key, value in parameters.items())
    env = {**os.environ, "CNNLAB_DATA": str(data_home), "CNNLAB_OFFLINE": "1"}
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(workdir)}})
    try:
        client.execute(env=env)
    finally:
        nbformat.write(notebook, workdir / f"executed-{name}")
    return notebook


def _outputs(notebook) -> list[dict]:
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


def _assert_ran_cleanly(notebook) -> None:
    outputs = _outputs(notebook)
    assert not [o for o in outputs if o.output_type == "error"]
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "every code cell ran"
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) >= 3, "the figures show in the notebook, not only as <Figure ...> text"


@pytest.mark.notebooks
def test_emnist_notebook_without_the_files_says_how_to_get_them(isolated_data_home, tmp_path):
    nbclient, _ = _jupyter()
    with pytest.raises(nbclient.exceptions.CellExecutionError) as stopped:
        _execute("emnist_study.ipynb", EMNIST_PARAMETERS, tmp_path, isolated_data_home)
    message = str(stopped.value)
    assert "DataError" in message and "is not on this machine" in message
    assert "cnnlab data add emnist --from gzip.zip" in message and "DOWNLOAD = True" in message
    assert not (tmp_path / EMNIST_PARAMETERS["OUT"]).exists()  # it stopped before training anything


@pytest.mark.notebooks
@pytest.mark.realdata
def test_emnist_notebook_runs_the_whole_study(use_emnist_home, tmp_path):
    import cnnlab as cl

    notebook = _execute("emnist_study.ipynb", EMNIST_PARAMETERS, tmp_path, use_emnist_home)
    _assert_ran_cleanly(notebook)
    out = tmp_path / EMNIST_PARAMETERS["OUT"]

    baseline = cl.Run(out / "baseline")
    assert baseline.status == "finished"
    assert baseline.summary.model == "lenet5" and baseline.summary.data == "emnist-balanced"
    assert baseline.summary.test.accuracy > 1.5 / 47  # above chance after one epoch on 1,500 images
    assert len(baseline.predictions("test").predictions.labels) == 304

    study = cl.Study(out / "study")
    assert dict(study.counts) == {"finished": 4}  # base and relu, 2 seeds each
    assert sorted(set(study.results["value"])) == ["base", "relu"]
    assert sorted(p.name for p in (out / "selection").glob("*.png"))  # the Pareto fronts
    assert (out / "report" / "report.html").stat().st_size > 0
    assert (out / "report" / "report.md").read_text(encoding="utf-8").strip()
    printed = "".join(o.get("text", "") for o in _outputs(notebook) if o.output_type == "stream")
    assert "significant at 0.05" in printed  # the comparisons' verdicts were printed
    assert "selected:" in printed


@pytest.mark.notebooks
@pytest.mark.realdata
def test_transfer_notebook_runs_the_study(isolated_data_home, tmp_path):
    import cnnlab as cl
    from cnnlab.data import add_local

    add_local("cifar10", need(CIFAR_ARCHIVE, "../shared/data/cifar10"))  # as `cnnlab data add cifar10 --from`
    notebook = _execute("transfer_study.ipynb", TRANSFER_PARAMETERS, tmp_path, isolated_data_home)
    _assert_ran_cleanly(notebook)
    out = tmp_path / TRANSFER_PARAMETERS["OUT"]

    study = cl.Study(out / "study")
    assert dict(study.counts) == {"finished": 6}  # frozen, last:1, random init; 2 seeds each
    results = study.results.set_index(["value", "seed"])
    frozen, tuned = results.loc[("base", 0)], results.loc[("last_1", 0)]
    assert frozen["trainable_params"] < tuned["trainable_params"] < tuned["params"]
    assert any((isolated_data_home / "features").rglob("*")), "the frozen backbone's features were cached"
    assert (out / "report" / "report.html").stat().st_size > 0
