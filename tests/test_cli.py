"""The command line, run in-process with typer's CliRunner: output on success, and on a user's error
exit code 2 with exactly one line on stderr that starts with 'error:'."""

from __future__ import annotations

import re
import shutil

import pytest
from cli_helpers import assert_one_line_error, assert_png, table_row

from cnnlab.data import DATASETS, data_home
from cnnlab.errors import DataError, UnknownNameError

# ---- success -----------------------------------------------------------------------------------------


def test_no_arguments_shows_help(cli):
    result = cli()
    assert "data" in result.output and "quickstart" in result.output


def test_data_list_lists_every_dataset(cli):
    result = cli("data", "list")
    assert result.exit_code == 0, result.output
    for name in DATASETS.names():
        table_row(result.stdout, name)  # the full name, not cut to 'emnist-balan…'
    assert table_row(result.stdout, "digits")[1:5] == ["10", "1,437", "360", "yes"]
    assert table_row(result.stdout, "kmnist")[4] == "no"  # the data home is empty
    assert table_row(result.stdout, "cifar100")[1] == "100"
    assert table_row(result.stdout, "emnist-byclass")[1:4] == ["62", "697,932", "116,323"]
    assert "idx:DIR" in result.stdout


def test_data_list_sees_the_emnist_files(cli, use_emnist_home):
    result = cli("data", "list")
    assert result.exit_code == 0
    assert table_row(result.stdout, "emnist-bymerge")[4] == "yes"
    assert table_row(result.stdout, "emnist-byclass")[4] == "no"  # only its mapping file is there


@pytest.mark.realdata
def test_data_info_fashion_mnist(cli, fashion_dir):
    result = cli("data", "info", "fashion-mnist", "--offline")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    out = result.stdout
    assert out.startswith("fashion-mnist: 10 classes, images 1×28×28 uint8")
    assert "train: 60,000 images (complete)" in out
    assert table_row(out, "T-shirt/top")[1:] == ["6,000", "1,000"]
    assert table_row(out, "Ankle boot")[1:] == ["6,000", "1,000"]
    assert "imbalance (train): 1.00× (commonest / rarest class)" in out
    assert re.search(r"^train: pixel mean 0\.286\d, std 0\.353\d \(0–1 scale\)", out, re.M), out
    assert re.search(r"^test: pixel mean 0\.28\d\d", out, re.M)
    assert re.search(r"^test images also in train: \d+$", out, re.M)
    assert result.stderr == ""


@pytest.mark.realdata
def test_data_info_emnist_balanced_reports_overlap_with_bymerge(cli, use_emnist_home):
    result = cli("data", "info", "emnist-balanced", "--offline")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    out = result.stdout
    assert "test: 304 of 18,800 images (items 18,496–18,799)" in out
    match = re.search(r"^emnist-balanced test ∩ emnist-bymerge test: (\d+) of 304 images \((\d+\.\d) %\)$", out, re.M)
    assert match, out
    count = int(match[1])
    assert 0.08 * 304 <= count <= 0.20 * 304
    assert float(match[2]) == pytest.approx(100 * count / 304, abs=0.05)
    assert re.search(r"^emnist-balanced train ∩ emnist-bymerge test: [1-9][\d,]* of 9,120 images", out, re.M)


def test_data_show_writes_a_png(cli, tmp_path):
    out = tmp_path / "figs" / "X.png"  # the folder does not exist yet
    result = cli("data", "show", "digits", "--per-class", "3", "-o", out)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "wrote" in result.stdout
    assert_png(out)


def test_data_hist_writes_a_png(cli, tmp_path):
    out = tmp_path / "Y.png"
    result = cli("data", "hist", "digits", "-o", out)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert_png(out)


