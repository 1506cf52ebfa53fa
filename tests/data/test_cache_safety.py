"""A dataset or archive someone sends is safe to open: refused archives leave nothing, forged mapping
files never rename classes, zip/gzip/tar bombs are refused before they fill memory or disk, and what a
killed process left in the cache is cleaned up by the next writer, real files throughout."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import signal
import struct
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cnnlab.data import add_local, load_dataset
from cnnlab.data import download
from cnnlab.data.cache import arrays_dir, data_home, raw_dir, source_key
from cnnlab.data.emnist import MAPPING_SHA256, member_specs
from cnnlab.data.idx import MAX_IDX_BYTES, read_idx, write_idx
from cnnlab.data.download import RemoteFile, extract_zip_members, file_digest
from cnnlab.errors import ChecksumError, DataError
from realdata import need

IMAGES = "emnist-mnist-test-images-idx3-ubyte.gz"
LABELS = "emnist-mnist-test-labels-idx1-ubyte.gz"
MAPPING = "emnist-mnist-mapping.txt"
MNIST_TEST = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture
def emnist_folder(shared_data) -> Path:
    folder = shared_data / "emnist"
    for name in (IMAGES, LABELS, MAPPING):
        need(folder / name)
    return folder


def forged_mapping(emnist_folder: Path) -> bytes:
    """NIST's mnist mapping with the names of classes 0 and 1 swapped: same size, other class names."""
    lines = (emnist_folder / MAPPING).read_bytes().splitlines(keepends=True)
    lines[0], lines[1] = lines[0].replace(b"48", b"49"), lines[1].replace(b"49", b"48")
    forged = b"".join(lines)
    assert len(forged) == (emnist_folder / MAPPING).stat().st_size and forged != (emnist_folder / MAPPING).read_bytes()
    return forged


def make_zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr("gzip/" + name, data)
    return path


