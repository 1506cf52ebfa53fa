"""Where a dataset's raw files come from (the data home, a system copy, a download) and how each
family's files are found, fetched, added and handed to its format reader."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, DownloadError
from . import emnist
from .cache import raw_dir
from .cifar import read_cifar_archive
from .download import RemoteFile, copy_verified, download, extract_zip_members, zip_member_names
from .idx import read_idx, read_idx_pair
from .split import stratified_indices

Parsed = dict  # {"splits": {split: (images, labels, items|None)}, "classes": tuple[str, ...], "notes": list[str]}


class Source:
    """Knows a dataset's raw files: which are present, how to fetch, add and parse them."""

    family: str

    def present(self) -> list[Path]:
        raise NotImplementedError

    def fetch(self, progress: bool = True) -> None:
        raise DownloadError("this dataset has no download address")

    def parse(self, files: list[Path]) -> Parsed:
        raise NotImplementedError

    def add(self, path: Path) -> list[Path]:
        raise DataError(f"cannot add files to {self.family!r}")

    def where(self) -> str:
        """How a user gets the files onto this machine by hand."""
        return f"place the files in {raw_dir(self.family)}"


IDX_NAMES = {
    ("train", "images"): "train-images-idx3-ubyte.gz",
    ("train", "labels"): "train-labels-idx1-ubyte.gz",
    ("test", "images"): "t10k-images-idx3-ubyte.gz",
    ("test", "labels"): "t10k-labels-idx1-ubyte.gz",
}


@dataclass
class IdxFamilySource(Source):
    """MNIST-layout datasets: four official IDX files, from a URL, the data home or a system copy."""

    family: str
    base_url: str
    checksums: dict[str, dict[str, str]]
    system_dirs: tuple[Path, ...] = ()

    def specs(self) -> dict[str, RemoteFile]:
        return {name: RemoteFile(name, self.base_url + name, **self.checksums.get(name, {})) for name in IDX_NAMES.values()}

    def _find(self, name: str) -> Path | None:
        for folder in (raw_dir(self.family), *self.system_dirs):
            for candidate in (folder / name, folder / name.removesuffix(".gz")):
                if candidate.is_file():
                    return candidate
        return None

    def present(self) -> list[Path]:
        return [p for p in (self._find(n) for n in IDX_NAMES.values()) if p is not None]

    def fetch(self, progress: bool = True) -> None:
        for name, spec in self.specs().items():
            if self._find(name) is None:
                download(spec, raw_dir(self.family) / name, progress)

    def parse(self, files: list[Path]) -> Parsed:
        by_name = {p.name.removesuffix(".gz"): p for p in files}
        splits = {}
        for split in ("train", "test"):
            images = by_name.get(IDX_NAMES[(split, "images")].removesuffix(".gz"))
            labels = by_name.get(IDX_NAMES[(split, "labels")].removesuffix(".gz"))
            if images and labels:
                x, y = read_idx_pair(images, labels)
                splits[split] = (x, y, None)
        return {"splits": splits, "notes": []}

    def add(self, path: Path) -> list[Path]:
        candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
        specs = {n.removesuffix(".gz"): s for n, s in self.specs().items()}
        added = []
        for file in candidates:
            spec = specs.get(file.name.removesuffix(".gz"))
            if spec is None or not file.is_file():
                continue
            read_idx(file)  # refuse a corrupt file before it enters the data home
            added.append(copy_verified(file, raw_dir(self.family) / file.name, spec))
        if not added:
            raise DataError(f"{path}: none of {', '.join(IDX_NAMES.values())} found")
        return added

    def where(self) -> str:
        return (f"download {self.base_url}{{{','.join(IDX_NAMES.values())}}} and run "
                f"`cnnlab data add {self.family} --from FOLDER`, or place them in {raw_dir(self.family)}")


