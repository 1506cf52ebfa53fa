"""Deterministic stratified splits and subsets, and carving splits out of whatever split exists."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, DataError
from .dataset import Dataset, Split


def _check_size(size: float | int, total: int, what: str) -> None:
    if isinstance(size, bool) or not isinstance(size, (int, float, np.integer, np.floating)):
        raise ConfigError(f"The '{what}' parameter must be a fraction in (0, 1) or a count. Got {size!r} instead.")
    if isinstance(size, (float, np.floating)) and not 0 < size < 1:
        raise ConfigError(f"The '{what}' parameter must be a fraction in (0, 1) or a count. Got {size!r} instead.")
    if isinstance(size, (int, np.integer)) and not 0 < size < total:
        raise ConfigError(f"The '{what}' parameter must be a count between 1 and {total - 1}. Got {size} instead.")


def stratified_indices(labels: np.ndarray, size: float | int, seed: int = 0,
                       what: str = "size") -> tuple[np.ndarray, np.ndarray]:
    """(rest, taken): `size` (a fraction or a count) taken per class in proportion, seeded, both sorted.
    `what` is the caller's parameter name, for the error message."""
    from sklearn.model_selection import train_test_split

    _check_size(size, len(labels), what)
    index = np.arange(len(labels))
    try:
        rest, taken = train_test_split(index, test_size=size, stratify=labels, random_state=seed)
    except ValueError as exc:
        raise DataError(f"cannot split {len(labels):,} images stratified by class: {exc}") from None
    return np.sort(rest), np.sort(taken)


def stratified_split(dataset: Dataset, val: float | int = 0.1, seed: int = 0, source: str = "train") -> Dataset:
    """Move a stratified `val` fraction or count of `source` into a new 'val' split."""
    split = dataset[source]
    rest, taken = stratified_indices(split.labels, val, seed, what="val")
    splits = dict(dataset.splits)
    splits[source] = split.subset(rest)
    splits["val"] = split.subset(taken)
    notes = (*dataset.notes, f"val: {len(taken):,} stratified from {source} (seed {seed})")
    return dataset.replace(splits=splits, notes=notes)


def stratified_subset(split: Split, size: float | int, seed: int = 0) -> Split:
    """A class-balanced subset (a sorted file like EMNIST letters' test set makes head-slicing useless)."""
    _, taken = stratified_indices(split.labels, size, seed)
    return split.subset(taken)


def carve_splits(dataset: Dataset, source: str, val: float | int = 0.1, test: float | int = 0.1,
                 seed: int = 0) -> Dataset:
    """Make train / val / test out of one present split (e.g. EMNIST bymerge's test file alone)."""
    split = dataset[source]
    _check_size(val, len(split), "val")  # as given: a bad fraction must not be reported as the count it becomes
    rest, test_idx = stratified_indices(split.labels, test, seed, what="test")
    val_count = val if isinstance(val, (int, np.integer)) else int(round(val * len(split)))
    _check_size(val_count, len(rest), "val")
    keep, val_idx = stratified_indices(split.labels[rest], int(val_count), seed + 1)
    splits = {"train": split.subset(rest[keep]), "val": split.subset(rest[val_idx]), "test": split.subset(test_idx)}
    note = (f"train/val/test carved from {source} ({len(keep):,}/{len(val_idx):,}/{len(test_idx):,}, "
            f"stratified, seed {seed})")
    official = {k: len(v) for k, v in splits.items()}
    return dataset.replace(splits=splits, notes=(*dataset.notes, note), official=official)


def prepare_splits(dataset: Dataset, val: float | int = 0.1, carve_from: str | None = None,
                   test: float | int = 0.1, subset: float | int | None = None, seed: int = 0) -> Dataset:
    """The train / val / test a run uses: the official test split, a stratified val out of train (or all
    three carved out of `carve_from`), and optionally a stratified subset of train. Seeded by `seed`
    alone, so runs that differ only in their training seed see the same validation and test images."""
    if carve_from is not None:
        dataset = carve_splits(dataset, carve_from, val=val, test=test, seed=seed)
    else:
        if "train" not in dataset.splits:
            raise DataError(f"{dataset.name} has no train split (present: {', '.join(dataset.splits) or 'none'}); "
                            f"set data.carve_from to one of them to carve train/val/test out of it")
        if "test" not in dataset.splits:
            raise DataError(f"{dataset.name} has no test split; set data.carve_from=train to carve "
                            f"train/val/test out of the training images")
        if "val" not in dataset.splits:
            dataset = stratified_split(dataset, val, seed)
    if subset is not None:
        splits = dict(dataset.splits)
        splits["train"] = stratified_subset(dataset["train"], subset, seed)
        note = f"train: a stratified subset of {len(splits['train']):,} images"
        dataset = dataset.replace(splits=splits, notes=(*dataset.notes, note))
    return dataset
