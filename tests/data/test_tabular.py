"""Label-first pixel CSVs: Kaggle's MNIST layout (header) and EMNIST's (no header, transposed images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnnlab.data import load_dataset
from cnnlab.data import tabular
from cnnlab.data.tabular import has_header, read_csv
from cnnlab.errors import DataError

SIDE = 4


def upright_images(n: int, seed: int = 0) -> np.ndarray:
    """n asymmetric 4×4 images (no image equals its transpose)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, SIDE, SIDE), dtype=np.uint8)
    images[:, 0, 1], images[:, 1, 0] = 0, 255
    return images


def csv_lines(labels, images: np.ndarray, header: bool) -> list[str]:
    flat = images.reshape(len(images), -1)
    lines = ["label," + ",".join(f"pixel{i}" for i in range(flat.shape[1]))] if header else []
    lines += [f"{label}," + ",".join(map(str, row)) for label, row in zip(labels, flat)]
    return lines


def write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def mnist_csv(tmp_path):
    """Kaggle MNIST layout: `label,pixel0,...` header, row-major upright images."""
    images = upright_images(6)
    labels = [3, 1, 4, 1, 5, 9]
    return write(tmp_path / "kaggle" / "train.csv", csv_lines(labels, images, header=True)), images, labels


@pytest.fixture
def emnist_csv(tmp_path):
    """Kaggle EMNIST layout: no header, images stored transposed like NIST's."""
    images = upright_images(5, seed=1)
    labels = [0, 2, 2, 1, 0]
    stored = images.transpose(0, 2, 1)
    return write(tmp_path / "emnist" / "emnist-x-train.csv", csv_lines(labels, stored, header=False)), images, labels


def test_header_detection(mnist_csv, emnist_csv, tmp_path):
    assert has_header(mnist_csv[0])
    assert not has_header(emnist_csv[0])
    assert has_header(write(tmp_path / "q.csv", ['"label","pixel0"', "1,2"]))
    assert not has_header(write(tmp_path / "neg.csv", ["-1,2,3,4,5"]))


def test_with_header(mnist_csv):
    path, images, labels = mnist_csv
    x, y = read_csv(path)
    assert x.shape == (6, 1, SIDE, SIDE) and x.dtype == np.uint8
    assert y.dtype == np.int64 and y.tolist() == labels
    np.testing.assert_array_equal(x[:, 0], images)


def test_without_header_and_orientation(emnist_csv):
    path, images, labels = emnist_csv
    stored, y = read_csv(path)
    assert y.tolist() == labels and len(stored) == 5  # the first line is data, not a header
    np.testing.assert_array_equal(stored[:, 0], images.transpose(0, 2, 1))
    upright, _ = read_csv(path, transpose=True)
    assert upright.flags.c_contiguous
    np.testing.assert_array_equal(upright[:, 0], images)
    assert not np.array_equal(upright, stored)


def test_colour_rows(tmp_path):
    images = np.arange(2 * 3 * 2 * 2, dtype=np.uint8).reshape(2, 3, 2, 2)
    path = write(tmp_path / "rgb.csv", csv_lines([0, 1], images, header=True))
    x, _ = read_csv(path)
    assert x.shape == (2, 3, 2, 2)
    np.testing.assert_array_equal(x, images)


def test_many_chunks_keep_order_and_line_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(tabular, "CHUNK_ROWS", 4)
    images = upright_images(11)
    labels = list(range(11))
    path = write(tmp_path / "chunks.csv", csv_lines(labels, images, header=True))
    x, y = read_csv(path)
    assert y.tolist() == labels
    np.testing.assert_array_equal(x[:, 0], images)
    lines = path.read_text().splitlines()
    lines[10] = lines[10].rsplit(",", 1)[0]  # file line 11: data row 10, in the third chunk
    write(path, lines)
    with pytest.raises(DataError, match=r"chunks.csv:11: row is shorter"):
        read_csv(path)


# ---- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [True, False])
def test_short_row_names_its_line(tmp_path, header):
    lines = csv_lines([1, 2, 3, 4], upright_images(4), header)
    bad = 3 + header  # file line of the third data row
    lines[bad - 1] = lines[bad - 1].rsplit(",", 2)[0]
    path = write(tmp_path / "short.csv", lines)
    with pytest.raises(DataError) as info:
        read_csv(path)
    assert f"{path}:{bad}:" in str(info.value) and "shorter" in str(info.value)


