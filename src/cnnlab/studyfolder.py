"""A study is a folder of runs. This module alone writes and reads what a study adds to its runs, so
the study machinery writes it and the analysis reads it without importing that machinery:

  study.json            the manifest: name, the study file as given, the thread count every cell uses,
                        the cells (folder name, config hash, seed, resolved config) and the table rows
                        (factor, value, seed -> cell)
  <factor=value>/seed=<s>-<hash>/   one run folder per cell (runfolder.py)
  .locks/<hash>.json    a running cell's lock: pid, host, token, start; its mtime is the heartbeat
  .locks/<hash>.mutex   the kernel lock under which the cell lock is taken, broken and released

Importing this module imports neither torch nor pandas.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import CnnlabError
from .runfolder import RunFolder, atomic_write, dumps, fsync_dir

MANIFEST = "study.json"
LOCKS = ".locks"
HEARTBEAT_SECONDS = 10.0
MUTEX_WAIT_SECONDS = 5.0  # a breaker waits this long for a holder's write to be put in place
STALE_SECONDS = 90.0  # a lock whose heartbeat is older than this belongs to a dead process on some host


class StudyError(CnnlabError):
    """A folder that is not a study, or a manifest that cannot be read."""


@dataclass(frozen=True)
class CellRecord:
    name: str  # folder, relative to the study: 'optimizer=sgd/seed=1-3f2a9c1b'
    key: str  # hash of the validated config (seed and threads included)
    seed: int
    config: dict


@dataclass(frozen=True)
class RowRecord:
    factor: str  # 'base', a dotted key ('train.optimizer'), or 'grid'
    value: str  # the value's label ('sgd', '0.001', 'lr=0.001,batch_size=256')
    seed: int
    cell: str  # a CellRecord.name


class StudyFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"StudyFolder({str(self.path)!r})"

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def exists(self) -> bool:
        return self.manifest_path.exists()

    def check_target(self) -> None:
        """Refuse a --out that cannot be a study folder: a file, a run folder, or a folder of other things."""
        from .runfolder import CONFIG, SUMMARY

        for place in (self.path, *self.path.parents):
            if place.exists() and not place.is_dir():
                raise StudyError(f"--out {self.path}: {place} is a file; choose a folder for the study")
            if place.exists():
                break
        if not self.path.is_dir() or self.exists():
            return
        if (self.path / CONFIG).exists() or (self.path / SUMMARY).exists():
            raise StudyError(f"--out {self.path} is a run folder, not a study folder; choose another --out")
        if any(not entry.name.startswith(".") for entry in self.path.iterdir()):
            raise StudyError(f"--out {self.path} holds other files and no {MANIFEST}; a study needs a new or empty "
                             f"folder (or one of its own): choose another --out")

    def write_manifest(self, manifest: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write(self.manifest_path, dumps(manifest))

    def read_manifest(self) -> dict:
        from .runfolder import CONFIG, SUMMARY

        if not self.manifest_path.exists():
            if (self.path / CONFIG).exists() or (self.path / SUMMARY).exists():
                raise StudyError(f"{self.path} is a run folder, not a study folder (no {MANIFEST}); give the folder "
                                 f"a study wrote (`cnnlab study run FILE` makes one)")
            raise StudyError(f"{self.path} is not a study folder (no {MANIFEST}); start one with "
                             f"`cnnlab study run FILE --out {self.path}`")
        try:
            manifest = json.loads(self.manifest_path.read_text())
            cells = [CellRecord(**c) for c in manifest["cells"]]
            rows = [RowRecord(**r) for r in manifest["rows"]]
            names = {c.name for c in cells}
            stray = next((r.cell for r in rows if r.cell not in names), None)
            if stray is not None:
                raise ValueError(f"a table row names cell {stray!r}, which is not among its cells")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StudyError(f"{self.manifest_path}: not a readable study manifest ({exc}); restore it, or delete it "
                             f"and run the study file again with the same --out and --workers (finished cells are "
                             f"kept)") from None
        return {**manifest, "cells": cells, "rows": rows}

    def cells(self) -> list[CellRecord]:
        return self.read_manifest()["cells"]

    def rows(self) -> list[RowRecord]:
        return self.read_manifest()["rows"]

    def run(self, cell: str) -> RunFolder:
        path = (self.path / cell).resolve()
        if self.path.resolve() not in path.parents:  # a manifest must not point outside its study
            raise StudyError(f"{self.manifest_path}: cell {cell!r} lies outside the study folder")
        return RunFolder(path)

    def lock(self, key: str) -> CellLock:
        return CellLock(self.path / LOCKS / f"{key}.json")

    def cell_state(self, cell: CellRecord) -> str:
        """finished | failed | running (a live lock) | interrupted (started, no live lock) | pending."""
        status = self.run(cell.name).status
        if status in ("finished", "failed"):
            return status
        if self.lock(cell.key).holder() is not None:
            return "running"
        return "interrupted" if status == "unfinished" else "pending"


class LockLost(CnnlabError):
    """This process no longer holds its cell's lock (another process judged it dead and took the
    cell over); it must stop without writing to the cell's folder."""


