"""Named datasets on real data (EMNIST from ../shared/data, Debian's Fashion-MNIST, MNIST, scikit-learn's
digits): sizes, classes, orientation, label maps, the parse cache, and stratified splits."""

from __future__ import annotations

import json
import string

import numpy as np
import pytest

from cnnlab.data import (
    DATASETS,
    Dataset,
    Split,
    add_local,
    carve_splits,
    channel_stats,
    data_home,
    emnist_label_map,
    load_dataset,
    stratified_split,
    stratified_subset,
)
from cnnlab.data.emnist import SPLITS, builtin_mapping, read_mapping
from cnnlab.data.idx import write_idx
from cnnlab.data.split import stratified_indices
from cnnlab.errors import ConfigError

pytestmark = pytest.mark.realdata

BYMERGE_NAMES = list(string.digits) + list(string.ascii_uppercase) + list("abdefghnqrt")


# ---- EMNIST --------------------------------------------------------------------------------------


def test_bymerge_test_is_complete_with_47_classes(use_emnist_home):
    dataset = load_dataset("emnist-bymerge", download=False)
    test = dataset["test"]
    assert len(test) == 116_323
    assert test.images.shape == (116_323, 1, 28, 28)
    assert test.images.dtype == np.uint8 and test.labels.dtype == np.int64
    assert dataset.num_classes == 47
    assert list(dataset.classes) == BYMERGE_NAMES
    assert set(np.unique(test.labels)) == set(range(47))  # every class occurs in the test file
    assert "train" not in dataset.splits
    assert dataset.presence() == ["train: 0 of 697,932 images", "test: 116,323 images (complete)"]


def test_byclass_names_come_from_the_builtin_mapping():
    spec = DATASETS.get("emnist-byclass")
    assert len(spec.classes) == 62
    assert list(spec.classes) == list(string.digits + string.ascii_uppercase + string.ascii_lowercase)


def test_letters_classes_labels_and_presence(use_emnist_home):
    dataset = load_dataset("emnist-letters", download=False)
    assert dataset.num_classes == 26
    assert dataset.classes[0] == "A/a" and dataset.classes[25] == "Z/z"
    assert all(name == f"{c}/{c.lower()}" for name, c in zip(dataset.classes, string.ascii_uppercase))
    test = dataset["test"]
    assert len(test) == 14_800
    assert test.items[0] == 0 and test.items[-1] == 14_799
    np.testing.assert_array_equal(test.items, np.arange(14_800))
    # NIST's letters labels run 1..26; cnnlab's from 0, so the slice (classes a..s) starts at 0 and ends at 18
    assert test.labels.min() == 0 and test.labels.max() == 18
    assert dataset.presence() == ["train: 0 of 124,800 images", "test: 14,800 of 20,800 images (items 0–14,799)"]


def test_balanced_train_slice_keeps_its_official_positions(use_emnist_home):
    dataset = load_dataset("emnist-balanced", download=False)
    train = dataset["train"]
    assert len(train) == 9_120
    np.testing.assert_array_equal(train.items, np.arange(103_680, 112_800))
    assert len(dataset["test"]) == 304
    assert set(np.unique(dataset["test"].labels)) == set(range(47))  # README: the test slice has all 47 classes
    assert dataset.presence()[0] == "train: 9,120 of 112,800 images (items 103,680–112,799)"


def _class_means(split: Split, classes: int) -> np.ndarray:
    return np.stack([split.images[split.labels == c, 0].astype(np.float64).mean(axis=0) for c in range(classes)])


def _mean_correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([np.corrcoef(x.ravel(), y.ravel())[0, 1] for x, y in zip(a, b)]))


def test_emnist_images_are_loaded_upright(use_emnist_home, isolated_data_home, shared_data, monkeypatch):
    """NIST stores EMNIST transposed; as loaded, its digits must look like MNIST's (which are upright)."""
    emnist_test = load_dataset("emnist-mnist", download=False)["test"]
    monkeypatch.setenv("CNNLAB_DATA", str(isolated_data_home))  # keep MNIST out of the shared EMNIST home
    add_local("mnist", shared_data / "mnist")
    mnist_test = load_dataset("mnist", download=False)["test"]

    emnist_means = _class_means(emnist_test, 10)
    mnist_means = _class_means(mnist_test, 10)
    as_loaded = _mean_correlation(emnist_means, mnist_means)
    transposed = _mean_correlation(emnist_means.transpose(0, 2, 1), mnist_means)
    assert as_loaded > transposed + 0.2, (as_loaded, transposed)
    assert as_loaded > 0.7


