"""IDX files: round trips, and every way a file can be wrong raises a DataError that names the file."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from cnnlab.data.idx import read_idx, read_idx_pair, write_idx
from cnnlab.errors import DataError

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@pytest.mark.parametrize("suffix", [".gz", ""])
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip(tmp_path, dtype, suffix):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 5, 7)) * 100).astype(dtype)
    path = tmp_path / f"a-idx3-ubyte{suffix}"
    write_idx(path, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    back = read_idx(path)
    assert back.shape == array.shape
    assert back.dtype.kind == np.dtype(dtype).kind and back.dtype.itemsize == np.dtype(dtype).itemsize
    np.testing.assert_array_equal(back, array)


def test_header_bytes_are_the_idx_format(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    write_idx(path, np.array([7, 0, 255], dtype=np.uint8))
    # magic 0x00000801, then the count 3, then the bytes themselves
    assert path.read_bytes() == bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 0, 255])


def test_compress_flag_overrides_suffix(tmp_path):
    path = tmp_path / "plain-name"
    write_idx(path, np.arange(4, dtype=np.uint8), compress=True)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx(path), np.arange(4))


def test_read_pair_gives_n_1_h_w_and_int64(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([1, 9], dtype=np.uint8)
    write_idx(tmp_path / "img.gz", images)
    write_idx(tmp_path / "lab.gz", labels)
    x, y = read_idx_pair(tmp_path / "img.gz", tmp_path / "lab.gz")
    assert x.shape == (2, 1, 3, 4) and x.dtype == np.uint8
    assert y.dtype == np.int64 and y.tolist() == [1, 9]
    np.testing.assert_array_equal(x[:, 0], images)
    xt, _ = read_idx_pair(tmp_path / "img.gz", tmp_path / "lab.gz", transpose=True)
    assert xt.shape == (2, 1, 4, 3) and xt.flags.c_contiguous
    np.testing.assert_array_equal(xt[:, 0], images.transpose(0, 2, 1))


@pytest.mark.realdata
def test_real_mnist_test_files(shared_data):
    folder = shared_data / "mnist"
    x, y = read_idx_pair(folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz")
    assert x.shape == (10_000, 1, 28, 28)
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# ---- errors -------------------------------------------------------------------------------------


def assert_names(exc_info, path):
    assert str(path) in str(exc_info.value)


@pytest.mark.parametrize("payload", [b"", b"\x00", b"PK\x03\x04rest", b"\x00\x00\x07\x01\x00\x00\x00\x01x",
                                     b"\x01\x00\x08\x01\x00\x00\x00\x01x"])
def test_bad_magic(tmp_path, payload):
    path = tmp_path / "bad-magic-idx1-ubyte"
    path.write_bytes(payload)
    with pytest.raises(DataError, match="not an IDX file") as info:
        read_idx(path)
    assert_names(info, path)


def test_bad_magic_inside_gzip(tmp_path):
    path = tmp_path / "text.gz"
    path.write_bytes(gzip.compress(b"hello, world"))
    with pytest.raises(DataError, match="bad magic") as info:
        read_idx(path)
    assert_names(info, path)


def test_header_claims_more_bytes_than_present(tmp_path):
    path = tmp_path / "short-idx3-ubyte"
    # says 10×28×28 but holds one image only
    path.write_bytes(bytes([0, 0, 8, 3]) + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + bytes(784))
    with pytest.raises(DataError, match=r"10×28×28 \(7,840 bytes\).*784 bytes") as info:
        read_idx(path)
    assert_names(info, path)


def test_header_claims_fewer_bytes_than_present(tmp_path):
    path = tmp_path / "long-idx1-ubyte.gz"
    write_idx(path, np.arange(5, dtype=np.uint8))
    data = gzip.decompress(path.read_bytes()) + b"\x00\x00"
    path.write_bytes(gzip.compress(data))
    with pytest.raises(DataError, match="truncated or corrupt") as info:
        read_idx(path)
    assert_names(info, path)


def test_truncated_header(tmp_path):
    path = tmp_path / "hdr-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 3]) + (10).to_bytes(4, "big"))  # 3 dimensions announced, 1 given
    with pytest.raises(DataError, match="header is truncated") as info:
        read_idx(path)
    assert_names(info, path)


def test_zero_dimensions(tmp_path):
    path = tmp_path / "zero-dims"
    path.write_bytes(bytes([0, 0, 8, 0]))
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert_names(info, path)


@pytest.mark.realdata
def test_truncated_real_gzip(tmp_path, shared_data):
    data = (shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="corrupt or truncated gzip") as info:
        read_idx(path)
    assert_names(info, path)


def test_gzip_cut_inside_its_header(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(bytes(100))[:5])
    with pytest.raises(DataError, match="gzip") as info:
        read_idx(path)
    assert_names(info, path)


@pytest.mark.realdata
@pytest.mark.parametrize("where", ["deflate", "crc", "method"])
def test_corrupt_gzip(tmp_path, shared_data, where):
    data = bytearray((shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert gzip.decompress(bytes(data))  # the original is fine
    if where == "deflate":
        for i in range(len(data) // 3, len(data) // 3 + 64):
            data[i] ^= 0xFF
    elif where == "crc":
        data[-8] ^= 0x01  # the CRC32 of the trailer
    else:
        data[2] = 7  # compression method: only 8 (deflate) exists
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="corrupt or truncated gzip") as info:
        read_idx(path)
    assert_names(info, path)


def test_unreadable_path_is_a_data_error(tmp_path):
    path = tmp_path / "missing-idx1-ubyte.gz"
    with pytest.raises(DataError, match="cannot read") as info:
        read_idx(path)
    assert_names(info, path)
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path)  # a folder


def test_pair_count_mismatch_names_both_files(tmp_path):
    images, labels = tmp_path / "x-images-idx3-ubyte.gz", tmp_path / "x-labels-idx1-ubyte.gz"
    write_idx(images, np.zeros((4, 2, 2), dtype=np.uint8))
    write_idx(labels, np.zeros(3, dtype=np.uint8))
    with pytest.raises(DataError, match="4 images.*3 labels") as info:
        read_idx_pair(images, labels)
    assert images.name in str(info.value) and labels.name in str(info.value)


@pytest.mark.realdata
def test_pair_with_real_files_of_different_sets(tmp_path, shared_data):
    folder = shared_data / "mnist"
    with pytest.raises(DataError, match="10,000 images but train-labels-idx1-ubyte.gz holds 60,000") as info:
        read_idx_pair(folder / "t10k-images-idx3-ubyte.gz", folder / "train-labels-idx1-ubyte.gz")
    assert "t10k-images-idx3-ubyte.gz" in str(info.value)


def test_pair_wrong_shapes_and_types(tmp_path):
    good_images, good_labels = tmp_path / "img", tmp_path / "lab"
    write_idx(good_images, np.zeros((2, 3, 3), dtype=np.uint8))
    write_idx(good_labels, np.zeros(2, dtype=np.uint8))
    float_images = tmp_path / "float-images"
    write_idx(float_images, np.zeros((2, 3, 3), dtype=np.float32))
    with pytest.raises(DataError, match="expected uint8 images") as info:
        read_idx_pair(float_images, good_labels)
    assert_names(info, float_images)
    flat_images = tmp_path / "flat-images"
    write_idx(flat_images, np.zeros((2, 9), dtype=np.uint8))
    with pytest.raises(DataError, match="expected uint8 images") as info:
        read_idx_pair(flat_images, good_labels)
    assert_names(info, flat_images)
    square_labels = tmp_path / "2d-labels"
    write_idx(square_labels, np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(DataError, match="1-D label file") as info:
        read_idx_pair(good_images, square_labels)
    assert_names(info, square_labels)
    # swapped arguments are caught too
    with pytest.raises(DataError):
        read_idx_pair(good_labels, good_images)
