"""Shared fixtures: an isolated data home per test, offline by default, and the real datasets."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from realdata import FASHION_DIR, SHARED_DATA, need


@pytest.fixture(autouse=True)
def isolated_data_home(tmp_path_factory, monkeypatch):
    """Every test gets its own empty data home and no network unless it asks for one."""
    home = tmp_path_factory.mktemp("cnnlab-data")
    monkeypatch.setenv("CNNLAB_DATA", str(home))
    monkeypatch.setenv("CNNLAB_OFFLINE", "1")
    monkeypatch.delenv("CNNLAB_MIRROR", raising=False)
    return home


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """Training sets torch's thread count (train.threads); put the process's back after each test."""
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    yield
    if threads is not None:
        torch.set_num_threads(threads)


@pytest.fixture
def forget_imports(monkeypatch):
    """Put sys.path back, and forget the cnnlab_test_* modules and the models a test loads into this process."""
    from cnnlab.models import MODELS

    monkeypatch.setattr(sys, "path", list(sys.path))
    modules, models = set(sys.modules), set(MODELS.names())
    yield
    for name in set(sys.modules) - modules:
        if name.startswith("cnnlab_test_"):
            del sys.modules[name]
    for name in set(MODELS.names()) - models:
        del MODELS._items[name]


@pytest.fixture
def weights_home(tmp_path, monkeypatch) -> Path:
    """An empty folder of pretrained weights (CNNLAB_WEIGHTS)."""
    monkeypatch.setenv("CNNLAB_WEIGHTS", str(tmp_path / "weights"))
    return tmp_path / "weights"


@pytest.fixture
def shared_data() -> Path:
    return need(SHARED_DATA, "../shared/data from the project's workplace")


@pytest.fixture
def fashion_dir() -> Path:
    return need(FASHION_DIR / "train-images-idx3-ubyte.gz", "apt-get install dataset-fashion-mnist").parent


@pytest.fixture(scope="session")
def emnist_home(tmp_path_factory) -> Path:
    """A data home holding every real EMNIST file of ../shared/data (added once per session)."""
    need(SHARED_DATA / "emnist", "../shared/data/emnist")
    home = tmp_path_factory.mktemp("emnist-home")
    raw = home / "raw" / "emnist"
    raw.mkdir(parents=True)
    for path in (SHARED_DATA / "emnist").rglob("*"):
        if path.is_file() and path.name.startswith("emnist-"):
            shutil.copyfile(path, raw / path.name)
    return home


@pytest.fixture
def use_emnist_home(emnist_home, monkeypatch) -> Path:
    monkeypatch.setenv("CNNLAB_DATA", str(emnist_home))
    return emnist_home


@pytest.fixture
def cli():
    """cli("train", "--data", "digits", ...) -> click's Result (exit_code, stdout, stderr)."""
    from cli_helpers import invoke_cli

    return invoke_cli
