"""Helpers of the data tests: CIFAR-style archives, with their batches pickled as Python 2's cPickle
wrote the official files (protocol 2, str as BINSTRING)."""

from __future__ import annotations

import io
import struct
import tarfile
from pathlib import Path

import numpy as np


def _py2_str(value: bytes) -> bytes:
    if len(value) < 256:
        return b"U" + bytes([len(value)]) + value  # SHORT_BINSTRING
    return b"T" + struct.pack("<i", len(value)) + value  # BINSTRING


def _py2_int(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if 0 <= value < 65536:
        return b"M" + struct.pack("<H", value)
    return b"J" + struct.pack("<i", value)


def _py2_ndarray(array: np.ndarray) -> bytes:
    """numpy.core.multiarray._reconstruct + BUILD, exactly the opcodes of the official batches."""
    assert array.dtype == np.uint8
    shape = b"(" + b"".join(_py2_int(d) for d in array.shape) + b"t"
    dtype = (b"cnumpy\ndtype\n" + _py2_str(b"u1") + b"K\x00K\x01\x87R"
             + b"(K\x03" + _py2_str(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
    return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + _py2_str(b"b") + b"\x87R"
            + b"(K\x01" + shape + dtype + b"\x89" + _py2_str(np.ascontiguousarray(array).tobytes()) + b"tb")


class Raw(bytes):
    """Opcodes spliced in verbatim (a hostile object inside an otherwise Python 2 style pickle)."""


def _py2(value) -> bytes:
    if isinstance(value, Raw):
        return bytes(value)
    if isinstance(value, dict):
        return b"}(" + b"".join(_py2(k) + _py2(v) for k, v in value.items()) + b"u"
    if isinstance(value, list):
        return b"](" + b"".join(_py2(v) for v in value) + b"e"
    if isinstance(value, bytes):
        return _py2_str(value)
    if isinstance(value, str):
        return _py2_str(value.encode())
    if isinstance(value, int):
        return _py2_int(value)
    if isinstance(value, np.ndarray):
        return _py2_ndarray(value)
    raise TypeError(type(value))


def py2_pickle(value) -> bytes:
    return b"\x80\x02" + _py2(value) + b"."


def make_archive(path: Path, folder: str, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(folder)
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        for name, blob in members.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def noise_folder(root: Path, classes: int = 10, train: int = 10, test: int = 2) -> Path:
    """An image folder (root/split/class/i.png) of 8x8 grey noise, `classes` classes named '0', '1', ..."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in map(str, range(classes)):
        for split, count in (("train", train), ("test", test)):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / split / name / f"{i}.png")
    return root
