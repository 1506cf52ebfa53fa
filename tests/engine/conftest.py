"""Shared fixtures of the engine tests."""

from __future__ import annotations

import pytest

from cnnlab.data import load_dataset, prepare_splits


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:  # module scope: isolate the data home here too
        patch.setenv("CNNLAB_DATA", str(tmp_path_factory.mktemp("digits-home")))
        patch.setenv("CNNLAB_OFFLINE", "1")
        dataset = prepare_splits(load_dataset("digits"), val=0.1)
    train, val = dataset["train"], dataset["val"]
    return (train.images, train.labels), (val.images, val.labels)
