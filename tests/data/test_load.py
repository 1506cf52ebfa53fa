"""The splits a run config describes (load_splits, configured_splits), the datasets of a family that are on
this machine (family_datasets), and a split as torch tensors."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from cnnlab.config import build_config
from cnnlab.data import (
    Dataset,
    Split,
    add_local,
    configured_splits,
    family_datasets,
    load_dataset,
    load_splits,
    prepare_splits,
)
from cnnlab.data.datasets import present_datasets
from cnnlab.errors import ConfigError, DataError, UnknownNameError


def _data(**values):
    return build_config({"data": {"name": "digits", **values}}).data


def _same_splits(a: Dataset, b: Dataset) -> None:
    assert list(a.splits) == list(b.splits)
    for name in a.splits:
        np.testing.assert_array_equal(a[name].labels, b[name].labels)
        np.testing.assert_array_equal(a[name].items, b[name].items)
        np.testing.assert_array_equal(a[name].images, b[name].images)
    assert a.notes == b.notes and a.official == b.official


# ---- load_splits / configured_splits -------------------------------------------------------------


@pytest.mark.parametrize("values", [{}, {"val": 200, "subset": 0.5, "split_seed": 3},
                                    {"carve_from": "train", "val": 0.2, "test": 100, "split_seed": 1}], ids=str)
def test_load_splits_is_prepare_splits_with_the_config_values(values):
    data = _data(**values)
    expected = prepare_splits(load_dataset("digits", download=False), val=data.val, carve_from=data.carve_from,
                              test=data.test, subset=data.subset, seed=data.split_seed)
    _same_splits(load_splits(data, download=False), expected)


def test_configured_splits_without_the_train_subset_keeps_val_and_test():
    data = _data(val=150, subset=300, split_seed=2)
    dataset = load_dataset("digits", download=False)
    full = configured_splits(dataset, data)
    whole_train = configured_splits(dataset, data, train_subset=False)
    assert len(full["train"]) == 300
    assert len(whole_train["train"]) == len(dataset["train"]) - 150
    for name in ("val", "test"):
        np.testing.assert_array_equal(full[name].items, whole_train[name].items)


def test_load_splits_names_the_config_keys_in_its_errors():
    with pytest.raises(ConfigError, match=r"^data\.subset \(--subset\) must be a count from 1 to"):
        load_splits(_data(subset=100_000), download=False)


def test_load_splits_of_a_missing_dataset_downloads_nothing_when_told():
    with pytest.raises(DataError, match="dataset 'kmnist' is not on this machine and downloading was not allowed"):
        load_splits(build_config({"data": {"name": "kmnist"}}).data, download=False)


# ---- family_datasets ----------------------------------------------------------------------------------


def test_family_datasets_loads_lazily_and_only_what_is_present():
    found = family_datasets("digits")
    assert inspect.isgenerator(found)  # one dataset in memory at a time
    ((name, dataset),) = list(found)
    assert name == "digits" and dataset.presence() == ["train: 1,437 images (complete)", "test: 360 images (complete)"]
    assert list(family_datasets("kmnist")) == []  # nothing of it on this machine, and nothing downloaded


def test_family_datasets_of_an_unknown_name_suggests_the_closest():
    with pytest.raises(UnknownNameError, match="did you mean 'emnist'"):
        list(family_datasets("emnst"))


@pytest.mark.realdata
def test_family_datasets_after_adding_mnist(shared_data):
    add_local("mnist", shared_data / "mnist")
    ((name, dataset),) = list(family_datasets("mnist"))
    assert name == "mnist"
    assert dataset.presence() == ["train: 60,000 images (complete)", "test: 10,000 images (complete)"]


@pytest.mark.realdata
def test_family_datasets_of_emnist_by_family_or_by_split(use_emnist_home):
    names = [name for name, _ in family_datasets("emnist")]
    assert names == present_datasets("emnist")
    assert "emnist-bymerge" in names and "emnist-byclass" not in names  # byclass: only its mapping file is here
    assert [name for name, _ in family_datasets("emnist-letters")] == names
    for name, dataset in family_datasets("emnist"):
        assert dataset.name == name


# ---- Split.to_torch -----------------------------------------------------------------------------------


def test_split_to_torch_keeps_uint8_images_and_int64_labels():
    images = np.arange(2 * 1 * 3 * 3, dtype=np.uint8).reshape(2, 1, 3, 3)
    x, y = Split(images[:, :, ::-1], np.array([1, 0])).to_torch()  # a non-contiguous view is copied
    assert str(x.dtype) == "torch.uint8" and tuple(x.shape) == (2, 1, 3, 3)
    assert str(y.dtype) == "torch.int64" and y.tolist() == [1, 0]
    np.testing.assert_array_equal(x.numpy(), images[:, :, ::-1])
