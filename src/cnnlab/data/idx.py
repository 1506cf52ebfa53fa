"""IDX files (MNIST, EMNIST, Fashion-MNIST, KMNIST), plain or gzipped, validated."""

from __future__ import annotations

import gzip
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import DataError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


# Larger than any published IDX file (EMNIST byclass train images: 547 MB unpacked); a header that
# promises more is refused rather than trusted with memory.
MAX_IDX_BYTES = 8 << 30
CHUNK = 1 << 20


@contextmanager
def open_unpacked(path: Path, shown: str | Path | None = None):
    """A binary stream of a file's content, gunzipped when it is gzip; gzip and read errors become DataError
    naming `shown` (default: `path`)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            packed = f.read(2) == b"\x1f\x8b"
            f.seek(0)
            if packed:
                with gzip.GzipFile(fileobj=f) as g:
                    yield g
            else:
                yield f
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{shown or path}: corrupt or truncated gzip ({exc}); delete it and download or add it "
                        "again") from None
    except OSError as exc:
        raise DataError(f"{shown or path}: cannot read ({exc.strerror or exc})") from None


def _header(magic: bytes, more, source: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """(dims, dtype, header length) from the 4-byte magic and `more(n)`, the next n bytes."""
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _DTYPES:
        raise DataError(f"{source}: not an IDX file (bad magic number {magic.hex() or 'empty'}); is it the right file?")
    ndim = magic[3]
    raw_dims = more(4 * ndim)
    if ndim == 0 or len(raw_dims) < 4 * ndim:
        raise DataError(f"{source}: IDX header is truncated or declares {ndim} dimensions")
    dims = tuple(int.from_bytes(raw_dims[4 * i : 4 + 4 * i], "big") for i in range(ndim))
    return dims, np.dtype(_DTYPES[magic[2]]), 4 + 4 * ndim


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file, unpacking exactly the bytes its header implies: extra or missing bytes are refused."""
    source = str(path)
    with open_unpacked(path) as f:
        dims, dtype, _ = _header(f.read(4), f.read, source)
        expected = int(np.prod(dims, dtype=object)) * dtype.itemsize
        shape = "×".join(map(str, dims))
        if expected > MAX_IDX_BYTES:
            raise DataError(f"{source}: IDX header says {shape} ({expected:,} bytes), more than cnnlab reads "
                            f"({MAX_IDX_BYTES:,}); the header is corrupt or this is not a dataset file")
        payload = np.empty(expected, dtype=np.uint8)
        view, got = memoryview(payload), 0
        while got < expected:
            n = f.readinto(view[got : got + CHUNK])
            if not n:
                break
            got += n
        extra = f.read(1) if got == expected else b""
    if got < expected or extra:
        held = f"{got:,} bytes" if got < expected else f"more than {expected:,} bytes"
        raise DataError(f"{source}: IDX header says {shape} ({expected:,} bytes) but the file holds {held}; "
                        "the file is truncated or corrupt: delete it and download or add it again")
    return payload.view(dtype).reshape(dims)


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
            "the two files do not belong together: give the labels file that came with these images"
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