@pytest.mark.parametrize("header", [True, False])
def test_long_row_names_its_line(tmp_path, header):
    lines = csv_lines([1, 2, 3, 4], upright_images(4), header)
    bad = 3 + header
    lines[bad - 1] += ",7"
    path = write(tmp_path / "long.csv", lines)
    with pytest.raises(DataError, match=f"line {bad}") as info:
        read_csv(path)
    message = str(info.value)
    assert str(path) in message and "malformed CSV" in message
    assert "\n" not in message  # errors are printed on one line


def test_empty_field_names_its_line(tmp_path):
    lines = csv_lines([1, 2, 3], upright_images(3), header=True)
    lines[2] = lines[2].replace(",", ",,", 1).rsplit(",", 1)[0]  # right length, one value missing
    path = write(tmp_path / "hole.csv", lines)
    with pytest.raises(DataError, match=r"hole.csv:3: "):
        read_csv(path)


@pytest.mark.parametrize("value", [256, -1, 1000])
def test_pixel_out_of_range(tmp_path, value):
    lines = csv_lines([1, 2, 3], upright_images(3), header=True)
    fields = lines[3].split(",")
    fields[5] = str(value)
    lines[3] = ",".join(fields)
    path = write(tmp_path / "range.csv", lines)
    with pytest.raises(DataError, match="0–255") as info:
        read_csv(path)
    assert f"{path}:4:" in str(info.value)