def tampered(data: bytes) -> bytes:
    out = bytearray(data)
    out[len(out) // 2] ^= 0x01
    return bytes(out)


def everything_in(folder: Path) -> list[str]:
    """Every entry under `folder` (hidden ones too), lock files aside: those stay by design."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.name.endswith(".lock"))


def assert_cli_refused(result, *fragments: str) -> str:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    err = result.stderr
    assert "Traceback" not in err and "Traceback" not in result.stdout
    assert err.startswith("error:") and err.count("\n") <= 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


# ---- poisoned archives ---------------------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.parametrize("poison", ["mapping", "member", "both"])
def test_poisoned_zip_is_refused_and_leaves_nothing(cli, tmp_path, emnist_folder, poison):
    members = {IMAGES: (emnist_folder / IMAGES).read_bytes(),  # genuine, and unpacked first
               LABELS: (emnist_folder / LABELS).read_bytes(),
               MAPPING: (emnist_folder / MAPPING).read_bytes()}
    if poison in ("mapping", "both"):
        members[MAPPING] = forged_mapping(emnist_folder)
    if poison in ("member", "both"):
        members[LABELS] = tampered(members[LABELS])
    archive = make_zip(tmp_path / "poisoned.zip", members)
    err = assert_cli_refused(cli("data", "add", "emnist", "--from", archive), "poisoned.zip", "nothing was added")
    assert (MAPPING if poison == "mapping" else LABELS) in err
    if poison == "mapping":
        assert "NIST's official mapping" in err
    assert everything_in(raw_dir("emnist")) == []  # no mapping, no member, no staging folder
    assert not (data_home() / "arrays").exists()


@pytest.mark.realdata
def test_genuine_zip_replaces_a_planted_mapping(cli, tmp_path, emnist_folder):
    raw = raw_dir("emnist")
    raw.mkdir(parents=True)
    for name in (IMAGES, LABELS):
        (raw / name).write_bytes((emnist_folder / name).read_bytes())
    (raw / MAPPING).write_bytes(forged_mapping(emnist_folder))
    # a planted mapping is never believed: the load says which file and how to fix it
    with pytest.raises(DataError, match="differs from NIST's official mapping.*gzip.zip") as info:
        load_dataset("emnist-mnist", progress=False)
    assert str(raw / MAPPING) in str(info.value)
    err = assert_cli_refused(cli("data", "info", "emnist-mnist", "--offline"), MAPPING)
    assert "cnnlab data add emnist" in err

    genuine = make_zip(tmp_path / "gzip.zip", {n: (emnist_folder / n).read_bytes() for n in (IMAGES, LABELS, MAPPING)})
    result = cli("data", "add", "emnist", "--from", genuine)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert (raw / MAPPING).read_bytes() == (emnist_folder / MAPPING).read_bytes()
    assert everything_in(raw) == sorted([IMAGES, LABELS, MAPPING])
    dataset = load_dataset("emnist-mnist", progress=False)
    assert dataset.classes == tuple("0123456789")
    assert len(dataset["test"]) == 10_000


@pytest.mark.realdata
def test_refused_zip_leaves_a_good_cache_as_it_was(tmp_path, emnist_folder):
    genuine = {n: (emnist_folder / n).read_bytes() for n in (IMAGES, LABELS, MAPPING)}
    add_local("emnist", make_zip(tmp_path / "gzip.zip", genuine))
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in raw_dir("emnist").iterdir()}
    with pytest.raises(ChecksumError, match=MAPPING):
        add_local("emnist", make_zip(tmp_path / "bad.zip", {**genuine, MAPPING: forged_mapping(emnist_folder)}))
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in raw_dir("emnist").iterdir()} == before


@pytest.mark.realdata
def test_zip_with_two_members_of_one_name_is_refused(tmp_path, emnist_folder):
    archive = tmp_path / "twice.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("gzip/" + LABELS, (emnist_folder / LABELS).read_bytes())
        zf.writestr("other/" + LABELS, tampered((emnist_folder / LABELS).read_bytes()))
    with pytest.raises(DataError, match="two members named"):
        add_local("emnist", archive)
    assert everything_in(raw_dir("emnist")) == []


@pytest.mark.realdata
def test_folder_with_a_forged_mapping_is_refused(cli, tmp_path, emnist_folder):
    folder = tmp_path / "mine"
    folder.mkdir()
    for name in (IMAGES, LABELS):
        (folder / name).write_bytes((emnist_folder / name).read_bytes())
    (folder / MAPPING).write_bytes(forged_mapping(emnist_folder))
    assert_cli_refused(cli("data", "add", "emnist", "--from", folder), str(folder / MAPPING),
                       "NIST's official mapping")
    assert everything_in(raw_dir("emnist")) == []  # refused before any file was copied


@pytest.mark.realdata
def test_folder_mapping_with_other_line_endings_is_accepted(tmp_path, emnist_folder):
    folder = tmp_path / "mine"
    folder.mkdir()
    official = (need(emnist_folder / "emnist-letters-mapping.txt")).read_bytes()
    assert b"\r\n" in official
    (folder / "emnist-letters-mapping.txt").write_bytes(official.replace(b"\r\n", b"\n"))
    add_local("emnist", folder)
    assert (raw_dir("emnist") / "emnist-letters-mapping.txt").exists()


def test_mapping_specs_are_nists_files(shared_data):
    specs = member_specs()
    for split, (digest, size) in MAPPING_SHA256.items():
        official = need(shared_data / "emnist" / f"emnist-{split}-mapping.txt")
        spec = specs[f"emnist-{split}-mapping.txt"]
        assert (spec.sha256, spec.size) == (file_digest(official), official.stat().st_size) == (digest, size)
    for name, spec in specs.items():
        local = shared_data / "emnist" / name
        if local.exists() and spec.size is not None:
            assert local.stat().st_size == spec.size, name


@pytest.mark.realdata
def test_a_replaced_raw_file_invalidates_the_arrays(shared_data):
    """Same name, same size, same mtime, other content: the new inode still changes the key."""
    raw = raw_dir("mnist")
    raw.mkdir(parents=True)
    for name in MNIST_TEST:
        (raw / name.removesuffix(".gz")).write_bytes(gzip.decompress(need(shared_data / "mnist" / name).read_bytes()))
    labels = raw / "t10k-labels-idx1-ubyte"
    first = load_dataset("mnist", progress=False)
    files = sorted(raw.glob("t10k-*-ubyte"))
    key = source_key(files)
    stat = labels.stat()
    replacement = raw / "new-labels"
    write_idx(replacement, ((first["test"].labels + 1) % 10).astype(np.uint8))
    assert replacement.stat().st_size == stat.st_size
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(replacement, labels)
    assert labels.stat().st_mtime_ns == stat.st_mtime_ns and source_key(files) != key
    again = load_dataset("mnist", progress=False)
    np.testing.assert_array_equal(again["test"].labels, (first["test"].labels + 1) % 10)


# ---- zip bombs -----------------------------------------------------------------------------------


def patch_sizes(archive: Path, claimed: int) -> None:
    """Rewrite every member's uncompressed size in the local and central headers to `claimed`."""
    data = bytearray(archive.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (at := data.find(signature, start)) >= 0:
            struct.pack_into("<I", data, at + offset, claimed)
            start = at + 4
    archive.write_bytes(bytes(data))


@pytest.mark.realdata
def test_member_claiming_a_huge_size_is_refused_before_reading(cli, tmp_path, emnist_folder):
    archive = make_zip(tmp_path / "huge.zip", {LABELS: (emnist_folder / LABELS).read_bytes()})
    patch_sizes(archive, 0xFFFF_FFF0)
    assert zipfile.ZipFile(archive).infolist()[0].file_size == 0xFFFF_FFF0
    assert_cli_refused(cli("data", "add", "emnist", "--from", archive), "claims 4,294,967,280 bytes",
                       "5,144 bytes of the original")
    assert everything_in(raw_dir("emnist")) == []


def test_member_of_unknown_size_is_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "MAX_MEMBER_BYTES", 1 << 20)
    bomb = make_zip(tmp_path / "bomb.zip", {"x.gz": bytes(4 << 20)}, zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 20_000  # 4 MiB of zeros, deflated
    target = tmp_path / "target"
    with pytest.raises(DataError, match="claims 4,194,304 bytes.*1,048,576-byte limit"):
        extract_zip_members(bomb, {"x.gz": RemoteFile("x.gz")}, target)
    assert everything_in(target) == []


def test_member_whose_header_understates_its_size_is_refused(tmp_path, monkeypatch):
    """The header says 100 bytes; the member really inflates to 4 MiB. Nothing past the claim is kept."""
    monkeypatch.setattr(download, "MAX_MEMBER_BYTES", 1 << 20)
    liar = make_zip(tmp_path / "liar.zip", {"x.gz": bytes(4 << 20)}, zipfile.ZIP_DEFLATED)
    patch_sizes(liar, 100)
    target = tmp_path / "target"
    with pytest.raises(DataError, match="liar.zip: not a readable zip archive"):
        extract_zip_members(liar, {"x.gz": RemoteFile("x.gz")}, target)
    assert everything_in(target) == []


@pytest.mark.realdata
def test_member_larger_than_nists_file_is_refused(tmp_path, emnist_folder):
    big = (emnist_folder / LABELS).read_bytes() + bytes(1 << 20)
    archive = make_zip(tmp_path / "gzip.zip", {IMAGES: (emnist_folder / IMAGES).read_bytes(), LABELS: big},
                       zipfile.ZIP_DEFLATED)
    with pytest.raises(DataError, match="claims 1,053,720 bytes.*5,144 bytes of the original"):
        add_local("emnist", archive)
    assert everything_in(raw_dir("emnist")) == []


def test_copy_cap_holds_while_reading():
    """The cap is enforced on the bytes that arrive, whatever a header said."""
    with pytest.raises(download._TooLarge):
        download._copy_capped(io.BytesIO(bytes(3 << 20)), io.BytesIO(), 2 << 20)
    out = io.BytesIO()
    download._copy_capped(io.BytesIO(bytes(2 << 20)), out, 2 << 20)
    assert len(out.getvalue()) == 2 << 20


# ---- gzip IDX files --------------------------------------------------------------------------------


def idx_payload(n: int = 10) -> bytes:
    return bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + bytes(range(n))


@pytest.mark.parametrize("case", ["extra payload", "gzip bomb after the payload", "garbage after the gzip stream",
                                  "header promises more", "header promises a terabyte"])
def test_gz_idx_that_is_not_what_its_header_says(cli, tmp_path, case):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    if case == "extra payload":
        path.write_bytes(gzip.compress(idx_payload() + b"trailing garbage"))
    elif case == "gzip bomb after the payload":
        path.write_bytes(gzip.compress(idx_payload() + bytes(64 << 20), compresslevel=1))
        assert path.stat().st_size < 1 << 20
    elif case == "garbage after the gzip stream":
        path.write_bytes(gzip.compress(idx_payload()) + b"garbage that is not gzip")
    elif case == "header promises more":
        path.write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + (1000).to_bytes(4, "big") + bytes(10)))
    else:
        path.write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big")
                                                                     for n in (1 << 20, 1 << 10, 1 << 10))))
    expected = {"extra payload": "holds more than 10 bytes", "gzip bomb after the payload": "holds more than 10 bytes",
                "garbage after the gzip stream": "corrupt or truncated gzip",
                "header promises more": "holds 10 bytes", "header promises a terabyte": f"{MAX_IDX_BYTES:,}"}[case]
    with pytest.raises(DataError, match=expected) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert_cli_refused(cli("data", "add", "mnist", "--from", tmp_path), str(path))
    assert everything_in(raw_dir("mnist")) == []


