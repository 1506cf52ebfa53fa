"""The data home: raw files and parsed arrays, written atomically under a file lock."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..files import fsync_dir

CACHE_FORMAT = 1  # bump when the parsed layout changes, so old caches are rebuilt


def data_home() -> Path:
    """`$CNNLAB_DATA`, or the user's cache folder."""
    env = os.environ.get("CNNLAB_DATA")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("cnnlab")) / "data"


def raw_dir(family: str) -> Path:
    return data_home() / "raw" / family


def arrays_dir(name: str) -> Path:
    return data_home() / "arrays" / _safe_name(name)


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".") or "_"


@contextmanager
def locked(path: Path, timeout: float = 3600):
    """An inter-process lock beside `path`; two processes filling one cache take turns."""
    from filelock import FileLock, Timeout

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path) + ".lock")
    try:
        with lock.acquire(timeout=timeout):
            yield
    except Timeout:
        raise DataError(f"{path}: another cnnlab process has held its lock for {timeout:.0f} s; "
                        f"if none is running, delete {path}.lock") from None


# mkstemp/mkdtemp names (`.NAME.` + 8 random characters + `.part`) and store_arrays' `.NAME.old-PID`.
# A download's resumable `NAME.part` has no leading dot and never matches.
_TEMP = r"[a-z0-9_]{8}\.part"
_OLD = r"old-\d+"


def remove_leftovers(folder: Path, name: str | None = None) -> list[Path]:
    """Delete temp files and staging folders that a killed writer left in `folder` (only `name`'s when given).

    Call it only while holding the lock every writer of those names takes: then none of them is live.
    """
    stem = re.escape(name) if name is not None else ".+"
    pattern = re.compile(rf"^\.{stem}\.(?:{_TEMP}|{_OLD})$")
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not pattern.match(entry.name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def load_arrays(folder: Path, key: str) -> tuple[dict[str, np.ndarray], dict] | None:
    """The arrays stored under `folder` if they were built from the same sources (`key`), else None."""
    meta_path = folder / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    if meta.get("key") != key or meta.get("format") != CACHE_FORMAT:
        return None
    try:
        arrays = {name: np.load(folder / f"{name}.npy", allow_pickle=False) for name in meta["arrays"]}
    except (OSError, ValueError):
        return None
    return arrays, meta


def store_arrays(folder: Path, key: str, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write arrays and meta into a fresh folder, then swap it in: readers see old or new, never half.

    The caller holds `locked(folder)`, so staging left beside it by a killed process is removed first.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(folder.parent, folder.name)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".part"))
    try:
        for name, array in arrays.items():
            with open(staging / f"{name}.npy", "wb") as f:
                np.save(f, np.ascontiguousarray(array), allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
        full_meta = {**meta, "key": key, "format": CACHE_FORMAT, "arrays": sorted(arrays)}
        with open(staging / "meta.json", "w") as f:
            f.write(json.dumps(full_meta, indent=2, sort_keys=True))
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(staging)
        old = None
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            os.replace(folder, old)
        os.replace(staging, folder)
        fsync_dir(folder.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def source_key(paths: list[Path], extra: str = "") -> str:
    """Identifies the raw files a parse came from (name, size, mtime, inode: a file replaced by a
    same-sized one within the clock's resolution still gets a new key)."""
    import hashlib

    h = hashlib.sha256(extra.encode())
    for path in sorted(paths):
        st = path.stat()
        h.update(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}\n".encode())
    return h.hexdigest()[:16]
