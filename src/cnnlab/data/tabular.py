"""Label-first pixel CSVs (Kaggle's MNIST layout with a header, EMNIST's without one, transposed)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import DataError

CHUNK_ROWS = 50_000


def has_header(path: Path) -> bool:
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline().split(",")[0].strip().strip('"')
    return not first.lstrip("-").isdigit()


def image_shape(pixels: int, source: Path) -> tuple[int, int, int]:
    side = math.isqrt(pixels)
    if pixels and side * side == pixels:  # 0 pixels (a labels-only CSV) is no image
        return 1, side, side
    side = math.isqrt(pixels // 3)
    if pixels and pixels % 3 == 0 and 3 * side * side == pixels:
        return 3, side, side
    raise DataError(f"{source}: rows hold {pixels} pixels after the label, which is not a square image "
                    "(H×W or 3×H×W); is the label the first column?")


def read_csv(path: Path, transpose: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 N×C×H×W and raw integer labels; wrong row lengths and bad pixels name their line."""
    import pandas as pd

    path = Path(path)
    header = has_header(path)
    try:
        reader = pd.read_csv(path, header=0 if header else None, chunksize=CHUNK_ROWS, dtype=None)
        images, labels, shape, first_line = [], [], None, 2 if header else 1
        for chunk in reader:
            values = chunk.to_numpy()
            if not len(values):  # a header-only file yields one empty chunk of dtype object
                continue
            if shape is None:
                shape = image_shape(values.shape[1] - 1, path)
            if values.dtype.kind == "f":
                short = np.isnan(values).any(axis=1)
                if short.any():
                    raise DataError(f"{path}:{first_line + int(np.flatnonzero(short)[0])}: row is shorter than "
                                    f"{values.shape[1]} fields or has an empty value; every row needs a label "
                                    "and the same pixel count: check that row")
            if values.dtype.kind not in "iuf" or (values.dtype.kind == "f" and (values != np.round(values)).any()):
                raise DataError(f"{path}: expected whole numbers (label, then pixels 0–255) in every field; check the "
                                "file's rows (a header row is detected only when it holds no numbers)")
            pixels = values[:, 1:]
            out_of_range = (pixels < 0) | (pixels > 255)
            if out_of_range.any():
                row = int(np.flatnonzero(out_of_range.any(axis=1))[0])
                raise DataError(f"{path}:{first_line + row}: pixel values must lie in 0–255")
            labels.append(values[:, 0].astype(np.int64))
            images.append(pixels.astype(np.uint8).reshape(-1, *shape))
            first_line += len(values)
    except pd.errors.ParserError as exc:
        # pandas ends its message with a newline; errors print on one line
        raise DataError(f"{path}: malformed CSV ({str(exc).strip()}); every row needs a label and the same "
                        "pixel count") from None
    except (pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a pixel CSV ({exc})") from None
    if not images:
        raise DataError(f"{path}: holds no rows")
    images_array = np.concatenate(images)
    if transpose:
        images_array = images_array.transpose(0, 1, 3, 2)
    return np.ascontiguousarray(images_array), np.concatenate(labels)
