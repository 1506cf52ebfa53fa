"""Exploring a dataset: sizes, class balance, pixel statistics, duplicate images, sample grids."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError, bad_value
from .dataset import Dataset, channel_stats
from .datasets import DATASETS, present_datasets
from .load import load_dataset

_MULT = np.uint64(0x9E3779B97F4A7C15)

# Families whose datasets NIST drew from the same images: describing one compares it with the others.
SHARED_IMAGE_FAMILIES = ("emnist",)


def image_hashes(images: np.ndarray) -> np.ndarray:
    """A 64-bit hash per image (vectorised over images; equal pixels ⇒ equal hash)."""
    flat = np.ascontiguousarray(images).reshape(len(images), int(np.prod(images.shape[1:])))  # -1 fails on 0 images
    pad = (-flat.shape[1]) % 8
    if pad:
        flat = np.concatenate([flat, np.zeros((len(flat), pad), np.uint8)], axis=1)
    words = flat.view(np.uint64)
    h = np.full(len(words), np.uint64(flat.shape[1]), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in words.T:
            h = (h ^ column) * _MULT
            h ^= h >> np.uint64(29)
    return h


def duplicates_within(hashes: np.ndarray) -> int:
    """How many images repeat an earlier image of the same split."""
    return int(len(hashes) - len(np.unique(hashes)))


def overlap(a: np.ndarray, b: np.ndarray) -> int:
    """How many images of `a` also appear in `b`."""
    return int(np.isin(a, b).sum())


@dataclass
class SplitInfo:
    name: str
    size: int
    official: int | None
    counts: np.ndarray
    mean: tuple[float, ...]
    std: tuple[float, ...]
    duplicates: int


@dataclass
class DatasetInfo:
    name: str
    classes: tuple[str, ...]
    image_shape: tuple[int, int, int]
    splits: list[SplitInfo]
    presence: list[str]
    train_test_overlap: int | None
    cross_overlaps: list[tuple[str, str, str, int, int]] = field(default_factory=list)
    notes: tuple[str, ...] = ()

    @property
    def reference(self) -> SplitInfo:
        return next((s for s in self.splits if s.name == "train"), self.splits[0])

    @property
    def imbalance(self) -> float:
        counts = self.reference.counts
        present = counts[counts > 0]
        return float(present.max() / present.min()) if len(present) else float("nan")

    def extremes(self, k: int = 3) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        counts = self.reference.counts
        order = np.argsort(counts, kind="stable")
        rarest = [(self.classes[i], int(counts[i])) for i in order[:k]]
        commonest = [(self.classes[i], int(counts[i])) for i in order[::-1][:k]]
        return rarest, commonest


def dataset_info(dataset: Dataset, compare_with: dict[str, Dataset] | None = None) -> DatasetInfo:
    """Sizes, per-class counts, imbalance, pixel statistics and duplicates; `compare_with` adds the
    overlap of each split with each split of other datasets (EMNIST's splits share images)."""
    hashes = {name: image_hashes(split.images) for name, split in dataset.splits.items()}
    splits = []
    for name, split in dataset.splits.items():
        mean, std = channel_stats(split.images)
        counts = np.bincount(split.labels, minlength=dataset.num_classes)
        splits.append(SplitInfo(name, len(split), dataset.official.get(name), counts, mean, std,
                                duplicates_within(hashes[name])))
    train_test = overlap(hashes["test"], hashes["train"]) if {"train", "test"} <= set(hashes) else None
    cross = []
    for other_name, other in (compare_with or {}).items():
        other_hashes = {n: image_hashes(s.images) for n, s in other.splits.items()}
        for mine, h in hashes.items():
            for theirs, oh in other_hashes.items():
                cross.append((mine, other_name, theirs, overlap(h, oh), len(h)))
    return DatasetInfo(dataset.name, dataset.classes, dataset.image_shape, splits, dataset.presence(), train_test,
                       cross, dataset.notes)


def describe_dataset(name: str, download: bool = True, progress: bool = True) -> DatasetInfo:
    """dataset_info of the dataset `name` (fetched when absent, if `download`). An EMNIST split is compared
    with every other EMNIST split whose files are on this machine (never downloaded)."""
    dataset = load_dataset(name, download=download, progress=progress)
    siblings = {}
    family = DATASETS.get(name).source.family if name in DATASETS else None
    if family in SHARED_IMAGE_FAMILIES:
        for other in present_datasets(family):
            if other != name:
                siblings[other] = load_dataset(other, download=False)
    return dataset_info(dataset, siblings)


def literal(text) -> str:
    """`text` as matplotlib should draw it: as written, never as mathtext (a class folder named
    'a$b$c' or '$x^$' would otherwise be typeset, or crash the drawing)."""
    return str(text).replace("$", r"\$")


def upright_grid(images: np.ndarray) -> np.ndarray:
    """N×C×H×W uint8 → N×H×W(×3) for imshow."""
    return images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)