@pytest.mark.parametrize("value", ["2.5", "x"])
def test_non_integer_values(tmp_path, value):
    lines = csv_lines([1, 2], upright_images(2), header=True)
    lines[1] = lines[1].replace(",0,", f",{value},", 1)
    path = write(tmp_path / "frac.csv", lines)
    with pytest.raises(DataError, match="whole numbers") as info:
        read_csv(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("pixels", [5, 15, 783])
def test_non_square_pixel_count(tmp_path, pixels):
    rows = [",".join(["1"] + ["0"] * pixels), ",".join(["2"] + ["9"] * pixels)]
    path = write(tmp_path / "odd.csv", rows)
    with pytest.raises(DataError, match=f"{pixels} pixels.*not a square image") as info:
        read_csv(path)
    assert str(path) in str(info.value)


def test_kaggle_test_file_without_labels_is_refused(tmp_path):
    # Kaggle's digit-recognizer test.csv has 784 pixel columns and no label: 783 "pixels" after the "label"
    path = write(tmp_path / "test.csv", ["pixel" + ",pixel".join(map(str, range(784))), ",".join(["0"] * 784)])
    with pytest.raises(DataError, match="783 pixels.*is the label the first column"):
        read_csv(path)


def test_labels_only_file_is_refused(tmp_path):
    path = write(tmp_path / "labels.csv", ["5", "3"])
    with pytest.raises(DataError, match="0 pixels"):
        read_csv(path)


@pytest.mark.parametrize("text", ["", "\n", "label,pixel0,pixel1,pixel2,pixel3\n"])
def test_empty_files(tmp_path, text):
    path = tmp_path / "empty.csv"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        read_csv(path)
    assert str(path) in str(info.value)
    if text.startswith("label"):
        assert "holds no rows" in str(info.value)


# ---- through load_dataset ------------------------------------------------------------------------


def test_load_train_and_test(tmp_path):
    folder = tmp_path / "mine"
    train_images, test_images = upright_images(6), upright_images(3, seed=5)
    train = write(folder / "train.csv", csv_lines([0, 1, 2, 0, 1, 2], train_images, header=True))
    test = write(folder / "test.csv", csv_lines([2, 2, 0], test_images, header=False))
    dataset = load_dataset(f"csv:{train},{test}", progress=False)
    assert set(dataset.splits) == {"train", "test"}
    assert dataset.classes == ("0", "1", "2")
    assert dataset.image_shape == (1, SIDE, SIDE)
    np.testing.assert_array_equal(dataset["train"].images[:, 0], train_images)
    np.testing.assert_array_equal(dataset["test"].images[:, 0], test_images)
    assert dataset["test"].labels.tolist() == [2, 2, 0]
    again = load_dataset(f"csv:{train},{test}", progress=False)  # from the cache
    np.testing.assert_array_equal(again["train"].images, dataset["train"].images)


def test_load_orientation_auto_and_forced(emnist_csv, mnist_csv):
    path, images, _ = emnist_csv
    auto = load_dataset(f"csv:{path}", progress=False)  # an emnist-* name is transposed automatically
    np.testing.assert_array_equal(auto["train"].images[:, 0], images)
    upright = load_dataset(f"csv:{path};orientation=upright", progress=False)
    np.testing.assert_array_equal(upright["train"].images[:, 0], images.transpose(0, 2, 1))
    kaggle, kaggle_images, _ = mnist_csv
    forced = load_dataset(f"csv:{kaggle};orientation=transposed", progress=False)
    np.testing.assert_array_equal(forced["train"].images[:, 0], kaggle_images.transpose(0, 2, 1))
    with pytest.raises(DataError, match="orientation must be"):
        load_dataset(f"csv:{kaggle};orientation=sideways", progress=False)


LETTERS_MAPPING = "1 65 97\n2 66 98\n3 67 99\n"  # NIST's letters style: labels from 1, upper/lower share a class


def test_load_with_mapping_option(tmp_path):
    images = upright_images(5)
    train = write(tmp_path / "data" / "train.csv", csv_lines([1, 3, 2, 3, 1], images, header=False))
    mapping = tmp_path / "maps" / "letters.txt"
    mapping.parent.mkdir()
    mapping.write_text(LETTERS_MAPPING)
    dataset = load_dataset(f"csv:{train};mapping={mapping}", progress=False)
    assert dataset.classes == ("A/a", "B/b", "C/c")
    assert dataset["train"].labels.tolist() == [0, 2, 1, 2, 0]


def test_load_finds_a_mapping_beside_the_csv(emnist_csv):
    path, images, labels = emnist_csv  # emnist-x-train.csv, labels 0..2
    (path.parent / "emnist-x-mapping.txt").write_text("0 48\n1 49\n2 50\n")
    dataset = load_dataset(f"csv:{path}", progress=False)
    assert dataset.classes == ("0", "1", "2")
    assert dataset["train"].labels.tolist() == labels


@pytest.mark.parametrize("bad", [0, 4])
def test_label_outside_the_mapping(tmp_path, bad):
    train = write(tmp_path / "data" / "train.csv", csv_lines([1, bad, 2], upright_images(3), header=True))
    mapping = tmp_path / "letters-mapping.txt"
    mapping.write_text(LETTERS_MAPPING)
    with pytest.raises(DataError, match=f"label {bad} is out of range 1–3") as info:
        load_dataset(f"csv:{train};mapping={mapping}", progress=False)
    assert "letters-mapping.txt" in str(info.value)


def test_negative_label_without_mapping(tmp_path):
    train = write(tmp_path / "train.csv", csv_lines([1, -2, 0], upright_images(3), header=True))
    with pytest.raises(DataError, match="label -2 is out of range"):
        load_dataset(f"csv:{train}", progress=False)


def test_bad_mapping_file(tmp_path):
    train = write(tmp_path / "data" / "train.csv", csv_lines([0, 1], upright_images(2), header=True))
    mapping = tmp_path / "broken.txt"
    mapping.write_text("0 48\none 49\n")
    with pytest.raises(DataError, match=r"broken.txt:2: expected 'label ascii_code'"):
        load_dataset(f"csv:{train};mapping={mapping}", progress=False)


def test_unknown_and_malformed_options(tmp_path):
    train = write(tmp_path / "a.csv", csv_lines([0], upright_images(1), header=True))
    with pytest.raises(DataError, match="unknown option 'bogus' for csv"):
        load_dataset(f"csv:{train};bogus=1", progress=False)
    with pytest.raises(DataError, match="key=value"):
        load_dataset(f"csv:{train};bogus", progress=False)
    with pytest.raises(DataError, match="no such file"):
        load_dataset(f"csv:{tmp_path / 'missing.csv'}", progress=False)
    with pytest.raises(DataError, match="TRAIN.csv or TRAIN.csv,TEST.csv"):
        load_dataset(f"csv:{train},{train},{train}", progress=False)


def test_error_in_test_file_names_that_file(tmp_path):
    train = write(tmp_path / "train.csv", csv_lines([0, 1], upright_images(2), header=True))
    lines = csv_lines([0, 1], upright_images(2), header=True)
    lines[2] += ",1"
    test = write(tmp_path / "test.csv", lines)
    with pytest.raises(DataError, match="line 3") as info:
        load_dataset(f"csv:{train},{test}", progress=False)
    assert str(test) in str(info.value)