@dataclass
class EmnistSource(Source):
    """One EMNIST split, from NIST's gzip.zip, its .gz members, slices of them, or Kaggle's CSVs."""

    split: str
    family: str = "emnist"

    def _files(self) -> list[Path]:
        folder = raw_dir(self.family)
        return sorted(folder.iterdir()) if folder.is_dir() else []

    def present(self) -> list[Path]:
        mine = []
        for path in self._files():
            match = emnist.PARTIAL_PATTERN.match(path.name)
            if (path.name.startswith(f"emnist-{self.split}-") and not path.name.endswith((".part", ".lock"))) or (
                match and match["split"] == self.split
            ):
                mine.append(path)
        data = [p for p in mine if not p.name.endswith("mapping.txt")]
        return mine if data else []

    def fetch(self, progress: bool = True) -> None:
        folder = raw_dir(self.family)
        archive = folder / emnist.ZIP_NAME
        if not archive.exists():
            download(emnist.zip_spec(), archive, progress)
        self.add(archive)

    def add(self, path: Path) -> list[Path]:
        folder = raw_dir(self.family)
        members = emnist.member_specs()
        data_members = {n for n in members if n.endswith(".gz")}
        mappings = {emnist.mapping_name(s): s for s in emnist.SPLITS}
        if path.is_file() and path.suffix == ".zip":
            # refuse a foreign archive before anything of it is unpacked
            if not zip_member_names(path) & data_members and not any((folder / m).exists() for m in data_members):
                raise DataError(f"{path}: holds none of NIST's EMNIST .gz files; is it NIST's gzip.zip?")
            return extract_zip_members(path, members, folder)
        candidates = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in candidates:  # a forged mapping would rename the classes: refuse before copying anything
            if file.name in mappings:
                emnist.check_mapping(file, mappings[file.name])
        added = []
        for file in candidates:
            name = file.name
            if name in mappings:
                added.append(copy_verified(file, folder / name, None))
            elif name in members:
                added.append(copy_verified(file, folder / name, members[name]))
            elif emnist.PARTIAL_PATTERN.match(name):
                read_idx(file)
                added.append(copy_verified(file, folder / name, None))
            elif name.startswith("emnist-") and name.endswith(".csv"):
                added.append(copy_verified(file, folder / name, None))
        if not added:
            raise DataError(f"{path}: no EMNIST files found (NIST's gzip.zip, emnist-*.gz, slices named "
                            "emnist-SPLIT-PART-itemsAtoB-*.gz, or Kaggle's emnist-*.csv)")
        return added

    def classes(self, files: list[Path]) -> tuple[str, ...]:
        mapping = [p for p in files if p.name == emnist.mapping_name(self.split)]
        if not mapping:
            return tuple(emnist.builtin_mapping(self.split))
        fix = ("it differs from NIST's official mapping file, so its class names cannot be trusted: delete it, "
               "or add NIST's gzip.zip again (`cnnlab data add emnist --from gzip.zip`), which replaces it")
        return tuple(emnist.check_mapping(mapping[0], self.split, fix))

    def parse(self, files: list[Path]) -> Parsed:
        by_name = {p.name: p for p in files}
        splits, notes = {}, []
        offset = emnist.label_offset(self.split)
        for part in ("train", "test"):
            images = by_name.get(emnist.member_name(self.split, part, "images"))
            labels = by_name.get(emnist.member_name(self.split, part, "labels"))
            csv = by_name.get(f"emnist-{self.split}-{part}.csv")
            if images and labels:
                x, y = read_idx_pair(images, labels, transpose=True)
                splits[part] = (x, y - offset, None)
            elif csv:
                from .tabular import read_csv

                x, y = read_csv(csv, transpose=True)
                splits[part] = (x, y - offset, None)
                notes.append(f"{part} read from Kaggle's {csv.name}")
            else:
                chunks = self._slices(files, part)
                if chunks:
                    splits[part] = tuple(np.concatenate(c) for c in zip(*chunks))
                    splits[part] = (splits[part][0], splits[part][1] - offset, splits[part][2])
        return {"splits": splits, "notes": notes, "classes": self.classes(files)}

    def _slices(self, files: list[Path], part: str) -> list[tuple]:
        pieces: dict[tuple[int, int], dict[str, Path]] = {}
        for path in files:
            match = emnist.PARTIAL_PATTERN.match(path.name)
            if match and match["split"] == self.split and match["part"] == part:
                pieces.setdefault((int(match["start"]), int(match["end"])), {})[match["kind"]] = path
        chunks, covered = [], set()
        for (start, end), pair in sorted(pieces.items()):
            if set(pair) != {"images", "labels"}:
                raise DataError(f"{next(iter(pair.values()))}: slice has no matching "
                                f"{'labels' if 'images' in pair else 'images'} file")
            x, y = read_idx_pair(pair["images"], pair["labels"], transpose=True)
            if len(y) != end - start + 1:
                raise DataError(f"{pair['images']}: its name promises items {start}–{end} "
                                f"({end - start + 1:,}) but it holds {len(y):,}")
            items = np.arange(start, end + 1)
            if covered.intersection(range(start, end + 1)):
                raise DataError(f"{pair['images']}: overlaps another slice of {self.split} {part}")
            covered.update(range(start, end + 1))
            chunks.append((x, y, items))
        return chunks

    def where(self) -> str:
        return (f"download {emnist.ZIP_URL} ({emnist.ZIP_SIZE_TEXT}) and run `cnnlab data add emnist --from "
                f"gzip.zip` (a folder of its .gz files or Kaggle's emnist-*.csv work too), "
                f"or place the files in {raw_dir(self.family)}")


