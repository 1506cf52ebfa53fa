"""A study is a folder of runs. This module alone writes and reads what a study adds to its runs, so
the study machinery writes it and the analysis reads it without importing that machinery:

  study.json            the manifest: name, the study file as given, the thread count every cell uses,
                        the cells (folder name, config hash, seed, resolved config) and the table rows
                        (factor, value, seed -> cell)
  <factor=value>/seed=<s>-<hash>/   one run folder per cell (runfolder.py)
  .locks/<hash>.json    a running cell's lock: pid, host, start and heartbeat

Importing this module imports neither torch nor pandas.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import CnnlabError
from .runfolder import RunFolder, atomic_write, dumps

MANIFEST = "study.json"
LOCKS = ".locks"
HEARTBEAT_SECONDS = 10.0
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

    def write_manifest(self, manifest: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write(self.manifest_path, dumps(manifest))

    def read_manifest(self) -> dict:
        if not self.manifest_path.exists():
            raise StudyError(f"{self.path} is not a study folder (no {MANIFEST}); start one with "
                             f"`cnnlab study run FILE --out {self.path}`")
        try:
            manifest = json.loads(self.manifest_path.read_text())
            manifest["cells"], manifest["rows"]  # noqa: B018 - both must be there
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StudyError(f"{self.manifest_path}: not a readable study manifest ({exc})") from None
        return manifest

    def cells(self) -> list[CellRecord]:
        return [CellRecord(**c) for c in self.read_manifest()["cells"]]

    def rows(self) -> list[RowRecord]:
        return [RowRecord(**r) for r in self.read_manifest()["rows"]]

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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class CellLock:
    """One file per running cell, created with O_EXCL. It is stale, and may be broken, when its
    process is gone (same host) or its heartbeat stopped (any host: a study folder may be shared)."""

    def __init__(self, path: Path):
        self.path = path
        self._stop = threading.Event()
        self._thread = None
        self._token = None

    def holder(self) -> dict | None:
        """The live holder's record, or None when the lock is free or stale."""
        try:
            record = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        if record.get("host") == socket.gethostname() and not _pid_alive(int(record.get("pid", -1))):
            return None
        if time.time() - float(record.get("heartbeat", 0)) > STALE_SECONDS:
            return None
        return record

    def acquire(self) -> bool:
        """Take the lock (breaking a stale one); False while another live process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self.holder() is not None:
                    return False
                try:  # only one breaker's rename succeeds; the others retry and find the new lock
                    os.rename(self.path, self.path.with_suffix(f".stale-{os.getpid()}"))
                    os.unlink(self.path.with_suffix(f".stale-{os.getpid()}"))
                except FileNotFoundError:
                    pass
                continue
            self._token = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"
            self._started = time.time()
            with os.fdopen(fd, "w") as handle:
                handle.write(self._record())
            self._stop.clear()
            self._thread = threading.Thread(target=self._beat, daemon=True, name="cnnlab-cell-heartbeat")
            self._thread.start()
            return True
        return False

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            if json.loads(self.path.read_text()).get("token") == self._token:
                self.path.unlink()
        except (OSError, ValueError):
            pass

    def _record(self) -> str:
        now = time.time()
        return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "token": self._token,
                           "heartbeat": now, "started": self._started})

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                if json.loads(self.path.read_text()).get("token") != self._token:
                    return  # someone judged us dead and took the cell; do not fight over it
                atomic_write(self.path, self._record())
            except (OSError, ValueError):
                return
