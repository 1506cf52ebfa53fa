"""IDX files (MNIST, EMNIST, Fashion-MNIST, KMNIST), plain or gzipped, validated."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_bytes(path: Path) -> bytes:
    """A file's bytes, gunzipped when it is gzip; a truncated or corrupt gzip is a DataError."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(2)
            f.seek(0)
            if head == b"\x1f\x8b":
                return gzip.GzipFile(fileobj=f).read()
            return f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip ({exc}); delete it and download or add it again") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode an IDX payload into an array with the dimensions its header states."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise DataError(f"{source}: not an IDX file (bad magic number {data[:4].hex() or 'empty'}); is it the right file?")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataError(f"{source}: IDX header is truncated or declares {ndim} dimensions")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[data[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(
            f"{source}: IDX header says {'×'.join(map(str, dims))} ({expected:,} bytes) but the file holds "
            f"{len(data) - header:,} bytes; the file is truncated or corrupt"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


def read_idx(path: Path) -> np.ndarray:
    return parse_idx(read_bytes(path), str(path))


def read_idx_pair(images_path: Path, labels_path: Path, transpose: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Images as uint8 N×1×H×W (transposed to upright when `transpose`) and int64 labels."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{images_path}: expected uint8 images N×H×W, found {images.dtype} with shape {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected a 1-D label file, found shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(
            f"{images_path.name} holds {len(images):,} images but {labels_path.name} holds {len(labels):,} labels; "
            "the two files do not belong together"
        )
    if transpose:
        images = images.transpose(0, 2, 1)
    return np.ascontiguousarray(images[:, None]), labels.astype(np.int64)


def write_idx(path: Path, array: np.ndarray, compress: bool | None = None) -> None:
    """Write an array as IDX (gzipped when the name ends in .gz); used for fixtures and exports."""
    codes = {np.dtype(v).newbyteorder(">") if np.dtype(v).itemsize > 1 else np.dtype(v): k for k, v in _DTYPES.items()}
    dtype = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    header = bytes([0, 0, codes[dtype], array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + np.ascontiguousarray(array, dtype=dtype).tobytes()
    path = Path(path)
    if compress if compress is not None else path.suffix == ".gz":
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    path.write_bytes(payload)
