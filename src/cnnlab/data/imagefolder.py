"""An image folder: one sub-folder per class, optionally under train/, val/ and test/."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
SPLIT_NAMES = ("train", "val", "test")


def split_dirs(root: Path) -> dict[str, Path]:
    found = {name: root / name for name in SPLIT_NAMES if (root / name).is_dir()}
    return found or {"train": root}


def image_files(root: Path) -> list[Path]:
    return sorted(p for d in split_dirs(root).values() for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def read_image_folder(root: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], tuple[str, ...]]:
    """{split: (images uint8 N×C×H×W, labels)} and the class names (sorted sub-folder names)."""
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    dirs = split_dirs(root)
    classes = sorted({c.name for d in dirs.values() for c in d.iterdir() if c.is_dir()})
    if not classes:
        raise DataError(f"{root}: no class sub-folders; put each class's images in a folder named after it")
    files = {split: [(f, classes.index(c.name)) for c in sorted(d.iterdir()) if c.is_dir()
                     for f in sorted(c.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
             for split, d in dirs.items()}
    loaded: dict[str, list] = {}
    modes, size, first = set(), None, None
    for split, entries in files.items():
        loaded[split] = []
        for path, label in entries:
            try:
                with Image.open(path) as img:
                    img.load()
                    picture = img.copy()
            except (UnidentifiedImageError, OSError) as exc:
                raise DataError(f"{path}: not a readable image ({exc}); remove or replace it") from None
            if size is None:
                size, first = picture.size, path
            elif picture.size != size:
                raise DataError(f"{path} is {picture.size[0]}×{picture.size[1]} but {first} is {size[0]}×{size[1]}; "
                                "resize the images to one size")
            modes.add(picture.mode)
            loaded[split].append((picture, label))
    if not any(loaded.values()):
        raise DataError(f"{root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in the class folders")
    gray = modes <= {"L", "1"}
    mode = "L" if gray else "RGB"
    out = {}
    for split, items in loaded.items():
        if not items:
            continue
        arrays = [np.asarray(p.convert(mode), dtype=np.uint8) for p, _ in items]
        images = np.stack(arrays)
        images = images[:, None] if gray else images.transpose(0, 3, 1, 2)
        out[split] = (np.ascontiguousarray(images), np.array([label for _, label in items], dtype=np.int64))
    return out, tuple(classes)
