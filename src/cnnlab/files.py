"""All-or-nothing, durable file writes, for every folder cnnlab writes: runs, studies, reports, the data cache.

A file is written to a temporary file beside it (`.NAME.XXXXXXXX.part`, so a killed writer's leftovers
are recognisable), flushed to disk, renamed over the target, and the rename itself flushed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    """Make a rename or new entry in `folder` survive a power cut (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_file(path: Path) -> tuple[int, Path]:
    """An open temporary file beside `path`: (descriptor, its path)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    return fd, Path(temp)


def atomic_write(path: str | Path, data: bytes | str, commit=contextlib.nullcontext) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one, never a part.

    `commit()` is a context manager held while the written file is put in place (a study cell's lock: it
    checks that this process still owns the cell, and no other process can take the cell meanwhile)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
    if path.is_symlink() or (path.exists() and not path.is_file()):  # a link, a device, a pipe: never replaced
        from .errors import CnnlabError

        kind = "a symbolic link" if path.is_symlink() else "not a regular file"
        raise CnnlabError(f"{path} is {kind}; cnnlab replaces only regular files: choose another path")
    try:
        fd, temp = temp_file(path)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data.encode() if isinstance(data, str) else data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o666 & ~umask())  # mkstemp makes 0600; outputs are shared like any file
        with commit():
            os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from None  # name the target, not the temporary file
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
