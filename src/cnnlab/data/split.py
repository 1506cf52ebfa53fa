"""Deterministic stratified splits and subsets, and carving splits out of whatever split exists."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError, DataError, bad_value
from .dataset import Dataset, Split

if TYPE_CHECKING:
    from ..config import DataConfig


# How errors name each size: the functions' own parameters, or (prepare_splits, which runs use)
# the config keys and flags the user typed.
API_NAMES = {"val": "val", "test": "test", "subset": "size", "carve_from": "source"}
CONFIG_NAMES = {"val": "data.val (--val)", "test": "data.test", "subset": "data.subset (--subset)",
                "carve_from": "data.carve_from"}


def _check_size(size: float | int, total: int, what: str, pool: str = "images", owner: str = "") -> None:
    """`size` is a fraction in (0, 1) or a count below `total`; `what` names it, `pool` says of what, and
    `owner` is the function whose parameter `what` is, when it is one."""
    if what.isidentifier():  # a function's own parameter
        _check_parameter(size, total, what, owner)
        return
    largest = f"a count from 1 to {total - 1:,} ({total:,} {pool})" if total > 1 else f"nothing: only {total} {pool}"
    if isinstance(size, bool) or not isinstance(size, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{what} must be a fraction in (0, 1) or {largest}. Got {size!r} instead.")
    if isinstance(size, (float, np.floating)) and not 0 < size < 1:
        raise ConfigError(f"{what} must be a fraction in (0, 1) or {largest}. Got {size!r} instead.")
    if isinstance(size, (int, np.integer)) and not 0 < size < total:
        raise ConfigError(f"{what} must be {largest} or a fraction in (0, 1). Got {size:,} instead.")


def _check_parameter(size, total: int, what: str, owner: str) -> None:
    if isinstance(size, bool) or not isinstance(size, (int, float, np.integer, np.floating)):
        raise bad_value(what, owner, "a fraction in (0, 1) or a count", size)
    if isinstance(size, (float, np.floating)) and not 0 < size < 1:
        raise bad_value(what, owner, "a fraction in (0, 1) or a count", size)
    if isinstance(size, (int, np.integer)) and not 0 < size < total:
        raise bad_value(what, owner, f"a count between 1 and {total - 1}", int(size))


def stratified_indices(labels: np.ndarray, size: float | int, seed: int = 0, what: str = "size",
                       pool: str = "images", owner: str = "stratified_indices") -> tuple[np.ndarray, np.ndarray]:
    """(rest, taken): `size` (a fraction or a count) taken per class in proportion, seeded, both sorted.
    `what`, `pool` and `owner` name the size, what it is taken from and whose parameter it is, for errors."""
    from sklearn.model_selection import train_test_split

    _check_size(size, len(labels), what, pool, owner)
    index = np.arange(len(labels))
    try:
        rest, taken = train_test_split(index, test_size=size, stratify=labels, random_state=seed)
    except ValueError as exc:
        classes = len(np.unique(labels))
        raise DataError(f"{what} = {size!r}: cannot take it from {len(labels):,} {pool} stratified by class ({exc}); "
                        f"both parts need at least one image of each of the {classes} classes, so choose a size "
                        f"between {classes} and {len(labels) - classes:,} images") from None
    return np.sort(rest), np.sort(taken)


def stratified_split(dataset: Dataset, val: float | int = 0.1, seed: int = 0, source: str = "train",
                     names: dict[str, str] | None = None) -> Dataset:
    """Move a stratified `val` fraction or count of `source` into a new 'val' split. `names` says how
    errors call the sizes (default API_NAMES; prepare_splits passes CONFIG_NAMES)."""
    names = names or API_NAMES
    split = dataset[source]
    rest, taken = stratified_indices(split.labels, val, seed, what=names["val"], pool=f"{source} images",
                                     owner="stratified_split")
    splits = dict(dataset.splits)
    splits[source] = split.subset(rest)
    splits["val"] = split.subset(taken)
    notes = (*dataset.notes, f"val: {len(taken):,} stratified from {source} (seed {seed})")
    return dataset.replace(splits=splits, notes=notes)


def stratified_subset(split: Split, size: float | int, seed: int = 0, what: str = "size",
                      pool: str = "images") -> Split:
    """A class-balanced subset (a sorted file like EMNIST letters' test set makes head-slicing useless)."""
    _, taken = stratified_indices(split.labels, size, seed, what, pool, owner="stratified_subset")
    return split.subset(taken)


def carve_splits(dataset: Dataset, source: str, val: float | int = 0.1, test: float | int = 0.1,
                 seed: int = 0, names: dict[str, str] | None = None) -> Dataset:
    """Make train / val / test out of one present split (e.g. EMNIST bymerge's test file alone).
    `names` says how errors call the sizes (default API_NAMES; prepare_splits passes CONFIG_NAMES)."""
    names = names or API_NAMES
    if source not in dataset.splits:
        raise DataError(f"{names['carve_from']}: {dataset.name} has no {source!r} split (present: "
                        f"{', '.join(dataset.splits) or 'none'}); set {names['carve_from']} to one of them")
    split = dataset[source]
    pool = f"{source} images"
    # as given: a bad fraction must not be reported as the count it becomes
    _check_size(val, len(split), names["val"], pool, owner="carve_splits")
    rest, test_idx = stratified_indices(split.labels, test, seed, what=names["test"], pool=pool, owner="carve_splits")
    val_count = val if isinstance(val, (int, np.integer)) else int(round(val * len(split)))
    if names["val"].isidentifier():
        _check_size(val_count, len(rest), names["val"], owner="carve_splits")
    elif not 0 < val_count < len(rest):
        given = f"{val!r}" if val_count == val else f"{val!r} ({val_count:,} of the {len(split):,} {pool})"
        raise ConfigError(f"{names['val']} = {given} leaves no training images: {len(rest):,} {pool} are left "
                          f"after {names['test']}, so it must be at most {len(rest) - 1:,}; lower "
                          f"{names['val']} or {names['test']}")
    keep, val_idx = stratified_indices(split.labels[rest], int(val_count), seed + 1, what=names["val"],
                                       pool=f"{source} images left after {names['test']}", owner="carve_splits")
    splits = {"train": split.subset(rest[keep]), "val": split.subset(rest[val_idx]), "test": split.subset(test_idx)}
    note = (f"train/val/test carved from {source} ({len(keep):,}/{len(val_idx):,}/{len(test_idx):,}, "
            f"stratified, seed {seed})")
    official = {k: len(v) for k, v in splits.items()}
    return dataset.replace(splits=splits, notes=(*dataset.notes, note), official=official)


def prepare_splits(dataset: Dataset, val: float | int = 0.1, carve_from: str | None = None,
                   test: float | int = 0.1, subset: float | int | None = None, seed: int = 0) -> Dataset:
    """The train / val / test a run uses: the official test split, a stratified val out of train (or all
    three carved out of `carve_from`), and optionally a stratified subset of train. Seeded by `seed`
    alone, so runs that differ only in their training seed see the same validation and test images.
    Errors name the sizes by their config keys (data.val, data.subset, ...), as a run's user typed them."""
    names = CONFIG_NAMES
    if carve_from is not None:
        dataset = carve_splits(dataset, carve_from, val=val, test=test, seed=seed, names=names)
    else:
        if "train" not in dataset.splits:
            raise DataError(f"{dataset.name} has no train split (present: {', '.join(dataset.splits) or 'none'}); "
                            f"set data.carve_from to one of them to carve train/val/test out of it")
        if "test" not in dataset.splits:
            raise DataError(f"{dataset.name} has no test split; set data.carve_from=train to carve "
                            f"train/val/test out of the training images")
        if "val" not in dataset.splits:
            dataset = stratified_split(dataset, val, seed, names=names)
    if subset is not None:
        splits = dict(dataset.splits)
        pool = "training images after the validation split"
        splits["train"] = stratified_subset(dataset["train"], subset, seed, what=names["subset"], pool=pool)
        note = f"train: a stratified subset of {len(splits['train']):,} images"
        dataset = dataset.replace(splits=splits, notes=(*dataset.notes, note))
    return dataset


def configured_splits(dataset: Dataset, data: DataConfig, train_subset: bool = True) -> Dataset:
    """`dataset` split as a run config's data section says: prepare_splits with its val, carve_from, test,
    subset and split_seed. `train_subset=False` keeps train whole (evaluation reads only val and test)."""
    return prepare_splits(dataset, val=data.val, carve_from=data.carve_from, test=data.test,
                          subset=data.subset if train_subset else None, seed=data.split_seed)
