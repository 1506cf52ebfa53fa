"""CIFAR-10/100 in the official python-pickle layout, read without running pickled code."""

from __future__ import annotations

import io
import pickle
import tarfile
import zlib
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


def read_cifar_archive(path: Path, variant: str) -> dict:
    """Parse a CIFAR python archive (.tar.gz) in place: {split: (images, labels, items)}, classes.

    `variant` is 'cifar10', 'cifar100' (fine labels) or 'cifar100-coarse'. Missing batches are
    allowed (a subset archive); `items` keeps each image's position in the official split.
    """
    members = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for info in tar.getmembers():
                if info.isfile():
                    members[PurePosixPath(info.name).name] = info
            wanted = _wanted_members(variant)
            blobs = {}
            for name in wanted:
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
    meta = safe_unpickle(blobs[meta_name], f"{path}:{meta_name}")
    name_key = {"cifar10": "label_names", "cifar100": "fine_label_names", "cifar100-coarse": "coarse_label_names"}
    classes = tuple(_text(c) for c in _get(meta, name_key[variant], f"{path}:{meta_name}"))
    label_key = {"cifar10": "labels", "cifar100": "fine_labels", "cifar100-coarse": "coarse_labels"}[variant]
    splits = {}
    if variant == "cifar10":
        parts = {"train": CIFAR10_TRAIN, "test": ["test_batch"]}
    else:
        parts = {"train": ["train"], "test": ["test"]}
    for split, names in parts.items():
        chunks = []
        for position, name in enumerate(names):
            if name in blobs:
                images, labels = batch_arrays(safe_unpickle(blobs[name], f"{path}:{name}"), label_key, f"{path}:{name}")
                chunks.append((images, labels, position * 10_000 + np.arange(len(labels))))
        if chunks:
            splits[split] = tuple(np.concatenate(c) for c in zip(*chunks))
    if not splits:
        raise DataError(f"{path}: holds no {variant} batches")
    return {"splits": splits, "classes": classes}


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