def sample_grid(dataset: Dataset, per_class: int = 8, split: str | None = None, seed: int = 0,
                max_rows: int = 16):
    """A matplotlib figure: `per_class` random samples of each class, one row per class, labelled."""
    from matplotlib.figure import Figure  # not pyplot: no backend is chosen or changed, nothing to close

    if split is not None and split not in dataset.splits:
        raise DataError(f"{dataset.name} has no {split!r} split; --split takes one of {', '.join(dataset.splits)}")
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise bad_value("per_class", "sample_grid", "a whole number, 1 or more", per_class)
    data = dataset[split or ("train" if "train" in dataset.splits else next(iter(dataset.splits)))]
    rng = np.random.default_rng(seed)
    n = dataset.num_classes
    blocks = -(-n // max_rows)
    rows = min(n, max_rows)
    fig = Figure(figsize=(0.5 * blocks * (per_class + 1), 0.55 * rows))
    axes = fig.subplots(rows, blocks * (per_class + 1), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    pictures = upright_grid(data.images)
    cmap = "gray_r" if data.images.shape[1] == 1 else None
    for label, name in enumerate(dataset.classes):
        row, block = label % max_rows, label // max_rows
        col0 = block * (per_class + 1)
        axes[row, col0].text(0.95, 0.5, literal(name), ha="right", va="center", fontsize=10,
                             transform=axes[row, col0].transAxes)
        members = np.flatnonzero(data.labels == label)
        chosen = rng.choice(members, size=min(per_class, len(members)), replace=False) if len(members) else []
        for j, index in enumerate(chosen):
            axes[row, col0 + 1 + j].imshow(pictures[index], cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
    fig.suptitle(literal(f"{dataset.name}: {per_class} samples per class"), fontsize=11)
    fig.tight_layout(pad=0.2, rect=(0, 0, 1, 1 - 0.5 / (0.55 * rows)))  # leave half an inch for the title
    return fig


def class_histogram(dataset: Dataset):
    """A matplotlib bar chart of images per class for each split."""
    from matplotlib.figure import Figure  # not pyplot: no backend is chosen or changed, nothing to close

    n = dataset.num_classes
    fig = Figure(figsize=(max(6, 0.22 * n + 2), 3.6))
    ax = fig.subplots()
    names = list(dataset.splits)
    width = 0.8 / len(names)
    x = np.arange(n)
    for i, name in enumerate(names):
        counts = np.bincount(dataset.splits[name].labels, minlength=n)
        ax.bar(x + (i - (len(names) - 1) / 2) * width, counts, width, label=literal(f"{name} ({counts.sum():,})"))
    ax.set_xticks(x, [literal(c) for c in dataset.classes],
                  rotation=90 if n > 20 or max(map(len, dataset.classes)) > 3 else 0, fontsize=8)
    ax.set_ylabel("images")
    ax.set_title(literal(f"{dataset.name}: images per class"))
    # outside the axes, right of them: inside, it would hide the bars under it
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    return fig
