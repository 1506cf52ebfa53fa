"""Where the real datasets are, and `need`: the path, or a skip (a failure under CI, where they must be).
A module of its own, so tests import it by name (`conftest` is ambiguous: tests/engine has one too)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CNNLAB_SHARED_DATA", REPO.parent / "shared" / "data"))
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def need(path: Path, why: str = "real data") -> Path:
    """The real-data path, or a skip (a failure under CI=true, where the data must be there)."""
    if path.exists():
        return path
    message = f"real data missing: {path} ({why})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