def stale_seconds() -> float:
    """A lock from another host whose heartbeat is older than this belongs to a dead process."""
    return STALE_SECONDS


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22 of proc(5); the name before ')' may hold spaces


def study_groups(path: str | Path) -> list[Path]:
    """A study folder's `<factor=value>/` folders (each a folder of seeds); a link among them is refused, so
    a study someone sends cannot make the analysis read runs outside it."""
    path = Path(path)
    groups = []
    for entry in sorted(path.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            raise StudyError(f"{entry} is a symbolic link (to {os.readlink(entry)}); a study folder must hold its "
                             f"runs itself: replace the link with the folder, or remove it")
        if entry.is_dir():
            groups.append(entry)
    return groups


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _same_process_alive(record: dict) -> bool:
    """Whether the process that wrote `record` on this host still runs (pid alive, not reused)."""
    pid = record.get("pid")
    if not isinstance(pid, int) or not _pid_alive(pid):
        return False
    boot = record.get("boot_id")
    if boot is not None and _boot_id() is not None and boot != _boot_id():
        return False  # written before a reboot: the pid belongs to someone else now
    started, actual = record.get("process_start"), _process_start(pid)
    if actual is None:  # no /proc: the pid is all there is to go by
        return True
    return started == actual  # a record without it was not written by that process


class CellLock:
    """One lock file per running cell: `.locks/<key>.json` holding pid, host, token and start time; its
    modification time is the heartbeat.

    The file is created whole (a complete temporary file hard-linked into place), and taking, breaking
    and releasing it happen under a short kernel lock on `.locks/<key>.mutex`, so exactly one process
    wins. A lock counts as held while its process is alive on this host (however old its heartbeat: a
    paused process keeps its cell), while its heartbeat is younger than stale_seconds() on another host,
    and while it is unreadable but young. The holder checks that it still owns the lock before every
    write to the cell's folder (`check`), so a process that lost it stops without writing.
    """

    def __init__(self, path: Path, heartbeat_seconds: float | None = HEARTBEAT_SECONDS):
        self.path = Path(path)
        self.heartbeat_seconds = heartbeat_seconds  # None: no heartbeat thread (a lock held only briefly)
        self._stop = threading.Event()
        self._thread = None
        self._token = None

    @property
    def mutex_path(self) -> Path:
        return self.path.with_suffix(".mutex")

    @contextlib.contextmanager
    def _mutex(self, wait_seconds: float | None = None):
        """Hold the kernel lock on the mutex file; with `wait_seconds`, yield False instead of waiting longer
        (its holder is alive, but may be paused in the middle of a write)."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.mutex_path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            if wait_seconds is None:
                fcntl.flock(fd, fcntl.LOCK_EX)  # the kernel releases it if this process dies
                yield True
                return
            deadline = time.monotonic() + wait_seconds
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        yield False
                        return
                    time.sleep(0.01)
            yield True
        finally:
            os.close(fd)

    def _read(self) -> tuple[str, dict | None]:
        """('free' | 'held' | 'stale', the record when readable)."""
        if self.path.is_dir() and not self.path.is_symlink():
            raise StudyError(f"{self.path} is a folder, not a cell lock; delete it (nothing of the study is in it)")
        try:
            modified = os.stat(self.path).st_mtime
            text = self.path.read_bytes()
        except FileNotFoundError:
            return "free", None
        except OSError:
            return "held", None  # cannot look: assume someone has it
        age = time.time() - modified
        try:
            record = json.loads(text)
            if not isinstance(record, dict) or not isinstance(record.get("token"), str):
                raise ValueError("not a lock record")
        except ValueError:
            return ("held" if age <= stale_seconds() else "stale"), None
        record["heartbeat"] = modified
        if record.get("host") == socket.gethostname():
            return ("held" if _same_process_alive(record) else "stale"), record
        return ("held" if age <= stale_seconds() else "stale"), record

    def holder(self) -> dict | None:
        """The live holder's record ({} when unreadable but counted as held), or None when free or stale."""
        state, record = self._read()
        return (record or {}) if state == "held" else None

    def acquire(self) -> bool:
        """Take the lock, breaking a stale one; False while another live process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        host, pid = socket.gethostname(), os.getpid()
        token = f"{host}:{pid}:{time.time_ns()}"
        record = {"pid": pid, "host": host, "token": token, "started": time.time(), "boot_id": _boot_id(),
                  "process_start": _process_start(pid)}
        temp = self.path.with_name(f".{self.path.stem}.{_safe(host)}.{pid}.{time.time_ns()}.tmp")
        with open(temp, "w") as handle:
            handle.write(json.dumps(record))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            with self._mutex(wait_seconds=MUTEX_WAIT_SECONDS) as free:
                if not free:
                    return False  # its holder is in the middle of a write, so alive
                self._remove_dead_temporaries()
                state, _ = self._read()
                if state == "held":
                    return False
                if state == "stale":
                    self.path.unlink(missing_ok=True)  # under the mutex: nobody can have replaced it
                try:
                    os.link(temp, self.path)
                except FileExistsError:
                    return False  # created by a process that does not take the mutex
                except OSError:  # a filesystem without hard links: exclusive create, still under the mutex
                    fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                    with os.fdopen(fd, "w") as handle:
                        handle.write(json.dumps(record))
                        handle.flush()
                        os.fsync(handle.fileno())
                fsync_dir(self.path.parent)
        finally:
            temp.unlink(missing_ok=True)
        self._token = token
        if self.heartbeat_seconds is not None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._beat, daemon=True, name="cnnlab-cell-heartbeat")
            self._thread.start()
        return True

    def owns(self) -> bool:
        """Whether this object still holds the lock."""
        if self._token is None:
            return False
        try:
            return json.loads(self.path.read_bytes()).get("token") == self._token
        except (OSError, ValueError, AttributeError):
            return False

    @contextlib.contextmanager
    def committing(self):
        """Check that this object still holds the lock, and keep anyone from taking it until the block ends
        (hold it while a write to the cell is put in place: a process that lost its cell writes nothing)."""
        with self._mutex():
            self.check()
            yield

    def check(self) -> None:
        """Raise LockLost unless this object still holds the lock (call before writing the cell)."""
        if not self.owns():
            raise LockLost(f"{self.path}: this process lost the lock on its cell (it was judged dead, "
                           f"e.g. paused longer than {stale_seconds():.0f} s, and another process took the "
                           f"cell over); it stops without writing")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if self._token is None:
            return
        with self._mutex():
            if self.owns():
                self.path.unlink(missing_ok=True)
        self._token = None

    def _remove_dead_temporaries(self) -> None:
        """Temporary lock files of processes killed between writing and linking them."""
        host = _safe(socket.gethostname())
        for temp in self.path.parent.glob(f".{self.path.stem}.*.tmp"):
            parts = temp.name.rsplit(".", 4)  # ['.<stem>', host, pid, ns, 'tmp']
            try:
                dead = (not _pid_alive(int(parts[2]))) if parts[1] == host else \
                    time.time() - temp.stat().st_mtime > stale_seconds()
            except (ValueError, IndexError, OSError):
                continue
            if dead:
                temp.unlink(missing_ok=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_seconds):
            if not self.owns():
                return  # someone judged us dead and took the cell; check() stops our writes
            try:
                os.utime(self.path)
            except OSError:
                return


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)