def test_gz_idx_that_matches_its_header_reads(tmp_path):
    path = tmp_path / "ok-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_payload()))
    np.testing.assert_array_equal(read_idx(path), np.arange(10, dtype=np.uint8))


def test_content_checksum_is_streamed_and_refuses_garbage(tmp_path):
    payload = np.random.default_rng(0).integers(0, 256, 3 << 20, dtype=np.uint8).tobytes()
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(payload, compresslevel=1))
    assert download.content_digest(path) == hashlib.sha256(payload).hexdigest()
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        download.content_digest(path)


# ---- CIFAR tar members -----------------------------------------------------------------------------


def cifar_tar(path: Path, members: dict[str, int]) -> Path:
    """A cifar-10-batches-py archive whose members are `size` zero bytes each."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, size in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = size
            tar.addfile(info, io.BytesIO(bytes(size)))
    return path


@pytest.mark.parametrize("member,size,cap", [("batches.meta", 2 << 20, "1,048,576"),
                                            ("data_batch_1", 10_000 * 3072 + (8 << 20) + 1, "39,108,608")])
def test_oversized_cifar_member_is_refused_before_reading(cli, tmp_path, member, size, cap):
    archive = cifar_tar(tmp_path / "big.tar.gz", {member: size})
    assert_cli_refused(cli("data", "add", "cifar10", "--from", archive), "big.tar.gz", member, cap)
    assert everything_in(raw_dir("cifar10")) == []


# ---- what a killed process leaves behind --------------------------------------------------------------

KILLED_CHILD = r"""
import sys, time
from pathlib import Path
mode, ready = sys.argv[1], Path(sys.argv[2])

