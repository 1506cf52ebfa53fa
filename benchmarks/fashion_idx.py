"""Fashion-MNIST's IDX gzip files -> uint8 NumPy arrays, for the baseline trainers.

NumPy only on purpose: keras_bench.py runs in a TensorFlow env that has neither torch nor
cnnlab, and the baselines must not borrow cnnlab's own (optimised, cached) loader.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

ROOT = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist package
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """One IDX file: a big-endian header (magic, then one uint32 per dimension), then uint8 data."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ValueError(f"{path}: IDX magic {found}, expected {magic}")
    ndim = data[3]  # the magic's low byte is the number of dimensions (3 for images, 1 for labels)
    dims = np.frombuffer(data, ">u4", count=ndim, offset=4).astype(int)
    array = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if array.size != dims.prod():
        raise ValueError(f"{path}: {array.size} bytes of data for dims {tuple(dims)}")
    return array.reshape(dims)


def load(split: str = "train", subset: int | None = None, root: str | Path = ROOT) -> tuple[np.ndarray, np.ndarray]:
    """(images n x 28 x 28, labels n), both uint8; `subset` keeps the first n, in file order."""
    prefix = {"train": "train", "test": "t10k"}[split]
    root = Path(root)
    images = read_idx(root / f"{prefix}-images-idx3-ubyte.gz", IMAGES_MAGIC)
    labels = read_idx(root / f"{prefix}-labels-idx1-ubyte.gz", LABELS_MAGIC)
    if len(images) != len(labels):
        raise ValueError(f"{root}: {len(images)} {split} images but {len(labels)} labels")
    if subset is not None:
        images, labels = images[:subset], labels[:subset]
    return images, labels