@pytest.mark.parametrize("split", SPLITS)
def test_builtin_mappings_equal_the_official_files(split, shared_data):
    official = read_mapping(shared_data / "emnist" / f"emnist-{split}-mapping.txt")
    assert builtin_mapping(split) == official


def test_label_map_byclass_to_bymerge():
    byclass, bymerge = builtin_mapping("byclass"), builtin_mapping("bymerge")
    mapping = emnist_label_map("byclass", "bymerge")
    assert mapping.shape == (62,)
    target = {name: bymerge[mapping[i]] if mapping[i] >= 0 else None for i, name in enumerate(byclass)}
    assert target["c"] == "C"  # merged look-alike
    assert target["o"] == "O" and target["z"] == "Z"
    assert target["a"] == "a"  # kept distinct
    assert target["C"] == "C" and target["A"] == "A"
    assert all(target[d] == d for d in string.digits)
    assert (mapping >= 0).all()  # byclass → bymerge loses nothing


@pytest.mark.parametrize("source", ["byclass", "bymerge", "balanced", "digits"])
def test_label_map_to_letters_folds_case_and_drops_digits(source):
    names = builtin_mapping(source)
    letters = builtin_mapping("letters")
    mapping = emnist_label_map(source, "letters")
    for i, name in enumerate(names):
        if name in string.digits:
            assert mapping[i] == -1, name
        else:
            assert letters[mapping[i]] == f"{name.upper()}/{name.lower()}", name


def test_label_map_letters_to_bymerge_is_ambiguous_for_unmerged_letters():
    letters, bymerge = builtin_mapping("letters"), builtin_mapping("bymerge")
    mapping = emnist_label_map("letters", "bymerge")
    assert mapping[letters.index("A/a")] == -1  # 'A' and 'a' are separate bymerge classes
    assert mapping[letters.index("B/b")] == -1
    assert bymerge[mapping[letters.index("C/c")]] == "C"
    assert bymerge[mapping[letters.index("Z/z")]] == "Z"
    merged = {f"{c.upper()}/{c}" for c in "cijklmopsuvwxyz"}
    assert {letters[i] for i in np.flatnonzero(mapping >= 0)} == merged


def test_label_map_byclass_to_digits_keeps_only_digits():
    byclass = builtin_mapping("byclass")
    mapping = emnist_label_map("byclass", "digits")
    np.testing.assert_array_equal(mapping[:10], np.arange(10))
    assert (mapping[10:] == -1).all()
    assert [byclass[i] for i in range(10)] == list(string.digits)


# ---- Fashion-MNIST, MNIST, digits -----------------------------------------------------------------


def test_fashion_mnist_from_the_system_copy(fashion_dir):
    dataset = load_dataset("fashion-mnist", download=False)
    assert len(dataset["train"]) == 60_000 and len(dataset["test"]) == 10_000
    assert dataset.classes == ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                               "Bag", "Ankle boot")
    assert np.bincount(dataset["train"].labels).tolist() == [6_000] * 10
    (mean,), (std,) = channel_stats(dataset["train"].images)
    assert mean == pytest.approx(0.2860, abs=0.001)
    assert std == pytest.approx(0.3530, abs=0.001)
    assert dataset.flips_allowed
    # read in place from the system folder, not copied into the data home
    assert not (data_home() / "raw" / "fashion-mnist").exists()


def test_mnist_added_from_local_files(shared_data):
    added = add_local("mnist", shared_data / "mnist")
    assert sorted(p.name for p in added) == sorted(p.name for p in (shared_data / "mnist").glob("*.gz"))
    assert all(p.parent == data_home() / "raw" / "mnist" for p in added)
    dataset = load_dataset("mnist", download=False)
    assert len(dataset["train"]) == 60_000 and len(dataset["test"]) == 10_000
    assert dataset.presence() == ["train: 60,000 images (complete)", "test: 10,000 images (complete)"]
    (mean,), (std,) = channel_stats(dataset["train"].images)
    assert mean == pytest.approx(0.1307, abs=0.001)
    assert std == pytest.approx(0.3081, abs=0.001)


def test_digits_sizes_scale_and_split(tmp_path, monkeypatch):
    dataset = load_dataset("digits", download=False)
    train, test = dataset["train"], dataset["test"]
    assert (len(train), len(test)) == (1_437, 360)
    assert train.images.shape[1:] == (1, 8, 8)
    assert train.images.dtype == np.uint8
    assert train.images.max() == 255 and train.images.min() == 0
    # the split covers all 1,797 images once, and is stratified: each class keeps ~20 % in test
    assert not set(train.items) & set(test.items)
    assert sorted({*train.items, *test.items}) == list(range(1_797))
    total = np.bincount(train.labels, minlength=10) + np.bincount(test.labels, minlength=10)
    assert np.all(np.abs(np.bincount(test.labels, minlength=10) - 0.2 * total) <= 1)
    # deterministic: a fresh data home (no cache) draws the same split
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "other-home"))
    again = load_dataset("digits", download=False)
    np.testing.assert_array_equal(again["test"].items, test.items)
    np.testing.assert_array_equal(again["train"].images, train.images)