def hang(*args, **kwargs):
    ready.touch()
    time.sleep(60)

if mode == "store":  # stop inside store_arrays, its staging folder written, before the swap
    import cnnlab.data.cache as cache
    real = cache.fsync_dir
    cache.fsync_dir = lambda folder: hang() if folder.name.endswith(".part") else real(folder)
    from cnnlab.data import load_dataset
    load_dataset("mnist", progress=False)
else:  # stop inside copy_verified, its temp file written, before the rename
    import cnnlab.data.download as download
    download.mismatch = hang
    from cnnlab.data import add_local
    add_local("mnist", sys.argv[3])
"""


def kill_mid_write(tmp_path: Path, mode: str, *args: str) -> None:
    ready = tmp_path / f"ready-{mode}"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, mode, str(ready), *args], env={**os.environ},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"child never reached the write: {proc.communicate()}")
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.realdata
def test_leftovers_of_killed_processes_are_removed_by_the_next_load(tmp_path, shared_data):
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in MNIST_TEST:
        (mine / name).write_bytes(need(shared_data / "mnist" / name).read_bytes())
    raw, arrays = raw_dir("mnist"), data_home() / "arrays"
    # a real kill -9 in the middle of `cnnlab data add` and of storing the parsed arrays
    kill_mid_write(tmp_path, "copy", str(mine / MNIST_TEST[0]))
    killed_copy = [n for n in everything_in(raw) if n.startswith(f".{MNIST_TEST[0]}.") and n.endswith(".part")]
    assert len(killed_copy) == 1, everything_in(raw)
    add_local("mnist", mine)  # the next copy of that file removes its dead temp file
    assert everything_in(raw) == sorted(MNIST_TEST)
    kill_mid_write(tmp_path, "store")
    killed_store = [n for n in everything_in(arrays) if n.startswith(".mnist.") and n.endswith(".part")]
    assert killed_store, everything_in(arrays)
    assert not (arrays_dir("mnist") / "meta.json").exists()

    # what else a killed process leaves: an old cache folder, a temp file, an archive's staging folder
    (arrays / ".mnist.old-999999").mkdir()
    (arrays / ".mnist.old-999999" / "meta.json").write_text("{}")
    (raw / ".t10k-labels-idx1-ubyte.gz.k1ll3d_x.part").write_bytes(b"half a file")
    (raw / ".unpacking.abcd1234.part").mkdir()
    (raw / ".unpacking.abcd1234.part" / "emnist-mnist-mapping.txt").write_bytes(b"0 49\n")
    # and what must survive: a resumable download, another dataset's staging (its own lock, maybe live)
    (raw / "train-images-idx3-ubyte.gz.part").write_bytes(b"first megabytes of a download")
    (arrays / ".kmnist.abcd1234.part").mkdir()

    dataset = load_dataset("mnist", progress=False)
    assert len(dataset["test"]) == 10_000
    assert everything_in(raw) == sorted([*MNIST_TEST, "train-images-idx3-ubyte.gz.part"])
    assert sorted(p.name for p in arrays.iterdir() if not p.name.endswith(".lock")) == [".kmnist.abcd1234.part",
                                                                                         "mnist"]
