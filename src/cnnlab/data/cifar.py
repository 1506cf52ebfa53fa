"""CIFAR-10/100 in the official python-pickle layout, read without running pickled code."""

from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import DataError

# The only globals the official files reference; anything else is refused.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: CIFAR files never contain it")
        if module == "numpy.core.multiarray":  # NumPy 2 moved it; old pickles still name the old path
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


def safe_unpickle(data: bytes, source: str):
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as exc:
        raise DataError(f"{source}: not a CIFAR python batch ({exc})") from None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _get(batch: dict, key: str, source: str):
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    raise DataError(f"{source}: batch has no {key!r} entry; is it a CIFAR python batch?")


def batch_arrays(batch, label_key: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(batch, dict):
        raise DataError(f"{source}: expected a dict batch, found {type(batch).__name__}")
    data = np.asarray(_get(batch, "data", source))
    labels = np.asarray(_get(batch, label_key, source), dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{source}: expected uint8 rows of 3072 pixels, found {data.dtype} {data.shape}")
    if len(data) != len(labels):
        raise DataError(f"{source}: {len(data)} images but {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32), labels


CIFAR10_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


def _read_members(path: Path, variant: str) -> dict[str, bytes]:
    """The archive's members that `variant` reads, by base name, each capped at what it may hold."""
    members = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for info in tar.getmembers():
                if info.isfile():
                    members[PurePosixPath(info.name).name] = info
            blobs = {}
            for name in _wanted_members(variant):
                if name not in members:
                    continue
                cap = member_cap(name)
                if members[name].size > cap:
                    raise DataError(f"{path}: member {members[name].name} is {members[name].size:,} bytes, more than "
                                    f"a CIFAR {name!r} can be ({cap:,}); the archive is corrupt or not CIFAR's "
                                    "python version")
                blobs[name] = tar.extractfile(members[name]).read(cap + 1)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(f"{path}: not a readable CIFAR archive ({exc}); download or add it again") from None
    meta_name = "batches.meta" if variant == "cifar10" else "meta"
    if meta_name not in blobs:
        raise DataError(f"{path}: has no {meta_name!r} member; is it the python version of {variant}?")
    return blobs


def read_cifar_archive(path: Path, variant: str) -> dict:
    """Parse a CIFAR python archive (.tar.gz) in place: {split: (images, labels, items)}, classes.

    `variant` is 'cifar10', 'cifar100' (fine labels) or 'cifar100-coarse'. Missing batches are
    allowed (a subset archive); `items` keeps each image's position in the official split. A CIFAR-100
    archive whose labels put one fine class in two superclasses is refused.
    """
    blobs = _read_members(path, variant)
    meta_name = "batches.meta" if variant == "cifar10" else "meta"
    meta = safe_unpickle(blobs[meta_name], f"{path}:{meta_name}")
    name_key = {"cifar10": "label_names", "cifar100": "fine_label_names", "cifar100-coarse": "coarse_label_names"}
    classes = tuple(_text(c) for c in _get(meta, name_key[variant], f"{path}:{meta_name}"))
    label_key = {"cifar10": "labels", "cifar100": "fine_labels", "cifar100-coarse": "coarse_labels"}[variant]
    splits, batches = {}, {}
    if variant == "cifar10":
        parts = {"train": CIFAR10_TRAIN, "test": ["test_batch"]}
    else:
        parts = {"train": ["train"], "test": ["test"]}
    for split, names in parts.items():
        chunks = []
        for position, name in enumerate(names):
            if name in blobs:
                batches[name] = safe_unpickle(blobs[name], f"{path}:{name}")
                images, labels = batch_arrays(batches[name], label_key, f"{path}:{name}")
                chunks.append((images, labels, position * 10_000 + np.arange(len(labels))))
        if chunks:
            splits[split] = tuple(np.concatenate(c) for c in zip(*chunks))
    if not splits:
        raise DataError(f"{path}: holds no {variant} batches")
    if variant != "cifar10" and _has_hierarchy(meta, batches.values()):
        _fine_to_coarse(meta, batches, path)  # either label set of a relabelled archive is suspect
    return {"splits": splits, "classes": classes}


@dataclass(frozen=True)
class FineToCoarse:
    """CIFAR-100's class hierarchy as an archive's labels pair it: the superclass of each fine class."""

    fine_classes: tuple[str, ...]
    coarse_classes: tuple[str, ...]
    table: np.ndarray  # superclass index of each fine class; -1 for a fine class no image in the archive shows

    def pairs(self) -> dict[str, str]:
        """{fine class name: superclass name} for every fine class the archive shows."""
        return {fine: self.coarse_classes[coarse] for fine, coarse in zip(self.fine_classes, self.table.tolist())
                if coarse >= 0}


def read_fine_to_coarse(path: Path) -> FineToCoarse:
    """The fine → superclass table of a CIFAR-100 python archive, from the (fine, coarse) label pair of
    every image in its train and test batches."""
    path = Path(path)
    blobs = _read_members(path, "cifar100")
    meta = safe_unpickle(blobs["meta"], f"{path}:meta")
    batches = {name: safe_unpickle(blobs[name], f"{path}:{name}") for name in ("train", "test") if name in blobs}
    if not batches:
        raise DataError(f"{path}: holds neither a 'train' nor a 'test' batch to read the fine → superclass pairs "
                        f"from; add the CIFAR-100 python archive (cifar-100-python.tar.gz)")
    return _fine_to_coarse(meta, batches, path)


def _has_hierarchy(meta, batches) -> bool:
    keys = {_text(k) for k in meta} if isinstance(meta, dict) else set()
    labelled = all(isinstance(b, dict) and {"fine_labels", "coarse_labels"} <= {_text(k) for k in b} for b in batches)
    return {"fine_label_names", "coarse_label_names"} <= keys and labelled


def _fine_to_coarse(meta, batches: dict, path: Path) -> FineToCoarse:
    fine_classes = tuple(_text(c) for c in _get(meta, "fine_label_names", f"{path}:meta"))
    coarse_classes = tuple(_text(c) for c in _get(meta, "coarse_label_names", f"{path}:meta"))
    table = np.full(len(fine_classes), -1, np.int64)
    for name, batch in batches.items():
        source = f"{path}:{name}"
        fine = np.asarray(_get(batch, "fine_labels", source), dtype=np.int64)
        coarse = np.asarray(_get(batch, "coarse_labels", source), dtype=np.int64)
        _add_pairs(table, fine, coarse, fine_classes, coarse_classes, source)
    return FineToCoarse(fine_classes, coarse_classes, table)


def _add_pairs(table: np.ndarray, fine: np.ndarray, coarse: np.ndarray, fine_classes, coarse_classes,
               source: str) -> None:
    """Enter a batch's (fine, coarse) label pairs into `table`, refusing a fine class with two superclasses."""
    if len(fine) != len(coarse):
        raise DataError(f"{source}: {len(fine):,} fine labels but {len(coarse):,} coarse labels; the batch is corrupt")
    for labels, names, kind in ((fine, fine_classes, "fine"), (coarse, coarse_classes, "coarse")):
        if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
            raise DataError(f"{source}: {kind} labels run from {labels.min()} to {labels.max()} but the meta names "
                            f"{len(names)} {kind} classes; the archive is corrupt")
    known = np.flatnonzero(table >= 0)  # pairs from earlier batches must hold here too
    pairs = np.unique(np.concatenate([np.stack([fine, coarse], 1), np.stack([known, table[known]], 1)]), axis=0)
    fine_ids, counts = np.unique(pairs[:, 0], return_counts=True)
    if (counts > 1).any():
        clash = fine_ids[counts > 1][0]
        supers = " and ".join(repr(coarse_classes[c]) for c in pairs[pairs[:, 0] == clash, 1])
        raise DataError(f"{source}: fine class {fine_classes[clash]!r} is labelled with the superclasses {supers}, "
                        f"but every CIFAR-100 fine class belongs to exactly one; the archive is corrupt or relabelled: "
                        f"add the official cifar-100-python.tar.gz again")
    table[pairs[:, 0]] = pairs[:, 1]


# The most images one official batch holds; a member is refused above their pixels plus room for the
# pickled labels and file names (CIFAR-100's train batch: 155.8 MB for 150 MB of pixels).
_BATCH_IMAGES = {"train": 50_000}
_META_CAP = 1 << 20


def member_cap(name: str) -> int:
    """The most bytes the archive member `name` may hold before it is read."""
    if name in ("meta", "batches.meta"):
        return _META_CAP
    return _BATCH_IMAGES.get(name, 10_000) * 3072 + (8 << 20)


def _wanted_members(variant: str) -> list[str]:
    if variant == "cifar10":
        return ["batches.meta", *CIFAR10_TRAIN, "test_batch"]
    return ["meta", "train", "test"]