# ---- the parse cache -------------------------------------------------------------------------------


def test_second_load_reads_the_cache():
    first = load_dataset("digits", download=False)
    folder = data_home() / "arrays" / "digits"
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["classes"] == list(string.digits)
    assert set(meta["arrays"]) >= {"train.images", "train.labels", "test.images", "test.labels"}

    second = load_dataset("digits", download=False)
    for name in ("train", "test"):
        np.testing.assert_array_equal(second[name].images, first[name].images)
        np.testing.assert_array_equal(second[name].labels, first[name].labels)
    assert second.classes == first.classes and second.notes == first.notes

    # proof that the second load came from the cache, not from a new parse: a marked cache is what loads
    marked = first["test"].images.copy()
    marked[0] = 7
    np.save(folder / "test.images.npy", marked)
    assert (load_dataset("digits", download=False)["test"].images[0] == 7).all()


def test_changed_source_files_rebuild_the_cache(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 5, 5), dtype=np.uint8)
    write_idx(folder / "train-images-idx3-ubyte", images)
    write_idx(folder / "train-labels-idx1-ubyte", np.arange(20, dtype=np.uint8) % 4)
    first = load_dataset(f"idx:{folder}", download=False)
    assert len(first["train"]) == 20
    assert len(list((data_home() / "arrays").glob("idx-mine-*/meta.json"))) == 1

    write_idx(folder / "train-images-idx3-ubyte", images[:12])
    write_idx(folder / "train-labels-idx1-ubyte", np.arange(12, dtype=np.uint8) % 4)
    second = load_dataset(f"idx:{folder}", download=False)
    assert len(second["train"]) == 12
    np.testing.assert_array_equal(second["train"].images[:, 0], images[:12])


# ---- stratified splits -----------------------------------------------------------------------------


def _synthetic(counts: list[int], seed: int = 0) -> Dataset:
    """Images that carry their own position (so subsets can be traced) and shuffled balanced labels."""
    labels = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(seed).shuffle(labels)
    n = len(labels)
    images = np.zeros((n, 1, 1, 4), dtype=np.uint8)
    images[:, 0, 0, :] = np.arange(n, dtype="<u4").view(np.uint8).reshape(n, 4)
    return Dataset("synthetic", tuple(f"c{i}" for i in range(len(counts))), {"train": Split(images, labels)})


def _positions(split: Split) -> np.ndarray:
    return split.images[:, 0, 0, :].copy().view("<u4").ravel()


@pytest.fixture(scope="module")
def study() -> Dataset:
    """The shape of the reference study: EMNIST balanced train, 47 classes × 2,400 = 112,800."""
    return _synthetic([2_400] * 47)


@pytest.mark.parametrize("val", [18_800, 1 / 6], ids=["count", "fraction"])
def test_stratified_split_reproduces_the_study_shape(study, val):
    split = stratified_split(study, val=val, seed=0)
    train, held = split["train"], split["val"]
    assert (len(train), len(held)) == (94_000, 18_800)
    assert np.bincount(train.labels, minlength=47).tolist() == [2_000] * 47
    assert np.bincount(held.labels, minlength=47).tolist() == [400] * 47
    # disjoint and covering, and items name positions in the source split
    assert not np.intersect1d(train.items, held.items).size
    np.testing.assert_array_equal(np.sort(np.concatenate([train.items, held.items])), np.arange(112_800))
    np.testing.assert_array_equal(_positions(held), held.items)
    np.testing.assert_array_equal(held.labels, study["train"].labels[held.items])
    assert split.notes[-1] == "val: 18,800 stratified from train (seed 0)"
    assert len(study["train"]) == 112_800  # the input is not modified


def test_stratified_split_is_seeded(study):
    a = stratified_split(study, val=18_800, seed=3)["val"].items
    b = stratified_split(study, val=18_800, seed=3)["val"].items
    c = stratified_split(study, val=18_800, seed=4)["val"].items
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_stratified_split_keeps_proportions_of_imbalanced_classes():
    dataset = _synthetic([600, 300, 100])
    held = stratified_split(dataset, val=0.2, seed=1)["val"]
    assert np.bincount(held.labels).tolist() == [120, 60, 20]