@dataclass
class CifarSource(Source):
    """CIFAR python archives; a subset archive in the same layout is accepted."""

    variant: str  # cifar10 | cifar100 | cifar100-coarse
    spec: RemoteFile  # the official archive
    family: str = field(init=False)

    def __post_init__(self):
        self.family = "cifar10" if self.variant == "cifar10" else "cifar100"

    def present(self) -> list[Path]:
        folder = raw_dir(self.family)
        official = folder / self.spec.name
        if official.exists():
            return [official]
        return sorted(folder.glob("*.tar.gz"))[:1] if folder.is_dir() else []

    def fetch(self, progress: bool = True) -> None:
        download(self.spec, raw_dir(self.family) / self.spec.name, progress)

    def add(self, path: Path) -> list[Path]:
        if not path.is_file():
            raise DataError(f"{path}: expected the CIFAR python archive ({self.spec.name})")
        read_cifar_archive(path, self.variant)  # refuse a corrupt or foreign archive up front
        official = path.name == self.spec.name
        added = copy_verified(path, raw_dir(self.family) / path.name, self.spec if official else None)
        for older in raw_dir(self.family).glob("*.tar.gz"):  # the archive added last is the one read
            if older != added and older.name != self.spec.name:
                older.unlink(missing_ok=True)
        return [added]

    def parse(self, files: list[Path]) -> Parsed:
        parsed = read_cifar_archive(files[0], self.variant)
        notes = [] if files[0].name == self.spec.name else [f"read from {files[0].name}, not the official archive"]
        return {"splits": {k: v for k, v in parsed["splits"].items()}, "classes": parsed["classes"], "notes": notes}

    def where(self) -> str:
        return (f"download {self.spec.url} and run `cnnlab data add {self.family} --from {self.spec.name}`, "
                f"or place it in {raw_dir(self.family)}")


class DigitsSource(Source):
    """scikit-learn's 8×8 digits (always offline); a seeded stratified 80/20 split, pixels 0–16 → 0–255."""

    family = "digits"
    SEED = 0

    def present(self) -> list[Path]:
        import importlib.util

        spec = importlib.util.find_spec("sklearn")  # locating, not importing: sklearn takes ~1 s to import
        if spec is None or spec.origin is None:
            return []
        return [Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"]

    def parse(self, files: list[Path]) -> Parsed:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = np.round(bunch.images * (255 / 16)).astype(np.uint8)[:, None]
        labels = bunch.target.astype(np.int64)
        train, test = stratified_indices(labels, 0.2, seed=self.SEED)
        return {"splits": {"train": (images[train], labels[train], train), "test": (images[test], labels[test], test)},
                "notes": [f"no official split: stratified 80/20, seed {self.SEED}"]}

    def where(self) -> str:
        return "install scikit-learn"


def describe_missing(name: str, source: Source, reason: str) -> str:
    return f"dataset {name!r} is not on this machine and {reason}. To fix: {source.where()}"
