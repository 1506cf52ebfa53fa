"""Exploration: image hashes, duplicates and overlaps, dataset_info and describe_dataset, and the two figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cnnlab.data import (  # noqa: E402
    Dataset,
    Split,
    class_histogram,
    dataset_info,
    describe_dataset,
    image_hashes,
    load_dataset,
    sample_grid,
)
from cnnlab.data.datasets import present_datasets  # noqa: E402
from cnnlab.data.explore import duplicates_within, overlap  # noqa: E402
from cnnlab.errors import ConfigError  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _random_images(n: int, shape=(1, 28, 28), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


# ---- hashes, duplicates, overlap -------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 3, 3), (1, 8, 8)], ids=str)
def test_hashes_equal_for_equal_images_and_differ_for_one_pixel(shape):
    images = _random_images(50, shape)
    hashes = image_hashes(images)
    assert hashes.shape == (50,) and hashes.dtype == np.uint64
    assert len(np.unique(hashes)) == 50
    np.testing.assert_array_equal(image_hashes(images.copy()), hashes)  # a copy hashes the same
    changed = images.copy()
    changed[:, 0, shape[1] - 1, shape[2] - 1] ^= 1  # the last pixel: the padded word for odd sizes
    assert not np.isin(image_hashes(changed), hashes).any()
    single = images[7:8].copy()
    single[0, -1, 0, 0] += 1
    assert image_hashes(single)[0] != hashes[7]


def test_hashes_of_non_contiguous_views_equal_those_of_copies():
    images = _random_images(10, (1, 28, 28))
    upright = images.transpose(0, 1, 3, 2)
    np.testing.assert_array_equal(image_hashes(upright), image_hashes(np.ascontiguousarray(upright)))
    assert not np.array_equal(image_hashes(upright), image_hashes(images))


def test_hashes_of_an_empty_split():
    """Regression: an empty split (allowed by Split) used to crash `reshape(0, -1)`."""
    assert image_hashes(np.zeros((0, 1, 28, 28), np.uint8)).shape == (0,)


def test_duplicates_within_and_overlap():
    images = _random_images(10)
    with_repeats = np.concatenate([images, images[[2, 2, 5]]])  # image 2 three times, 5 twice
    hashes = image_hashes(with_repeats)
    assert duplicates_within(hashes) == 3
    assert duplicates_within(image_hashes(images)) == 0

    other = np.concatenate([images[[1, 5]], _random_images(4, seed=1)])
    assert overlap(image_hashes(other), image_hashes(images)) == 2
    assert overlap(image_hashes(images), image_hashes(other)) == 2
    # every copy in `a` counts
    assert overlap(hashes, image_hashes(images[[2]])) == 3
    assert overlap(image_hashes(_random_images(5, seed=2)), image_hashes(images)) == 0


# ---- dataset_info ----------------------------------------------------------------------------------


@pytest.fixture
def small() -> Dataset:
    """3 classes, train counts 6 / 2 / 4 with one duplicate image; test shares 2 images with train."""
    images = _random_images(12, (1, 4, 4), seed=3)
    images[11] = images[0]  # duplicate within train
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    test_images = np.concatenate([images[[3, 8]], _random_images(3, (1, 4, 4), seed=4)])
    test_labels = np.array([0, 2, 1, 1, 1])
    return Dataset("tiny", ("cat", "dog", "eel"), {"train": Split(images, labels), "test": Split(test_images, test_labels)},
                   official={"train": 12, "test": 10})


def test_dataset_info_on_a_small_dataset(small):
    info = dataset_info(small)
    assert info.name == "tiny" and info.classes == ("cat", "dog", "eel")
    assert info.image_shape == (1, 4, 4)
    train, test = info.splits
    assert (train.name, train.size, train.official) == ("train", 12, 12)
    assert train.counts.tolist() == [6, 2, 4]
    assert test.counts.tolist() == [1, 3, 1]
    assert (train.duplicates, test.duplicates) == (1, 0)
    assert info.train_test_overlap == 2
    assert info.reference is train
    assert info.imbalance == pytest.approx(3.0)
    rarest, commonest = info.extremes(k=2)
    assert rarest == [("dog", 2), ("eel", 4)]
    assert commonest == [("cat", 6), ("eel", 4)]
    expected_mean = small["train"].images.mean() / 255
    assert train.mean[0] == pytest.approx(expected_mean)
    assert train.std[0] == pytest.approx(small["train"].images.std() / 255)
    assert info.presence == ["train: 12 images (complete)", "test: 5 of 10 images"]
    assert info.cross_overlaps == []


def test_dataset_info_imbalance_ignores_absent_classes_and_uses_train(small):
    labels = small["train"].labels.copy()
    labels[labels == 1] = 0  # class 'dog' disappears from train: 8 / 0 / 4
    dataset = small.replace(splits={**small.splits, "train": Split(small["train"].images, labels)})
    info = dataset_info(dataset)
    assert info.imbalance == pytest.approx(2.0)  # 8 / 4, not 8 / 0
    assert info.extremes(k=1)[0] == [("dog", 0)]


def test_dataset_info_cross_overlaps(small):
    other = Dataset("other", ("x",), {"test": Split(small["train"].images[[0, 1, 2]], np.zeros(3, np.int64))})
    info = dataset_info(small, {"other": other})
    assert ("train", "other", "test", 4, 12) in info.cross_overlaps  # image 0 is in train twice
    assert ("test", "other", "test", 0, 5) in info.cross_overlaps
    assert len(info.cross_overlaps) == 2


def test_dataset_info_without_test_has_no_train_test_overlap(small):
    info = dataset_info(small.replace(splits={"train": small["train"]}))
    assert info.train_test_overlap is None


@pytest.mark.realdata
def test_emnist_balanced_overlaps_bymerge_test(use_emnist_home):
    """NIST drew balanced from byclass/bymerge's pooled images without respecting their split, so part of
    balanced (train and test alike) is in bymerge's test set; the README measures ~14 %."""
    balanced = load_dataset("emnist-balanced", download=False)
    bymerge = load_dataset("emnist-bymerge", download=False)
    info = dataset_info(balanced, {"emnist-bymerge": bymerge})
    cross = {(mine, other, theirs): (count, total) for mine, other, theirs, count, total in info.cross_overlaps}
    count, total = cross[("test", "emnist-bymerge", "test")]
    assert total == 304
    assert 0.08 * 304 <= count <= 0.20 * 304, count
    train_count, train_total = cross[("train", "emnist-bymerge", "test")]
    assert train_total == 9_120
    assert 0.05 * 9_120 <= train_count <= 0.25 * 9_120, train_count
    assert info.train_test_overlap == 0  # balanced's own train and test slices share nothing