def test_stratified_subset_of_a_class_sorted_split_has_every_class(use_emnist_home):
    test = load_dataset("emnist-letters", download=False)["test"]
    assert (np.diff(test.labels) >= 0).all()  # sorted by class: a head slice would hold only 'A/a'
    assert set(test.labels[:190]) == {0}
    subset = stratified_subset(test, 190, seed=0)
    assert len(subset) == 190
    assert set(subset.labels) == set(test.labels) == set(range(19))
    counts = np.bincount(subset.labels)
    assert counts[:18].min() >= 10 and counts[18] in (5, 6)  # 's' has half as many images in the slice
    np.testing.assert_array_equal(subset.labels, test.labels[subset.items])  # items are official positions


def test_carve_splits_from_bymerge_test(use_emnist_home):
    dataset = load_dataset("emnist-bymerge", download=False)
    carved = carve_splits(dataset, source="test", val=0.1, test=0.1, seed=0)
    parts = {name: carved[name] for name in ("train", "val", "test")}
    assert {n: len(p) for n, p in parts.items()} == {"train": 93_058, "val": 11_632, "test": 11_633}
    all_items = np.concatenate([p.items for p in parts.values()])
    assert len(np.unique(all_items)) == len(all_items) == 116_323
    np.testing.assert_array_equal(np.sort(all_items), np.arange(116_323))
    source = dataset["test"]
    for part in parts.values():
        np.testing.assert_array_equal(part.labels, source.labels[part.items])
        assert set(part.labels) == set(range(47))
    np.testing.assert_array_equal(parts["val"].images[:50], source.images[parts["val"].items[:50]])
    assert carved.official == {"train": 93_058, "val": 11_632, "test": 11_633}
    assert carved.presence()[0] == "train: 93,058 images (complete)"


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, "The 'size' parameter of stratified_indices must be a count between 1 and 99. Got 0 instead."),
        (-3, "The 'size' parameter of stratified_indices must be a count between 1 and 99. Got -3 instead."),
        (100, "The 'size' parameter of stratified_indices must be a count between 1 and 99. Got 100 instead."),
        (250, "The 'size' parameter of stratified_indices must be a count between 1 and 99. Got 250 instead."),
        (1.5, "The 'size' parameter of stratified_indices must be a fraction in (0, 1) or a count. Got 1.5 instead."),
        (0.0, "The 'size' parameter of stratified_indices must be a fraction in (0, 1) or a count. Got 0.0 instead."),
        (1.0, "The 'size' parameter of stratified_indices must be a fraction in (0, 1) or a count. Got 1.0 instead."),
        ("0.2", "The 'size' parameter of stratified_indices must be a fraction in (0, 1) or a count. "
                "Got '0.2' instead."),
        (True, "The 'size' parameter of stratified_indices must be a fraction in (0, 1) or a count. Got True instead."),
    ],
)
def test_invalid_sizes_raise_config_error(size, expected):
    labels = np.repeat(np.arange(4), 25)
    with pytest.raises(ConfigError) as info:
        stratified_indices(labels, size)
    assert str(info.value) == expected


def test_invalid_sizes_name_the_callers_parameter():
    dataset = _synthetic([50, 50])
    with pytest.raises(ConfigError, match=r"^The 'val' parameter of stratified_split must be "
                       r"a count between 1 and 99\. Got 100"):
        stratified_split(dataset, val=100)
    with pytest.raises(ConfigError, match=r"^The 'test' parameter of carve_splits must be "
                       r"a fraction .* Got 1\.5 instead"):
        carve_splits(dataset, source="train", test=1.5)
    with pytest.raises(ConfigError, match=r"^The 'val' parameter of carve_splits must be a count"):
        carve_splits(dataset, source="train", val=0, test=10)
    # a bad fraction is reported as given, not as the count it would become
    with pytest.raises(ConfigError, match=r"^The 'val' parameter of carve_splits must be "
                       r"a fraction .* Got 1\.5 instead"):
        carve_splits(dataset, source="train", val=1.5)
    with pytest.raises(ConfigError, match=r"^The 'val' parameter of carve_splits must be "
                       r"a fraction .* Got '0\.2' instead"):
        carve_splits(dataset, source="train", val="0.2")
    # a count that fits the split but not what is left after taking the test set
    with pytest.raises(ConfigError, match=r"^The 'val' parameter of carve_splits must be "
                       r"a count between 1 and 89\. Got 95"):
        carve_splits(dataset, source="train", val=95, test=10)
    with pytest.raises(ConfigError, match=r"^The 'size' parameter of stratified_subset must be a count"):
        stratified_subset(dataset["train"], -3)
