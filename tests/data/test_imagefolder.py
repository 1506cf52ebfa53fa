"""Image folders: one sub-folder per class, optionally under train/ val/ test/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.data import load_dataset
from cnnlab.data.imagefolder import read_image_folder
from cnnlab.errors import DataError


def save(path: Path, array: np.ndarray) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return array


def gray(seed: int, size=(6, 5)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=size, dtype=np.uint8)


def rgb(seed: int, size=(6, 5)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(*size, 3), dtype=np.uint8)


def test_gray_class_folders(tmp_path):
    cat0 = save(tmp_path / "cat" / "0.png", gray(0))
    cat1 = save(tmp_path / "cat" / "1.png", gray(1))
    dog0 = save(tmp_path / "dog" / "a.png", gray(2))
    splits, classes = read_image_folder(tmp_path)
    assert classes == ("cat", "dog")
    images, labels = splits["train"]
    assert list(splits) == ["train"]
    assert images.shape == (3, 1, 6, 5) and images.dtype == np.uint8  # H=6, W=5
    assert labels.tolist() == [0, 0, 1] and labels.dtype == np.int64
    for got, want in zip(images[:, 0], [cat0, cat1, dog0]):
        np.testing.assert_array_equal(got, want)  # PNG is lossless


def test_rgb_gives_three_channels(tmp_path):
    red = save(tmp_path / "red" / "x.png", rgb(0))
    save(tmp_path / "blue" / "y.png", rgb(1))
    splits, classes = read_image_folder(tmp_path)
    images, labels = splits["train"]
    assert classes == ("blue", "red")
    assert images.shape == (2, 3, 6, 5)
    assert labels.tolist() == [0, 1]
    np.testing.assert_array_equal(images[1], red.transpose(2, 0, 1))


def test_gray_and_rgb_mixed_become_rgb(tmp_path):
    g = save(tmp_path / "a" / "g.png", gray(0))
    save(tmp_path / "b" / "c.png", rgb(1))
    images, _ = read_image_folder(tmp_path)[0]["train"]
    assert images.shape == (2, 3, 6, 5)
    for channel in range(3):
        np.testing.assert_array_equal(images[0, channel], g)


def test_train_and_test_share_class_indices(tmp_path):
    save(tmp_path / "train" / "ant" / "1.png", gray(0))
    save(tmp_path / "train" / "bee" / "1.png", gray(1))
    save(tmp_path / "train" / "cow" / "1.png", gray(2))
    save(tmp_path / "test" / "cow" / "1.png", gray(3))
    save(tmp_path / "test" / "bee" / "2.png", gray(4))
    splits, classes = read_image_folder(tmp_path)
    assert classes == ("ant", "bee", "cow")
    assert set(splits) == {"train", "test"}
    assert splits["train"][1].tolist() == [0, 1, 2]
    assert splits["test"][1].tolist() == [1, 2]  # bee, cow keep their train indices though ant is absent


def test_class_only_in_test_still_gets_its_index(tmp_path):
    save(tmp_path / "train" / "b" / "1.png", gray(0))
    save(tmp_path / "test" / "a" / "1.png", gray(1))
    splits, classes = read_image_folder(tmp_path)
    assert classes == ("a", "b")
    assert splits["train"][1].tolist() == [1] and splits["test"][1].tolist() == [0]


def test_different_sizes_name_both_files(tmp_path):
    first = tmp_path / "a" / "1.png"
    save(first, gray(0, size=(6, 5)))
    second = tmp_path / "b" / "1.png"
    save(second, gray(1, size=(7, 5)))
    with pytest.raises(DataError, match="5×7.*5×6") as info:
        read_image_folder(tmp_path)
    assert str(first) in str(info.value) and str(second) in str(info.value)


def test_different_sizes_across_splits(tmp_path):
    save(tmp_path / "train" / "a" / "1.png", gray(0, size=(8, 8)))
    save(tmp_path / "test" / "a" / "1.png", gray(0, size=(4, 4)))
    with pytest.raises(DataError, match="one size"):
        read_image_folder(tmp_path)


@pytest.mark.parametrize("content", [b"this is not a picture", b"", b"\x89PNG\r\n\x1a\n truncated"])
def test_non_image_with_image_suffix(tmp_path, content):
    save(tmp_path / "a" / "1.png", gray(0))
    bad = tmp_path / "a" / "2.png"
    bad.write_bytes(content)
    with pytest.raises(DataError, match="not a readable image") as info:
        read_image_folder(tmp_path)
    assert str(bad) in str(info.value)


def test_other_files_are_ignored(tmp_path):
    save(tmp_path / "a" / "1.png", gray(0))
    (tmp_path / "a" / "notes.txt").write_text("hello")
    (tmp_path / "README.md").write_text("# my data")
    images, labels = read_image_folder(tmp_path)[0]["train"]
    assert len(images) == 1


def test_jpeg_and_nested_folders(tmp_path):
    save(tmp_path / "a" / "deep" / "x.jpg", rgb(0, size=(8, 8)))
    save(tmp_path / "b" / "y.bmp", rgb(1, size=(8, 8)))
    images, labels = read_image_folder(tmp_path)[0]["train"]
    assert images.shape == (2, 3, 8, 8) and labels.tolist() == [0, 1]


def test_empty_and_missing_folders(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        read_image_folder(tmp_path / "nope")
    (tmp_path / "flat").mkdir()
    save(tmp_path / "flat" / "1.png", gray(0))
    with pytest.raises(DataError, match="no class sub-folders"):
        read_image_folder(tmp_path / "flat")
    (tmp_path / "classes" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        read_image_folder(tmp_path / "classes")


def test_load_dataset_folder(tmp_path):
    root = tmp_path / "pets"
    cat = save(root / "train" / "cat" / "1.png", rgb(0))
    save(root / "train" / "dog" / "1.png", rgb(1))
    save(root / "test" / "dog" / "2.png", rgb(2))
    dataset = load_dataset(f"folder:{root}", progress=False)
    assert dataset.classes == ("cat", "dog")
    assert dataset.image_shape == (3, 6, 5)
    assert len(dataset["train"]) == 2 and dataset["test"].labels.tolist() == [1]
    np.testing.assert_array_equal(dataset["train"].images[0], cat.transpose(2, 0, 1))
    # a new image invalidates the cache
    save(root / "train" / "cat" / "2.png", rgb(3))
    assert len(load_dataset(f"folder:{root}", progress=False)["train"]) == 3


def test_load_dataset_folder_errors(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_dataset(f"folder:{tmp_path / 'missing'}", progress=False)
    save(tmp_path / "a" / "1.png", gray(0))
    with pytest.raises(DataError, match="unknown option 'mapping' for folder"):
        load_dataset(f"folder:{tmp_path};mapping=x.txt", progress=False)
    bad = tmp_path / "a" / "2.png"
    bad.write_text("nope")
    with pytest.raises(DataError, match="not a readable image") as info:
        load_dataset(f"folder:{tmp_path}", progress=False)
    assert str(bad) in str(info.value)