# ---- describe_dataset ------------------------------------------------------------------------------


def test_describe_dataset_of_a_dataset_without_siblings():
    info = describe_dataset("digits", download=False)
    expected = dataset_info(load_dataset("digits", download=False))
    assert (info.name, info.presence, info.train_test_overlap) == (expected.name, expected.presence,
                                                                   expected.train_test_overlap)
    assert [s.counts.tolist() for s in info.splits] == [s.counts.tolist() for s in expected.splits]
    assert info.cross_overlaps == []


@pytest.mark.realdata
def test_describe_dataset_compares_an_emnist_split_with_the_others_here(use_emnist_home):
    info = describe_dataset("emnist-balanced", download=False)
    compared = {other for _, other, _, _, _ in info.cross_overlaps}
    assert compared == set(present_datasets("emnist")) - {"emnist-balanced"}
    assert "emnist-bymerge" in compared
    bymerge = load_dataset("emnist-bymerge", download=False)
    alone = dataset_info(load_dataset("emnist-balanced", download=False), {"emnist-bymerge": bymerge})
    assert set(alone.cross_overlaps) <= set(info.cross_overlaps)


# ---- figures ---------------------------------------------------------------------------------------


def _texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def _image_axes(fig) -> int:
    return sum(1 for ax in fig.axes if ax.images)


def test_sample_grid_has_one_labelled_row_per_class():
    dataset = load_dataset("digits", download=False)
    fig = sample_grid(dataset, per_class=3)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert _texts(fig) == list("0123456789")
    assert len(fig.axes) == 10 * (3 + 1)
    assert _image_axes(fig) == 30
    # each labelled row shows samples of its own class
    rows = np.array(fig.axes).reshape(10, 4)
    train = dataset["train"]
    for label, row in enumerate(rows):
        assert row[0].texts[0].get_text() == str(label)
        for ax in row[1:]:
            shown = ax.images[0].get_array()
            matches = np.flatnonzero((train.images[:, 0] == np.asarray(shown)).all(axis=(1, 2)))
            assert len(matches) and (train.labels[matches] == label).any()
    assert "digits: 3 samples per class" in fig._suptitle.get_text()


