"""Downloads against a real HTTP server on 127.0.0.1: verified and resumable downloads, mirrors,
offline errors, zip extraction (safe and verified), and the parsed-array cache (atomic, shared, invalidated)."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cnnlab.data import add_local, load_dataset
from cnnlab.data import cache as cache_module
from cnnlab.data.cache import arrays_dir, data_home, raw_dir
from cnnlab.data.datasets import DATASETS
from cnnlab.data.idx import write_idx
from cnnlab.data.download import RemoteFile, download, extract_zip_members, resolve_url, safe_member_path
from cnnlab.errors import ChecksumError, DataError, DownloadError
from realdata import need

MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


# ---- a small HTTP server that honours Range: bytes=N- -------------------------------------------------


class FileServer:
    """Serves `files` (name → bytes) and records every request's path and Range header."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None, int]] = []  # (name, Range header, status)
        self.honour_range = True
        self.cut_once: set[str] = set()  # names whose next response stops halfway
        self.hold: dict[str, threading.Event] = {}  # names whose response waits for an event
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.lstrip("/")
                rng = self.headers.get("Range")
                if name in server.hold:
                    server.hold[name].wait(timeout=20)
                data = server.files.get(name)
                if data is None:
                    server.requests.append((name, rng, 404))
                    self.send_error(404)
                    return
                start = 0
                if rng and server.honour_range:
                    assert rng.startswith("bytes=") and rng.endswith("-"), rng
                    start = int(rng[len("bytes="):-1])
                    if start >= len(data):
                        server.requests.append((name, rng, 416))
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                server.requests.append((name, rng, 206 if start else 200))
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if name in server.cut_once:
                    server.cut_once.discard(name)
                    body = body[: len(body) // 2]  # promise everything, send half, hang up
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def names_requested(self) -> list[str]:
        return [name for name, _, _ in self.requests]


@pytest.fixture
def server():
    srv = FileServer()
    srv.thread.start()
    try:
        yield srv
    finally:
        for event in srv.hold.values():
            event.set()
        srv.httpd.shutdown()
        srv.httpd.server_close()
        srv.thread.join(timeout=5)


@pytest.fixture
def online(monkeypatch):
    monkeypatch.delenv("CNNLAB_OFFLINE")


@pytest.fixture
def mnist_bytes(shared_data) -> dict[str, bytes]:
    folder = shared_data / "mnist"
    return {name: need(folder / name).read_bytes() for name in MNIST_FILES}


def blob(n: int = 300_000, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def spec_for(server: FileServer, name: str, data: bytes, **extra) -> RemoteFile:
    server.files[name] = data
    return RemoteFile(name, f"{server.url}/{name}", sha256=hashlib.sha256(data).hexdigest(), **extra)


def leftovers(folder: Path) -> list[str]:
    """Files in `folder` other than lock files (locks stay by design)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) if folder.exists() else []


# ---- download ---------------------------------------------------------------------------------------


@pytest.mark.network
def test_download_fetches_and_verifies(server, online, tmp_path):
    data = blob()
    spec = spec_for(server, "file.bin", data, md5=hashlib.md5(data).hexdigest(), size=len(data))
    dest = tmp_path / "sub" / "file.bin"
    assert download(spec, dest, progress=False) == dest
    assert dest.read_bytes() == data
    assert leftovers(dest.parent) == ["file.bin"]
    assert server.requests == [("file.bin", None, 200)]
    download(spec, dest, progress=False)  # present: nothing fetched again
    assert len(server.requests) == 1


@pytest.mark.network
def test_download_with_progress_bar(server, online, tmp_path):
    data = blob(50_000)
    spec = spec_for(server, "p.bin", data)
    download(spec, tmp_path / "p.bin", progress=True)
    assert (tmp_path / "p.bin").read_bytes() == data


@pytest.mark.network
def test_resume_from_part_file(server, online, tmp_path):
    data = blob()
    spec = spec_for(server, "file.bin", data)
    dest = tmp_path / "file.bin"
    half = len(data) // 2
    (tmp_path / "file.bin.part").write_bytes(data[:half])
    download(spec, dest, progress=False)
    assert server.requests == [("file.bin", f"bytes={half}-", 206)]
    assert dest.read_bytes() == data
    assert leftovers(tmp_path) == ["file.bin"]


@pytest.mark.network
def test_server_without_range_support_restarts(server, online, tmp_path):
    server.honour_range = False
    data = blob()
    spec = spec_for(server, "file.bin", data)
    (tmp_path / "file.bin.part").write_bytes(data[:1000])
    download(spec, tmp_path / "file.bin", progress=False)
    assert server.requests == [("file.bin", "bytes=1000-", 200)]
    assert (tmp_path / "file.bin").read_bytes() == data  # not the first 1000 bytes twice


@pytest.mark.network
def test_complete_part_file_gets_416_and_is_kept(server, online, tmp_path):
    data = blob(10_000)
    spec = spec_for(server, "file.bin", data)
    (tmp_path / "file.bin.part").write_bytes(data)
    download(spec, tmp_path / "file.bin", progress=False)
    assert server.requests == [("file.bin", f"bytes={len(data)}-", 416)]
    assert (tmp_path / "file.bin").read_bytes() == data


@pytest.mark.network
def test_interrupted_download_resumes_on_the_next_call(server, online, tmp_path):
    data = blob()
    spec = spec_for(server, "file.bin", data)
    server.cut_once.add("file.bin")
    dest = tmp_path / "file.bin"
    with pytest.raises(DownloadError, match="stopped at 150,000 of 300,000 bytes.*again to resume"):
        download(spec, dest, progress=False)
    assert not dest.exists()
    assert (tmp_path / "file.bin.part").read_bytes() == data[:150_000]
    download(spec, dest, progress=False)
    assert server.requests[-1] == ("file.bin", "bytes=150000-", 206)
    assert dest.read_bytes() == data


@pytest.mark.network
@pytest.mark.parametrize("resume", [False, True])
def test_checksum_mismatch_leaves_nothing(server, online, tmp_path, resume):
    data = blob()
    spec = RemoteFile("file.bin", f"{server.url}/file.bin", sha256=hashlib.sha256(b"other").hexdigest())
    server.files["file.bin"] = data
    if resume:
        (tmp_path / "file.bin.part").write_bytes(data[:100])
    with pytest.raises(ChecksumError, match="sha256") as info:
        download(spec, tmp_path / "file.bin", progress=False)
    assert "file.bin" in str(info.value)
    assert leftovers(tmp_path) == []


@pytest.mark.network
def test_content_sha256_accepts_a_recompressed_copy(server, online, tmp_path):
    payload = blob(20_000)
    recompressed = gzip.compress(payload, compresslevel=1, mtime=12345)
    spec = RemoteFile("x.gz", f"{server.url}/x.gz", content_sha256=hashlib.sha256(payload).hexdigest())
    server.files["x.gz"] = recompressed
    download(spec, tmp_path / "x.gz", progress=False)
    assert gzip.decompress((tmp_path / "x.gz").read_bytes()) == payload
    server.files["y.gz"] = gzip.compress(payload[:-1])
    with pytest.raises(ChecksumError, match="unpacked content"):
        download(RemoteFile("y.gz", f"{server.url}/y.gz", content_sha256=spec.content_sha256),
                 tmp_path / "y.gz", progress=False)
    assert leftovers(tmp_path) == ["x.gz"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.network
def test_server_down_is_a_download_error(online, tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/file.bin"
    with pytest.raises(DownloadError, match=f"could not download {url}"):
        download(RemoteFile("file.bin", url, sha256="0" * 64), tmp_path / "file.bin", progress=False)
    assert leftovers(tmp_path) == []


@pytest.mark.network
def test_missing_file_on_server_is_a_download_error(server, online, tmp_path):
    with pytest.raises(DownloadError, match="Not Found"):
        download(RemoteFile("nope.bin", f"{server.url}/nope.bin"), tmp_path / "nope.bin", progress=False)


@pytest.mark.network
def test_offline_fetches_nothing(server, tmp_path):
    assert os.environ["CNNLAB_OFFLINE"] == "1"
    spec = spec_for(server, "file.bin", blob(100))
    with pytest.raises(DownloadError, match="offline") as info:
        download(spec, tmp_path / "file.bin", progress=False)
    assert spec.url in str(info.value)
    assert server.requests == []
    assert not (tmp_path / "file.bin").exists()


def test_no_url_is_a_download_error(tmp_path):
    with pytest.raises(DownloadError, match="no download address"):
        download(RemoteFile("local-only.bin"), tmp_path / "local-only.bin", progress=False)


def test_mirror_replaces_the_host(monkeypatch):
    spec = RemoteFile("t.gz", "https://example.org/path/t.gz")
    assert resolve_url(spec) == "https://example.org/path/t.gz"
    monkeypatch.setenv("CNNLAB_MIRROR", "http://127.0.0.1:9/m/")
    assert resolve_url(spec) == "http://127.0.0.1:9/m/t.gz"


# ---- whole datasets through the mirror ----------------------------------------------------------------


@pytest.mark.network
@pytest.mark.realdata
def test_load_mnist_through_a_mirror(server, online, monkeypatch, mnist_bytes):
    server.files.update(mnist_bytes)
    # a mirror that recompresses: the files differ but their content verifies
    for name in ("train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        server.files[name] = gzip.compress(gzip.decompress(mnist_bytes[name]), compresslevel=1, mtime=1)
        assert server.files[name] != mnist_bytes[name]
    monkeypatch.setenv("CNNLAB_MIRROR", server.url)
    dataset = load_dataset("mnist", progress=False)
    assert len(dataset["train"]) == 60_000 and len(dataset["test"]) == 10_000
    assert dataset.image_shape == (1, 28, 28) and dataset.classes == tuple("0123456789")
    assert sorted(server.names_requested()) == sorted(MNIST_FILES)
    assert leftovers(raw_dir("mnist")) == sorted(MNIST_FILES)
    again = load_dataset("mnist", progress=False)
    assert len(server.requests) == 4  # nothing downloaded twice
    np.testing.assert_array_equal(again["test"].labels, dataset["test"].labels)


@pytest.mark.network
def test_mirror_serving_a_wrong_file(server, online, monkeypatch):
    bogus = gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07")
    for name in MNIST_FILES:
        server.files[name] = bogus
    monkeypatch.setenv("CNNLAB_MIRROR", server.url)
    with pytest.raises(ChecksumError, match="train-images-idx3-ubyte.gz"):
        load_dataset("mnist", progress=False)
    assert leftovers(raw_dir("mnist")) == []


def test_kmnist_offline_without_files():
    with pytest.raises(DataError) as info:
        load_dataset("kmnist", progress=False)
    message = str(info.value)
    assert "'kmnist'" in message
    assert "http://codh.rois.ac.jp/kmnist/dataset/kmnist/" in message
    assert str(data_home() / "raw" / "kmnist") in message
    assert "offline" in message


def test_download_not_allowed():
    with pytest.raises(DataError, match="downloading was not allowed"):
        load_dataset("kmnist", download=False)


# ---- zip archives ---------------------------------------------------------------------------------


@pytest.mark.parametrize("member", ["../x", "a/../../x", "/etc/x", "../../../../../../tmp/x"])
def test_safe_member_path_refuses_escapes(tmp_path, member):
    with pytest.raises(DataError, match="outside"):
        safe_member_path(tmp_path / "root", member)


def test_safe_member_path_allows_inside(tmp_path):
    assert safe_member_path(tmp_path, "a/../b.gz") == (tmp_path / "b.gz").resolve()


def test_zip_member_names_cannot_escape(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    outside = tmp_path / "outside"
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../evil.gz", b"relative")
        zf.writestr(f"{outside}/abs.gz", b"absolute")
        zf.writestr("../../../../../../../../tmp/deep.gz", b"deep")
    names = [info.filename for info in zipfile.ZipFile(archive).infolist()]
    assert names[0] == "../evil.gz" and names[1].startswith("/")  # the hostile names really are in the zip
    wanted = {name: RemoteFile(name) for name in ("evil.gz", "abs.gz", "deep.gz")}
    deep = Path("/tmp/deep.gz")
    deep_before = deep.exists()
    written = extract_zip_members(archive, wanted, target)
    assert sorted(p.name for p in written) == ["abs.gz", "deep.gz", "evil.gz"]
    assert all(p.parent == target.resolve() for p in written)
    assert (target / "evil.gz").read_bytes() == b"relative"
    assert not (tmp_path / "evil.gz").exists() and not outside.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.zip", "target"]
    assert deep.exists() == deep_before


def test_not_a_zip(tmp_path):
    archive = tmp_path / "gzip.zip"
    archive.write_bytes(b"PK but not really")
    with pytest.raises(DataError, match="not a readable zip"):
        extract_zip_members(archive, {}, tmp_path / "out")


EMNIST_MNIST_MEMBERS = ("emnist-mnist-test-images-idx3-ubyte.gz", "emnist-mnist-test-labels-idx1-ubyte.gz",
                        "emnist-mnist-mapping.txt")


def nist_zip(path: Path, emnist_folder: Path, tamper: str | None = None, prefix: str = "gzip/") -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in EMNIST_MNIST_MEMBERS:
            data = bytearray((emnist_folder / name).read_bytes())
            if name == tamper:
                data[len(data) // 2] ^= 0x01
            zf.writestr(prefix + name, bytes(data))
    return path


@pytest.fixture
def emnist_folder(shared_data) -> Path:
    folder = shared_data / "emnist"
    for name in EMNIST_MNIST_MEMBERS:
        need(folder / name)
    return folder


@pytest.mark.realdata
def test_add_nist_zip_then_load(tmp_path, emnist_folder):
    archive = nist_zip(tmp_path / "gzip.zip", emnist_folder)
    added = add_local("emnist", archive)
    assert sorted(p.name for p in added) == sorted(EMNIST_MNIST_MEMBERS)
    assert leftovers(raw_dir("emnist")) == sorted(EMNIST_MNIST_MEMBERS)
    dataset = load_dataset("emnist-mnist", progress=False)
    assert list(dataset.splits) == ["test"] and len(dataset["test"]) == 10_000
    assert dataset.classes == tuple("0123456789")
    assert dataset.presence() == ["train: 0 of 60,000 images", "test: 10,000 images (complete)"]
    # a second add of the same zip verifies it again but leaves the identical files (and the cache) alone
    before = {p.name: p.stat() for p in raw_dir("emnist").iterdir()}
    assert sorted(p.name for p in add_local("emnist", archive)) == sorted(EMNIST_MNIST_MEMBERS)
    after = {p.name: p.stat() for p in raw_dir("emnist").iterdir()}
    assert {n: (s.st_ino, s.st_mtime_ns) for n, s in after.items()} == \
        {n: (s.st_ino, s.st_mtime_ns) for n, s in before.items()}


@pytest.mark.realdata
@pytest.mark.parametrize("tamper", EMNIST_MNIST_MEMBERS[:2])
def test_tampered_zip_member_is_refused(tmp_path, emnist_folder, tamper):
    archive = nist_zip(tmp_path / "gzip.zip", emnist_folder, tamper=tamper)
    with pytest.raises(ChecksumError, match=tamper):
        add_local("emnist", archive)
    assert leftovers(raw_dir("emnist")) == []  # a refused archive leaves nothing, not even its good members
    with pytest.raises(DataError):
        load_dataset("emnist-mnist", progress=False)
    # the genuine archive then goes in
    add_local("emnist", nist_zip(tmp_path / "good.zip", emnist_folder))
    assert len(load_dataset("emnist-mnist", progress=False)["test"]) == 10_000


@pytest.mark.realdata
def test_zip_with_escaping_member_names_stays_in_the_data_home(tmp_path, emnist_folder):
    archive = nist_zip(tmp_path / "gzip.zip", emnist_folder, prefix="../../")
    add_local("emnist", archive)
    assert leftovers(raw_dir("emnist")) == sorted(EMNIST_MNIST_MEMBERS)
    assert not any((tmp_path / name).exists() for name in EMNIST_MNIST_MEMBERS)
    assert not any((data_home().parent / name).exists() for name in EMNIST_MNIST_MEMBERS)


def test_zip_without_emnist_members(tmp_path):
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(DataError, match="none of NIST's EMNIST .gz files"):
        add_local("emnist", archive)


# ---- the parsed-array cache -------------------------------------------------------------------------


@pytest.fixture
def mnist_test_only(shared_data) -> Path:
    """raw/mnist holding the real t10k files only (so the test split alone is parsed)."""
    folder = shared_data / "mnist"
    raw = raw_dir("mnist")
    raw.mkdir(parents=True)
    for name in MNIST_FILES[2:]:
        (raw / name).write_bytes(need(folder / name).read_bytes())
    return raw


def cache_leftovers() -> list[str]:
    root = data_home() / "arrays"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.name.endswith(".lock")) \
        if root.exists() else []


@pytest.mark.realdata
def test_parse_error_leaves_no_cache(mnist_test_only):
    source = DATASETS.get("mnist").source

    def boom(files):
        raise RuntimeError("parser crashed")

    with pytest.MonkeyPatch.context() as patch:  # scoped: the autouse data-home patch must stay
        patch.setattr(source, "parse", boom)
        with pytest.raises(RuntimeError, match="parser crashed"):
            load_dataset("mnist", progress=False)
    assert cache_leftovers() == []
    assert not (arrays_dir("mnist") / "meta.json").exists()
    dataset = load_dataset("mnist", progress=False)
    assert len(dataset["test"]) == 10_000 and "train" not in dataset.splits
    assert sorted(cache_leftovers()) == ["mnist", "mnist/meta.json", "mnist/test.images.npy", "mnist/test.labels.npy"]


@pytest.mark.realdata
def test_failure_while_storing_leaves_no_cache(mnist_test_only):
    real_save = np.save
    calls = []

    def failing_save(path, array, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_save(path, array, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cache_module.np, "save", failing_save)
        with pytest.raises(OSError, match="No space left"):
            load_dataset("mnist", progress=False)
    assert len(calls) == 2
    assert cache_leftovers() == []  # neither the folder nor its staging copy
    assert len(load_dataset("mnist", progress=False)["test"]) == 10_000


@pytest.mark.realdata
def test_cache_is_reused_and_invalidated(mnist_test_only):
    first = load_dataset("mnist", progress=False)
    meta_path = arrays_dir("mnist") / "meta.json"
    key = json.loads(meta_path.read_text())["key"]
    source = DATASETS.get("mnist").source

    def boom(files):
        raise AssertionError("parsed again although nothing changed")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(source, "parse", boom)
        np.testing.assert_array_equal(load_dataset("mnist", progress=False)["test"].labels, first["test"].labels)

    # touching a raw file: same bytes, new mtime → rebuilt
    labels_path = mnist_test_only / "t10k-labels-idx1-ubyte.gz"
    stat = labels_path.stat()
    os.utime(labels_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    touched = load_dataset("mnist", progress=False)
    touched_key = json.loads(meta_path.read_text())["key"]
    assert touched_key != key
    np.testing.assert_array_equal(touched["test"].labels, first["test"].labels)

    # rewriting it with other labels → the new labels are served
    new_labels = ((first["test"].labels + 1) % 10).astype(np.uint8)
    write_idx(labels_path, new_labels)
    os.utime(labels_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000_000))
    rewritten = load_dataset("mnist", progress=False)
    assert json.loads(meta_path.read_text())["key"] not in (key, touched_key)
    np.testing.assert_array_equal(rewritten["test"].labels, new_labels)
    np.testing.assert_array_equal(rewritten["test"].images, first["test"].images)


@pytest.mark.realdata
def test_corrupt_cache_is_rebuilt(mnist_test_only):
    first = load_dataset("mnist", progress=False)
    (arrays_dir("mnist") / "test.labels.npy").write_bytes(b"garbage")
    again = load_dataset("mnist", progress=False)
    np.testing.assert_array_equal(again["test"].labels, first["test"].labels)


# ---- two processes, one empty data home -------------------------------------------------------------

CHILD = r"""
import hashlib, sys, time
from pathlib import Path
from cnnlab.data import load_dataset
go = Path(sys.argv[1])
Path(sys.argv[2]).touch()  # ready
while not go.exists():
    time.sleep(0.01)
dataset = load_dataset("mnist", progress=False)
for name, split in sorted(dataset.splits.items()):
    print(name, split.images.shape, hashlib.sha256(split.images.tobytes() + split.labels.tobytes()).hexdigest())
"""


def _start_child(tmp_path: Path, tag: str, env: dict) -> tuple[subprocess.Popen, Path]:
    ready = tmp_path / f"ready-{tag}"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "go"), str(ready)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, ready


def _wait_for(path: Path, procs, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            for p in procs:
                p.kill()
            raise AssertionError(f"child never got ready: {[p.communicate() for p in procs]}")
        time.sleep(0.01)


def _finish(procs) -> list[str]:
    outputs = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        assert proc.returncode == 0, err
        outputs.append(out)
    return outputs


def _expected(out: str) -> None:
    lines = out.splitlines()
    assert [line.split(" (")[0] for line in lines] == ["test", "train"]
    assert "(10000, 1, 28, 28)" in lines[0] and "(60000, 1, 28, 28)" in lines[1]


@pytest.fixture
def child_env(server, mnist_bytes, online, monkeypatch):
    server.files.update(mnist_bytes)
    monkeypatch.setenv("CNNLAB_MIRROR", server.url)
    return {**os.environ}


@pytest.mark.network
@pytest.mark.realdata
def test_two_processes_fill_one_empty_data_home(tmp_path, server, child_env):
    procs = [_start_child(tmp_path, tag, child_env) for tag in "ab"]
    for _, ready in procs:
        _wait_for(ready, [p for p, _ in procs])
    (tmp_path / "go").touch()
    first, second = _finish([p for p, _ in procs])
    _expected(first)
    assert first == second
    assert sorted(server.names_requested()) == sorted(MNIST_FILES)  # each file fetched once
    assert leftovers(raw_dir("mnist")) == sorted(MNIST_FILES)
    here = load_dataset("mnist", progress=False)  # from the cache the children wrote
    assert len(server.requests) == 4
    assert f"{hashlib.sha256(here['test'].images.tobytes() + here['test'].labels.tobytes()).hexdigest()}" in first


@pytest.mark.network
@pytest.mark.realdata
def test_second_process_starting_mid_download(tmp_path, server, child_env):
    """The second process starts while the first has fetched one file and waits for the next: it must not
    take the one present file for the whole dataset."""
    hold = server.hold["train-labels-idx1-ubyte.gz"] = threading.Event()
    first, first_ready = _start_child(tmp_path, "a", child_env)
    _wait_for(first_ready, [first])
    (tmp_path / "go").touch()
    _wait_file(raw_dir("mnist") / "train-images-idx3-ubyte.gz", first)  # file 1 is in; file 2 is held
    second, second_ready = _start_child(tmp_path, "b", child_env)
    _wait_for(second_ready, [first, second])
    time.sleep(0.5)  # the second process looks at the data home while the first is still downloading
    hold.set()
    outputs = _finish([first, second])
    _expected(outputs[0])
    assert outputs[0] == outputs[1]


def _wait_file(path: Path, proc, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    return True
