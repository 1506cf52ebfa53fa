"""The in-memory dataset: uint8 images N×C×H×W, int64 labels, class names, official split sizes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError


@dataclass(frozen=True)
class Split:
    """One split. `items` are the images' positions in the official file (partial data keeps them)."""

    images: np.ndarray
    labels: np.ndarray
    items: np.ndarray | None = None

    def __post_init__(self):
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise DataError(f"images must be uint8 N×C×H×W, got {self.images.dtype} {self.images.shape}")
        if self.labels.shape != (len(self.images),):
            raise DataError(f"{len(self.images)} images but labels of shape {self.labels.shape}")
        if self.items is not None and self.items.shape != self.labels.shape:
            raise DataError("item positions do not match the number of images")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> Split:
        items = self.items[index] if self.items is not None else np.asarray(index, dtype=np.int64)
        return Split(self.images[index], self.labels[index], items)

    def to_torch(self, device="cpu"):
        """(images uint8 tensor, labels int64 tensor) on `device`."""
        import torch

        images = torch.from_numpy(np.ascontiguousarray(self.images)).to(device)
        return images, torch.from_numpy(self.labels).to(device)


@dataclass(frozen=True)
class Dataset:
    """A named dataset. `official` gives each split's full size, so partial data can say what it lacks."""

    name: str
    classes: tuple[str, ...]
    splits: dict[str, Split]
    official: dict[str, int] = field(default_factory=dict)
    flips_allowed: bool = False
    notes: tuple[str, ...] = ()

    def __post_init__(self):
        for split_name, split in self.splits.items():
            if len(split) and (split.labels.min() < 0 or split.labels.max() >= len(self.classes)):
                raise DataError(
                    f"{self.name} {split_name}: labels run from {split.labels.min()} to "
                    f"{split.labels.max()} but there are {len(self.classes)} classes"
                )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(next(iter(self.splits.values())).images.shape[1:])

    def __getitem__(self, split: str) -> Split:
        try:
            return self.splits[split]
        except KeyError:
            have = ", ".join(self.splits) or "none"
            raise DataError(
                f"{self.name} has no {split!r} split (present: {have}); carve one out of a present "
                f"split with carve_splits(dataset, source=...)"
            ) from None

    def replace(self, **changes) -> Dataset:
        return dataclasses.replace(self, **changes)

    def presence(self) -> list[str]:
        """One line per split saying how much of the official data is present."""
        lines = []
        for split_name in sorted(set(self.official) | set(self.splits), key=_split_order):
            have = len(self.splits[split_name]) if split_name in self.splits else 0
            full = self.official.get(split_name)
            if full is None:
                lines.append(f"{split_name}: {have:,} images")
            elif have == full:
                lines.append(f"{split_name}: {have:,} images (complete)")
            else:
                where = _item_ranges(self.splits[split_name].items) if have else ""
                lines.append(f"{split_name}: {have:,} of {full:,} images{where}")
        return lines


def channel_stats(images: np.ndarray, chunk: int = 65536) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std per channel on the 0–1 scale, accumulated in float64 chunks to bound memory."""
    channels = images.shape[1]
    if images.dtype == np.uint8:  # exact sums from a 256-bin histogram, without float64 copies of the images
        counts = np.zeros((channels, 256), dtype=np.int64)
        step = max(1, (1 << 20) // max(1, images.shape[2] * images.shape[3]))  # bincount copies to int64
        for start in range(0, len(images), step):
            block = images[start : start + step]
            for c in range(channels):
                counts[c] += np.bincount(block[:, c].reshape(-1), minlength=256)
        values = np.arange(256, dtype=np.float64)
        counts = counts.astype(np.float64)
        count = max(1, len(images) * images.shape[2] * images.shape[3])
        mean = counts @ values / count
        std = np.sqrt(np.maximum(counts @ np.square(values) / count - mean**2, 0.0))
        return tuple(float(m / 255) for m in mean), tuple(float(s / 255) for s in std)
    total = np.zeros(channels)
    total_sq = np.zeros(channels)
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].astype(np.float64)
        total += block.sum(axis=(0, 2, 3))
        total_sq += np.square(block).sum(axis=(0, 2, 3))
    count = max(1, len(images) * images.shape[2] * images.shape[3])
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return tuple(float(m / 255) for m in mean), tuple(float(s / 255) for s in std)


def _split_order(name: str) -> tuple[int, str]:
    return ({"train": 0, "val": 1, "test": 2}.get(name, 3), name)


def _item_ranges(items: np.ndarray | None, limit: int = 3) -> str:
    if items is None or not len(items):
        return ""
    items = np.sort(items)
    breaks = np.flatnonzero(np.diff(items) != 1)
    starts = np.concatenate([[items[0]], items[breaks + 1]])
    ends = np.concatenate([items[breaks], [items[-1]]])
    ranges = [f"{s:,}–{e:,}" for s, e in zip(starts[:limit], ends[:limit])]
    more = f" and {len(starts) - limit} more ranges" if len(starts) > limit else ""
    return f" (items {', '.join(ranges)}{more})"