def test_sample_grid_is_seeded():
    dataset = load_dataset("digits", download=False)

    def shown(fig):
        return [np.asarray(ax.images[0].get_array()).tolist() for ax in fig.axes if ax.images]

    assert shown(sample_grid(dataset, 2, seed=5)) == shown(sample_grid(dataset, 2, seed=5))
    assert shown(sample_grid(dataset, 2, seed=5)) != shown(sample_grid(dataset, 2, seed=6))


@pytest.mark.realdata
def test_sample_grid_of_47_classes_wraps_into_blocks(use_emnist_home):
    dataset = load_dataset("emnist-balanced", download=False)
    fig = sample_grid(dataset, per_class=2, split="test")
    assert sorted(_texts(fig)) == sorted(dataset.classes)
    assert len(fig.axes) == 16 * 3 * (2 + 1)  # 16 rows, 3 blocks of label + 2 samples
    assert _image_axes(fig) == 47 * 2
    grid = np.array(fig.axes).reshape(16, 9)
    for label, name in enumerate(dataset.classes):  # class k: row k % 16, block k // 16
        assert [t.get_text() for t in grid[label % 16, 3 * (label // 16)].texts] == [name]


def test_sample_grid_with_fewer_images_than_asked():
    images = _random_images(5, (1, 6, 6))
    dataset = Dataset("few", ("a", "b", "c"), {"train": Split(images, np.array([0, 0, 0, 1, 1]))})
    fig = sample_grid(dataset, per_class=4)
    assert _texts(fig) == ["a", "b", "c"]
    assert _image_axes(fig) == 3 + 2  # 'c' has none: its row stays labelled and empty


def test_class_histogram_labels_every_class_and_split():
    dataset = load_dataset("digits", download=False)
    fig = class_histogram(dataset)
    assert isinstance(fig, matplotlib.figure.Figure)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == list("0123456789")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train (1,437)", "test (360)"]
    assert len(ax.patches) == 2 * 10
    heights = [int(p.get_height()) for p in ax.patches]
    assert heights[:10] == np.bincount(dataset["train"].labels, minlength=10).tolist()
    assert heights[10:] == np.bincount(dataset["test"].labels, minlength=10).tolist()
    assert ax.get_title() == "digits: images per class"


@pytest.mark.realdata
def test_class_histogram_of_letters(use_emnist_home):
    dataset = load_dataset("emnist-letters", download=False)
    fig = class_histogram(dataset)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == list(dataset.classes)
    heights = [int(p.get_height()) for p in ax.patches]
    assert heights == [800] * 18 + [400] + [0] * 7


def _bars_hidden_by_the_legend(fig) -> list:
    """The bars whose drawn box the legend's box overlaps; asserts the legend lies inside the figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # the figure as a PNG would draw it
    canvas.draw()
    renderer = canvas.get_renderer()
    (ax,) = fig.axes
    legend = ax.get_legend().get_window_extent(renderer)
    assert fig.bbox.x0 <= legend.x0 and legend.x1 <= fig.bbox.x1, "the legend is cut off"
    assert fig.bbox.y0 <= legend.y0 and legend.y1 <= fig.bbox.y1, "the legend is cut off"
    bars = [p for p in ax.patches if p.get_height() > 0]
    assert bars
    return [p for p in bars if legend.overlaps(p.get_window_extent(renderer))]


def _balanced(name: str, classes: int, sizes: dict[str, int]) -> Dataset:
    """Every class equally common in every split: the tallest bars are the last ones too."""
    splits = {split: Split(np.zeros((n, 1, 1, 1), np.uint8), np.arange(n) % classes) for split, n in sizes.items()}
    return Dataset(name, tuple(f"class {i}" for i in range(classes)), splits)


@pytest.mark.parametrize("dataset", [
    _balanced("fashion-mnist", 10, {"train": 54_000, "val": 6_000, "test": 10_000}),  # the quickstart's
    _balanced("three", 3, {"train": 300, "test": 300}),
    _balanced("many", 47, {"train": 9_400, "val": 940, "test": 1_880}),
], ids=lambda d: d.name)
def test_class_histogram_legend_hides_no_bar(dataset):
    assert _bars_hidden_by_the_legend(class_histogram(dataset)) == []


def test_class_histogram_legend_hides_no_bar_of_real_digits():
    assert _bars_hidden_by_the_legend(class_histogram(load_dataset("digits", download=False))) == []


def test_sample_grid_refuses_a_bad_per_class():
    dataset = load_dataset("digits", download=False)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match=r"^The 'per_class' parameter of sample_grid must be a whole number, "
                                              r"1 or more\. Got"):
            sample_grid(dataset, per_class=bad)
