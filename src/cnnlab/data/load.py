"""load_dataset: a registry name or idx:/csv:/folder: spec → Dataset, parsed once and cached; the splits
a run config describes; adding a user's files to the data home."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError, DownloadError
from .cache import arrays_dir, data_home, load_arrays, locked, raw_dir, remove_leftovers, source_key, store_arrays
from .cifar import FineToCoarse, read_fine_to_coarse
from .dataset import Dataset, Split
from .datasets import DATASETS, DatasetSpec, present_datasets, spec_for_family
from .emnist import read_mapping
from .idx import read_idx_pair
from .sources import Source, describe_missing
from .split import configured_splits

if TYPE_CHECKING:
    from ..config import DataConfig

GENERIC_PREFIXES = ("idx:", "csv:", "folder:")


def load_dataset(name: str, download: bool = True, progress: bool = True) -> Dataset:
    """Load a dataset by registry name (downloading it when absent) or from `idx:DIR`, `csv:TRAIN[,TEST]`,
    `folder:DIR`. Parsed arrays are cached, so the second load reads plain .npy files."""
    spec = generic_spec(name) if name.startswith(GENERIC_PREFIXES) else DATASETS.get(name)
    # Look at what is present only once no other process is fetching this family: a half-fetched set
    # (train images in, the rest still downloading) would otherwise pass for partial data.
    generic = isinstance(spec.source, GenericSource)
    with nullcontext() if generic else fetch_lock(spec.source.family):
        if not generic:
            # every writer of raw/FAMILY holds this lock, so temp files and staging there are a killed process's
            remove_leftovers(raw_dir(spec.source.family))
        files = spec.source.present()
        if not files:
            if not download:
                raise DataError(describe_missing(name, spec.source, "downloading was not allowed"))
            try:
                spec.source.fetch(progress)
            except DownloadError as exc:
                raise DataError(describe_missing(name, spec.source, str(exc))) from None
            files = spec.source.present()
    key = source_key(files, extra=f"{spec.name}|{type(spec.source).__name__}")
    folder = arrays_dir(spec.name)
    cached = load_arrays(folder, key)
    if cached is None:
        with locked(folder):
            cached = load_arrays(folder, key)  # another process may have filled it while we waited
            if cached is None:
                parsed = spec.source.parse(files)
                arrays, meta = _flatten(parsed, spec)
                store_arrays(folder, key, arrays, meta)
                cached = arrays, {**meta, "key": key}
    return _assemble(spec, *cached, display_name=name)


def load_splits(data: DataConfig, download: bool = True, progress: bool = True) -> Dataset:
    """The train / val / test a run config's data section describes: `data.name` loaded, then split by
    its val, carve_from, test, subset and split_seed."""
    return configured_splits(load_dataset(data.name, download, progress), data)


def _flatten(parsed: dict, spec: DatasetSpec) -> tuple[dict[str, np.ndarray], dict]:
    if not parsed["splits"]:
        raise DataError(f"dataset {spec.name!r}: the files present hold no complete split (images and labels). "
                        f"To fix: {spec.source.where()}")
    arrays = {}
    for split, (images, labels, items) in parsed["splits"].items():
        arrays[f"{split}.images"] = images
        arrays[f"{split}.labels"] = labels
        if items is not None:
            arrays[f"{split}.items"] = np.asarray(items, dtype=np.int64)
    classes = tuple(parsed.get("classes") or spec.classes)
    meta = {"classes": list(classes), "notes": list(parsed.get("notes", [])), "splits": list(parsed["splits"])}
    return arrays, meta


def _assemble(spec: DatasetSpec, arrays: dict[str, np.ndarray], meta: dict, display_name: str) -> Dataset:
    splits = {s: Split(arrays[f"{s}.images"], arrays[f"{s}.labels"], arrays.get(f"{s}.items")) for s in meta["splits"]}
    return Dataset(display_name, tuple(meta["classes"]), splits, dict(spec.official), spec.flips_allowed,
                   tuple(meta.get("notes", ())))


# ---- the user's own data -------------------------------------------------------------------------


def _options(text: str) -> tuple[str, dict[str, str]]:
    """'a.csv,b.csv;orientation=transposed;mapping=m.txt' → ('a.csv,b.csv', {...})."""
    body, *opts = text.split(";")
    options = {}
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep:
            raise DataError(f"dataset option {opt!r} must look like key=value")
        options[key.strip()] = value.strip()
    return body, options


@dataclass
class GenericSource(Source):
    kind: str
    paths: list[Path]
    options: dict[str, str] = field(default_factory=dict)
    family: str = "local"

    ALLOWED = {"idx": {"orientation", "mapping"}, "csv": {"orientation", "mapping"}, "folder": set()}

    def __post_init__(self):
        unknown = set(self.options) - self.ALLOWED[self.kind]
        if unknown:
            raise DataError(f"unknown option {sorted(unknown)[0]!r} for {self.kind}: data; "
                            f"valid: {', '.join(sorted(self.ALLOWED[self.kind])) or 'none'}")
        orientation = self.options.get("orientation", "auto")
        if orientation not in ("auto", "upright", "transposed"):
            raise DataError(f"orientation must be auto, upright or transposed, not {orientation!r}")
        for path in self.paths:
            if not path.exists():
                raise DataError(f"{path}: no such {'folder' if self.kind != 'csv' else 'file'}; check the path "
                                f"after '{self.kind}:'")

    def _transpose(self, path: Path) -> bool:
        orientation = self.options.get("orientation", "auto")
        return orientation == "transposed" or (orientation == "auto" and path.name.lower().startswith("emnist"))

    def _mapping(self, near: Path) -> Path | None:
        if "mapping" in self.options:
            return Path(self.options["mapping"]).expanduser()
        folder = near if near.is_dir() else near.parent
        stem = near.name.split("-train")[0].split("-test")[0]
        found = sorted(folder.glob(f"{stem}-mapping.txt")) or sorted(folder.glob("*mapping*.txt"))
        return found[0] if found and self.kind != "folder" else None

    def present(self) -> list[Path]:
        files = []
        for path in self.paths:
            if path.is_dir():
                from .imagefolder import image_files

                files += image_files(path) if self.kind == "folder" else sorted(p for p in path.iterdir() if p.is_file())
            else:
                files.append(path)
        mapping = self._mapping(self.paths[0])
        return files + ([mapping] if mapping and mapping.exists() else [])

    def fetch(self, progress: bool = True) -> None:
        raise DownloadError(f"{', '.join(map(str, self.paths))} holds no data files")

    def where(self) -> str:
        return "check the path you gave"

    def parse(self, files: list[Path]) -> dict:
        if self.kind == "folder":
            from .imagefolder import read_image_folder

            raw, classes = read_image_folder(self.paths[0])
            return {"splits": {s: (x, y, None) for s, (x, y) in raw.items()}, "classes": classes, "notes": []}
        raw = self._read_idx() if self.kind == "idx" else self._read_csv()
        mapping = self._mapping(self.paths[0])
        return self._label_classes(raw, read_mapping(mapping) if mapping else None, mapping)

    def _read_idx(self) -> dict:
        folder = self.paths[0]
        files = [p for p in folder.iterdir() if p.is_file()]
        out = {}
        for split, tags in (("train", ("train",)), ("test", ("test", "t10k"))):
            def pick(kind: str, tags=tags) -> Path | None:
                hits = [p for p in files if any(t in p.name for t in tags) and kind in p.name]
                return sorted(hits)[0] if hits else None

            images, labels = pick("images"), pick("labels")
            if images and labels:
                out[split] = read_idx_pair(images, labels, transpose=self._transpose(images))
        if not out:
            raise DataError(f"{folder}: no IDX pair found (files named like train-images… / train-labels…, "
                            "test-… or t10k-…)")
        return out

    def _read_csv(self) -> dict:
        from .tabular import read_csv

        return {split: read_csv(path, transpose=self._transpose(path)) for split, path in zip(("train", "test"), self.paths)}

    def _label_classes(self, raw: dict, names: list[str] | None, mapping: Path | None) -> dict:
        all_labels = np.concatenate([y for _, y in raw.values()])
        offset = 0
        if names is not None:
            offset = int(mapping_offset(mapping))
            top = len(names) - 1 + offset
            bad = (all_labels < offset) | (all_labels > top)
        else:
            names = [str(i) for i in range(int(all_labels.max()) + 1)]
            bad = all_labels < 0
        if bad.any():
            value = int(all_labels[np.flatnonzero(bad)[0]])
            limit = f"{offset}–{len(names) - 1 + offset}" + (f" (from {mapping.name})" if mapping else "")
            raise DataError(f"{', '.join(map(str, self.paths))}: label {value} is out of range {limit}")
        splits = {s: (x, y - offset, None) for s, (x, y) in raw.items()}
        return {"splits": splits, "classes": tuple(names), "notes": []}


def mapping_offset(path: Path) -> int:
    first = next(line for line in Path(path).read_text().splitlines() if line.strip())
    return int(first.split()[0])


def generic_spec(name: str) -> DatasetSpec:
    kind, _, rest = name.partition(":")
    body, options = _options(rest)
    if not body:
        raise DataError(f"{name!r}: give a path after '{kind}:'")
    paths = [Path(p).expanduser() for p in body.split(",") if p]
    if kind != "csv" and len(paths) != 1:
        raise DataError(f"{name!r}: {kind}: takes one folder")
    if kind == "csv" and len(paths) > 2:
        raise DataError(f"{name!r}: csv: takes TRAIN.csv or TRAIN.csv,TEST.csv")
    source = GenericSource(kind, paths, options)
    digest = hashlib.sha256(name.encode() + b"".join(str(p.resolve()).encode() for p in paths)).hexdigest()[:10]
    return DatasetSpec(f"{kind}-{paths[0].stem}-{digest}", source, (), {}, f"your {kind} data at {body}")


def fetch_lock(family: str):
    """The lock held by whoever writes a family's raw files (download or add) or looks at what is there."""
    return locked(data_home() / "raw" / f".{family}-fetch")


def add_local(name: str, path: str | Path) -> list[Path]:
    """Copy a user's files (archive, folder, single file) into the data home, verified where possible."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; check the path given to --from")
    source = spec_for_family(name).source
    with fetch_lock(source.family):
        added = source.add(path)
    if not added:
        raise DataError(f"{path}: holds no file that {name} takes, so nothing was added; {source.where()}")
    return added


def family_datasets(name: str) -> Iterator[tuple[str, Dataset]]:
    """(dataset name, dataset) for each dataset of `name`'s family (`name` is a family, or a dataset standing
    for its family) whose files are on this machine, as after add_local: loaded one at a time, never downloaded."""
    for dataset_name in present_datasets(spec_for_family(name).source.family):
        yield dataset_name, load_dataset(dataset_name, download=False)


def cifar100_fine_to_coarse() -> FineToCoarse:
    """The fine → superclass table of the CIFAR-100 archive in the data home (never downloads)."""
    source = DATASETS.get("cifar100").source
    present = source.present()
    if not present:
        raise DataError(describe_missing("cifar100", source,
                                         "there is no archive to read its fine → superclass table from"))
    return read_fine_to_coarse(present[0])