@pytest.mark.realdata
def test_data_add_mnist_reports_its_size(cli, shared_data):
    result = cli("data", "add", "mnist", "--from", shared_data / "mnist")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "added 4 file(s)" in result.stdout
    assert "mnist: train: 60,000 images (complete); test: 10,000 images (complete)" in result.stdout
    assert sorted(p.name for p in (data_home() / "raw" / "mnist").iterdir() if p.suffix == ".gz") == sorted(
        p.name for p in (shared_data / "mnist").glob("*.gz"))
    # and it is now on this machine
    listed = cli("data", "list")
    assert table_row(listed.stdout, "mnist")[4] == "yes"


# ---- errors: one line, exit 2 ------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["data", "info"], ["data", "show"], ["data", "hist"], ["data", "download"]])
def test_unknown_dataset_suggests_the_closest(cli, command):
    result = cli(*command, "fashon-mnist")
    assert_one_line_error(result, "unknown dataset 'fashon-mnist'", "did you mean 'fashion-mnist'", "known: cifar10")


def test_unknown_family_for_add(cli, shared_data):
    result = cli("data", "add", "emnst", "--from", shared_data / "emnist")
    assert_one_line_error(result, "'emnst'", "did you mean 'emnist'")


def test_missing_dataset_offline_names_it_and_the_folder(cli):
    result = cli("data", "info", "kmnist", "--offline")
    assert_one_line_error(result, "dataset 'kmnist' is not on this machine",
                          str(data_home() / "raw" / "kmnist"), "cnnlab data add kmnist --from")


def test_missing_dataset_with_downloads_off_says_so(cli):
    # CNNLAB_OFFLINE=1 (conftest): no network is tried, and the message says why
    result = cli("data", "show", "emnist-byclass")
    assert_one_line_error(result, "dataset 'emnist-byclass' is not on this machine", "CNNLAB_OFFLINE",
                          str(data_home() / "raw" / "emnist"))


def test_add_from_a_missing_path(cli, tmp_path):
    missing = tmp_path / "no-such-folder"
    result = cli("data", "add", "mnist", "--from", missing)
    assert_one_line_error(result, f"error: {missing}: no such file or folder")


def test_add_from_a_folder_without_the_files(cli, tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here")
    result = cli("data", "add", "mnist", "--from", tmp_path)
    assert_one_line_error(result, str(tmp_path), "train-images-idx3-ubyte.gz")


@pytest.mark.realdata
def test_add_a_truncated_gz_is_refused(cli, tmp_path, shared_data):
    source = tmp_path / "cut"
    source.mkdir()
    whole = (shared_data / "mnist" / "train-labels-idx1-ubyte.gz").read_bytes()
    (source / "train-labels-idx1-ubyte.gz").write_bytes(whole[: len(whole) // 2])
    result = cli("data", "add", "mnist", "--from", source)
    assert_one_line_error(result, "train-labels-idx1-ubyte.gz", "corrupt or truncated gzip")
    raw = data_home() / "raw" / "mnist"
    assert not raw.exists() or not any(raw.glob("*.gz"))  # nothing corrupt entered the data home


@pytest.mark.realdata
def test_add_a_different_file_under_an_official_name_fails_its_checksum(cli, tmp_path, fashion_dir):
    source = tmp_path / "impostor"
    source.mkdir()
    shutil.copyfile(fashion_dir / "t10k-labels-idx1-ubyte.gz", source / "t10k-labels-idx1-ubyte.gz")
    result = cli("data", "add", "mnist", "--from", source)
    assert_one_line_error(result, "t10k-labels-idx1-ubyte.gz", "sha256 of the unpacked content")
    assert not (data_home() / "raw" / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()


def test_traceback_reraises(cli):
    result = cli("--traceback", "data", "info", "kmnist", "--offline")
    assert isinstance(result.exception, DataError)
    assert "is not on this machine" in str(result.exception)
    assert result.exit_code != 0 and result.exit_code != 2
    assert "error:" not in result.stderr


def test_traceback_reraises_unknown_names(cli):
    result = cli("--traceback", "data", "info", "fashon-mnist")
    assert isinstance(result.exception, UnknownNameError)
