"""CIFAR python archives: fixtures written as Python 2's cPickle wrote them, partial archives, hostile
pickles (refused, never run), and the real CIFAR-10 subset of ../shared/data."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from data_helpers import Raw, make_archive, py2_pickle
from realdata import need

from cnnlab.data import add_local, load_dataset
from cnnlab.data.cache import data_home
from cnnlab.data.cifar import read_cifar_archive, safe_unpickle
from cnnlab.errors import DataError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def cifar10_batch(n: int, seed: int) -> tuple[dict, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n)
    batch = {b"batch_label": b"training batch", b"labels": [int(v) for v in labels],
             b"data": images.reshape(n, 3072), b"filenames": [b"img_%d.png" % i for i in range(n)]}
    return batch, images, labels


def cifar10_archive(path: Path, batches: dict[str, int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    members = {"batches.meta": py2_pickle({b"label_names": list(CIFAR10_CLASSES), b"num_cases_per_batch": 10000,
                                           b"num_vis": 3072})}
    truth = {}
    for seed, (name, n) in enumerate(batches.items()):
        batch, images, labels = cifar10_batch(n, seed)
        members[name] = py2_pickle(batch)
        truth[name] = (images, labels)
    make_archive(path, "cifar-10-batches-py", members)
    return truth


@pytest.fixture
def cifar10_fixture(tmp_path):
    path = tmp_path / "cifar10-small.tar.gz"
    truth = cifar10_archive(path, {"data_batch_1": 7, "data_batch_2": 5, "test_batch": 4})
    return path, truth


def test_fixture_pickles_look_like_python2(cifar10_fixture):
    import pickletools

    blob = py2_pickle({b"data": np.zeros((1, 3072), np.uint8), b"labels": [1], b"label_names": [b"cat"]})
    ops = {op.name for op, _, _ in pickletools.genops(blob)}
    assert "SHORT_BINSTRING" in ops and "BINSTRING" in ops and "BINUNICODE" not in ops
    # the standard unpickler reads it the way CIFAR's own instructions say
    plain = pickle.loads(blob, encoding="bytes")
    assert plain[b"labels"] == [1] and plain[b"data"].shape == (1, 3072)


def test_parse_cifar10(cifar10_fixture):
    path, truth = cifar10_fixture
    parsed = read_cifar_archive(path, "cifar10")
    assert parsed["classes"] == CIFAR10_CLASSES
    images, labels, items = parsed["splits"]["train"]
    assert images.shape == (12, 3, 32, 32) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[:7], truth["data_batch_1"][0])
    np.testing.assert_array_equal(images[7:], truth["data_batch_2"][0])
    np.testing.assert_array_equal(labels, np.concatenate([truth["data_batch_1"][1], truth["data_batch_2"][1]]))
    # positions in the official split: batch 2 starts at item 10,000
    assert items.tolist() == [*range(7), *range(10_000, 10_005)]
    test_images, test_labels, _ = parsed["splits"]["test"]
    np.testing.assert_array_equal(test_images, truth["test_batch"][0])
    np.testing.assert_array_equal(test_labels, truth["test_batch"][1])


def test_channel_order_is_rrr_ggg_bbb(tmp_path):
    data = np.zeros((1, 3072), np.uint8)
    data[0, :1024], data[0, 1024:2048], data[0, 2048:] = 10, 20, 30
    path = make_archive(tmp_path / "c.tar.gz", "cifar-10-batches-py", {
        "batches.meta": py2_pickle({b"label_names": list(CIFAR10_CLASSES)}),
        "test_batch": py2_pickle({b"data": data, b"labels": [3]})})
    images = read_cifar_archive(path, "cifar10")["splits"]["test"][0]
    assert [int(images[0, c].mean()) for c in range(3)] == [10, 20, 30]


def test_load_cifar10_after_add_local(cifar10_fixture):
    path, truth = cifar10_fixture
    added = add_local("cifar10", path)
    assert added == [data_home() / "raw" / "cifar10" / path.name]
    dataset = load_dataset("cifar10", progress=False)
    assert dataset.classes == CIFAR10_CLASSES
    assert dataset.image_shape == (3, 32, 32)
    assert len(dataset["train"]) == 12 and len(dataset["test"]) == 4
    np.testing.assert_array_equal(dataset["test"].images, truth["test_batch"][0])
    assert dataset.flips_allowed
    assert any("not the official archive" in note for note in dataset.notes)


def test_partial_archive_reports_presence(tmp_path):
    path = tmp_path / "only-batch-1.tar.gz"
    cifar10_archive(path, {"data_batch_1": 10})
    add_local("cifar10", path)
    dataset = load_dataset("cifar10", progress=False)
    assert list(dataset.splits) == ["train"]
    presence = dataset.presence()
    assert presence[0].startswith("train: 10 of 50,000 images")
    assert "items 0–9" in presence[0]
    assert presence[1] == "test: 0 of 10,000 images"
    with pytest.raises(DataError, match="no 'test' split"):
        dataset["test"]


def test_cifar100_fine_and_coarse(tmp_path):
    rng = np.random.default_rng(3)
    fine_names = [f"fine{i}" for i in range(100)]
    coarse_names = [f"coarse{i}" for i in range(20)]

    def batch(n):
        fine = rng.integers(0, 100, size=n)
        return {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                b"fine_labels": [int(v) for v in fine], b"coarse_labels": [int(v) // 5 for v in fine]}

    train, test = batch(9), batch(3)
    path = make_archive(tmp_path / "c100.tar.gz", "cifar-100-python", {
        "meta": py2_pickle({b"fine_label_names": fine_names, b"coarse_label_names": coarse_names}),
        "train": py2_pickle(train), "test": py2_pickle(test)})
    parsed = read_cifar_archive(path, "cifar100")
    assert parsed["classes"] == tuple(fine_names)
    assert parsed["splits"]["train"][1].tolist() == train[b"fine_labels"]
    coarse = read_cifar_archive(path, "cifar100-coarse")
    assert coarse["classes"] == tuple(coarse_names)
    assert coarse["splits"]["test"][1].tolist() == test[b"coarse_labels"]
    np.testing.assert_array_equal(coarse["splits"]["test"][0].reshape(3, 3072), test[b"data"])

    add_local("cifar100", path)
    fine_ds = load_dataset("cifar100", progress=False)
    coarse_ds = load_dataset("cifar100-coarse", progress=False)
    assert fine_ds.num_classes == 100 and coarse_ds.num_classes == 20
    assert fine_ds["train"].labels.tolist() == train[b"fine_labels"]
    assert coarse_ds["train"].labels.tolist() == train[b"coarse_labels"]
    np.testing.assert_array_equal(fine_ds["train"].images, coarse_ds["train"].images)


def test_cifar100_archive_is_not_cifar10(tmp_path):
    path = make_archive(tmp_path / "c100.tar.gz", "cifar-100-python", {
        "meta": py2_pickle({b"fine_label_names": ["a"], b"coarse_label_names": ["b"]})})
    with pytest.raises(DataError, match="'batches.meta'"):
        read_cifar_archive(path, "cifar10")


# ---- damaged and hostile archives ------------------------------------------------------------------


def test_not_an_archive(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_bytes(b"not a tar file at all" * 10)
    with pytest.raises(DataError, match="not a readable CIFAR archive") as info:
        read_cifar_archive(path, "cifar10")
    assert str(path) in str(info.value)


def test_truncated_archive(tmp_path, cifar10_fixture):
    path, _ = cifar10_fixture
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError) as info:
        read_cifar_archive(cut, "cifar10")
    assert str(cut) in str(info.value)


@pytest.mark.parametrize("batch, message", [
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}, "2 images but 1 labels"),
    ({b"data": np.zeros((2, 100), np.uint8), b"labels": [1, 2]}, "3072 pixels"),
    ({b"labels": [1, 2]}, "no 'data' entry"),
    ([1, 2, 3], "expected a dict batch"),
])
def test_malformed_batches(tmp_path, batch, message):
    path = make_archive(tmp_path / "bad.tar.gz", "cifar-10-batches-py", {
        "batches.meta": py2_pickle({b"label_names": list(CIFAR10_CLASSES)}), "data_batch_1": py2_pickle(batch)})
    with pytest.raises(DataError, match=message) as info:
        read_cifar_archive(path, "cifar10")
    assert f"{path}:data_batch_1" in str(info.value)


class _System:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _Eval:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        import builtins

        return builtins.eval, (self.code,)


def _payloads(sentinel: Path) -> dict[str, object]:
    return {"os.system": _System(f"touch {sentinel}"), "eval": _Eval(f"open({str(sentinel)!r}, 'w').close()")}


GLOBAL_NAMES = {"os.system": f"{os.system.__module__}.system", "eval": "__builtin__.eval"}


def hostile_opcodes(obj) -> Raw:
    """The object as protocol 2 opcodes, without the PROTO header and STOP."""
    blob = pickle.dumps(obj, protocol=2)
    assert blob[:2] == b"\x80\x02" and blob[-1:] == b"."
    return Raw(blob[2:-1])


@pytest.mark.parametrize("kind", ["os.system", "eval"])
def test_payloads_are_live(tmp_path, kind):
    """Control: the hostile pickles really run code under a plain pickle.loads."""
    sentinel = tmp_path / "pwned"
    pickle.loads(pickle.dumps(_payloads(sentinel)[kind], protocol=2))
    assert sentinel.exists()


@pytest.mark.parametrize("member", ["batches.meta", "data_batch_1"])
@pytest.mark.parametrize("kind", ["os.system", "eval"])
def test_malicious_pickle_is_refused_and_not_run(tmp_path, kind, member):
    sentinel = tmp_path / "pwned"
    hostile = _payloads(sentinel)[kind]
    meta = {b"label_names": list(CIFAR10_CLASSES)}
    batch, _, _ = cifar10_batch(2, 0)
    members = {"batches.meta": py2_pickle(meta), "data_batch_1": py2_pickle(batch)}
    if member == "batches.meta":
        members[member] = py2_pickle({b"label_names": hostile_opcodes(hostile)})
    else:
        members[member] = py2_pickle({b"data": hostile_opcodes(hostile), b"labels": [0, 1]})
    # control: the same bytes run the payload under a plain unpickler
    control = tmp_path / "ctrl0"  # as long as "pwned", so the string opcodes' lengths still hold
    pickle.loads(members[member].replace(str(sentinel).encode(), str(control).encode()), encoding="bytes")
    assert control.exists()
    path = make_archive(tmp_path / "evil.tar.gz", "cifar-10-batches-py", members)
    with pytest.raises(DataError, match=f"refusing to load {GLOBAL_NAMES[kind]}") as info:
        read_cifar_archive(path, "cifar10")
    assert f"{path}:{member}" in str(info.value)
    assert not sentinel.exists()
    with pytest.raises(DataError, match="refusing to load"):
        add_local("cifar10", path)
    assert not sentinel.exists()
    assert not (data_home() / "raw" / "cifar10" / path.name).exists()  # never entered the data home


def test_safe_unpickle_refuses_other_globals():
    blob = pickle.dumps({"x": Path("/tmp")}, protocol=2)
    with pytest.raises(DataError, match="refusing to load pathlib"):
        safe_unpickle(blob, "member")
    with pytest.raises(DataError, match="not a CIFAR python batch"):
        safe_unpickle(b"\x80\x02}(", "member")  # truncated


# ---- the real CIFAR-10 subset ---------------------------------------------------------------------

_REAL: dict[Path, dict] = {}


@pytest.fixture
def real_cifar10(shared_data):
    path = need(shared_data / "cifar10" / "cifar-10-python-subset.tar.gz")
    if path not in _REAL:
        _REAL[path] = read_cifar_archive(path, "cifar10")
    return path, _REAL[path]


@pytest.mark.realdata
def test_real_subset_counts_and_classes(real_cifar10):
    _, parsed = real_cifar10
    assert parsed["classes"] == CIFAR10_CLASSES
    train_images, train_labels, train_items = parsed["splits"]["train"]
    test_images, test_labels, _ = parsed["splits"]["test"]
    assert train_images.shape == (10_000, 3, 32, 32) and test_images.shape == (10_000, 3, 32, 32)
    assert np.bincount(train_labels).tolist() == [1_000] * 10
    assert np.bincount(test_labels).tolist() == [1_000] * 10  # the official test set is balanced too
    assert train_items.tolist() == list(range(10_000))  # data_batch_1 only


@pytest.mark.realdata
def test_real_subset_pixel_means(real_cifar10):
    from cnnlab.data.dataset import channel_stats

    _, parsed = real_cifar10
    mean, std = channel_stats(parsed["splits"]["train"][0])
    np.testing.assert_allclose(mean, (0.4914, 0.4822, 0.4465), atol=0.01)
    np.testing.assert_allclose(std, (0.2470, 0.2435, 0.2616), atol=0.01)


@pytest.mark.realdata
def test_real_subset_through_load_dataset(real_cifar10):
    path, parsed = real_cifar10
    add_local("cifar10", path)
    dataset = load_dataset("cifar10", progress=False)
    assert dataset.presence() == ["train: 10,000 of 50,000 images (items 0–9,999)", "test: 10,000 images (complete)"]
    np.testing.assert_array_equal(dataset["test"].labels, parsed["splits"]["test"][1])
    np.testing.assert_array_equal(dataset["train"].images[::997], parsed["splits"]["train"][0][::997])
