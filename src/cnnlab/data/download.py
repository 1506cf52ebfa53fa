"""Fetching and verifying raw files: resumable downloads, checksums, safe zip extraction, verified copies."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import ChecksumError, DataError, DownloadError
from ..files import fsync_dir, temp_file, umask
from .cache import locked, remove_leftovers
from .idx import open_unpacked

CHUNK = 1 << 20

# An archive member whose size nothing publishes is refused above this (NIST's largest is 173 MB).
MAX_MEMBER_BYTES = 1 << 30

DEFAULT_FIX = "the file is corrupt or a different version: delete it and download or add it again"


@dataclass(frozen=True)
class RemoteFile:
    """A published file. `content_sha256` checks the gunzipped payload, for mirrors that recompress."""

    name: str
    url: str | None = None
    sha256: str | None = None
    content_sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    fix: str = DEFAULT_FIX  # what to tell the user when the file does not match

    @property
    def verifiable(self) -> bool:
        return bool(self.sha256 or self.content_sha256 or self.md5)


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def content_digest(path: Path, shown: str | Path | None = None) -> str:
    """sha256 of a file's content, gunzipped when it is gzip, streamed in chunks."""
    h = hashlib.sha256()
    with open_unpacked(path, shown) as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def mismatch(path: Path, spec: RemoteFile, known: dict[str, str] | None = None,
             shown: str | Path | None = None) -> str | None:
    """How `path` differs from the checksums `spec` publishes ('sha256 is …, expected …'), or None.

    `known` holds digests already computed while the file was written ({"sha256": ...}); `shown`
    names the file in errors when `path` is a temp copy.
    """
    known = known or {}
    checks = []
    if spec.sha256:
        checks.append(("sha256", spec.sha256, lambda: known.get("sha256") or file_digest(path, "sha256")))
    if spec.md5:
        checks.append(("md5", spec.md5, lambda: known.get("md5") or file_digest(path, "md5")))
    if spec.content_sha256:
        checks.append(("sha256 of the unpacked content", spec.content_sha256, lambda: content_digest(path, shown)))
    for what, expected, compute in checks:
        actual = compute()
        if actual != expected:
            return f"{what} is {actual[:16]}…, expected {expected[:16]}… for {spec.name}"
    return None


def verify(path: Path, spec: RemoteFile, shown: str | Path | None = None) -> None:
    """Raise ChecksumError unless `path` matches every checksum `spec` publishes (`shown` names it)."""
    problem = mismatch(path, spec, shown=shown)
    if problem:
        raise ChecksumError(f"{shown or path}: {problem}; {spec.fix}")


def offline() -> bool:
    return os.environ.get("CNNLAB_OFFLINE", "").lower() not in ("", "0", "false", "no")


def resolve_url(spec: RemoteFile) -> str | None:
    """The URL to fetch: `$CNNLAB_MIRROR/<name>` when a mirror is set, else the official one."""
    mirror = os.environ.get("CNNLAB_MIRROR")
    if mirror:
        return mirror.rstrip("/") + "/" + PurePosixPath(spec.url or spec.name).name
    return spec.url


def download(spec: RemoteFile, dest: Path, progress: bool = True, timeout: float = 60) -> Path:
    """Fetch `spec` to `dest`, resuming a partial `.part` file with an HTTP Range request, and verify it."""
    url = resolve_url(spec)
    if not url:
        raise DownloadError(f"{spec.name} has no download address; place it in {dest.parent}")
    if offline():
        raise DownloadError(f"offline (CNNLAB_OFFLINE is set), so {url} was not fetched")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with locked(dest):
        if dest.exists():
            return dest
        part = dest.with_name(dest.name + ".part")
        try:
            _fetch(url, part, spec.size, progress, timeout)
        except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DownloadError(f"could not download {url} ({reason})") from None
        try:
            verify(part, spec)
        except ChecksumError:
            part.unlink(missing_ok=True)
            raise
        os.replace(part, dest)
    return dest


def _fetch(url: str, part: Path, size: int | None, progress: bool, timeout: float) -> None:
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "cnnlab"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code != 416:  # 416: the part file is already complete
            raise
        return
    with response:
        resumed = response.status == 206
        if not resumed:
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length else size
        with open(part, "ab" if resumed else "wb") as out, _progress_bar(progress, url, total, have) as advance:
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                advance(len(block))
        if total and part.stat().st_size < total:
            raise DownloadError(f"download of {url} stopped at {part.stat().st_size:,} of {total:,} bytes; "
                                "run the same command again to resume")


class _progress_bar:
    """A rich progress bar when asked for and stderr is a terminal; a no-op otherwise."""

    def __init__(self, enabled: bool, url: str, total: int | None, done: int):
        self.enabled, self.url, self.total, self.done = enabled, url, total, done

    def __enter__(self):
        self.enabled = self.enabled and sys.stderr.isatty()
        if not self.enabled:
            return lambda n: None
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

        self.bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                            TransferSpeedColumn(), TimeRemainingColumn(), transient=True)
        self.bar.__enter__()
        task = self.bar.add_task(PurePosixPath(self.url).name, total=self.total, completed=self.done)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.__exit__(*exc)
        return False


def safe_member_path(root: Path, member: str) -> Path:
    """`root/member`, refusing absolute names and `..` that would escape `root`."""
    target = (root / member).resolve()
    if not target.is_relative_to(root.resolve()):
        raise DataError(f"archive member {member!r} would be written outside {root}; refusing the archive")
    return target


def zip_member_names(archive: Path) -> set[str]:
    """The base names of an archive's files, read from its directory without unpacking anything."""
    try:
        with zipfile.ZipFile(archive) as zf:
            return {PurePosixPath(info.filename).name for info in zf.infolist() if not info.is_dir()}
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{archive}: not a readable zip archive ({exc}); download it again") from None


class _TooLarge(Exception):
    pass


def _copy_capped(src, out, limit: int | None, algorithms: tuple[str, ...] = ("sha256",)) -> dict[str, str]:
    """Copy `src` to `out` in chunks, hashing as it goes; _TooLarge once more than `limit` bytes arrive."""
    hashes = {a: hashlib.new(a) for a in algorithms}
    total = 0
    for block in iter(lambda: src.read(CHUNK), b""):
        total += len(block)
        if limit is not None and total > limit:
            raise _TooLarge(total)
        for h in hashes.values():
            h.update(block)
        out.write(block)
    return {a: h.hexdigest() for a, h in hashes.items()}


def _same_file(path: Path, size: int, sha256: str) -> bool:
    return path.is_file() and path.stat().st_size == size and file_digest(path) == sha256


STAGING = "unpacking"  # archive members are unpacked into `.unpacking.XXXXXXXX.part` in the target folder


def extract_zip_members(archive: Path, wanted: dict[str, RemoteFile], dest_dir: Path) -> list[Path]:
    """Take the members of `archive` whose base name is in `wanted` into `dest_dir`, all or nothing.

    Every wanted member is unpacked into a staging folder (its size capped by `spec.size`, else
    MAX_MEMBER_BYTES, both before and while reading) and verified; only when all of them pass are
    they moved into place, replacing what is there. A refused archive leaves nothing behind. Returns
    the paths of the archive's members now in `dest_dir`.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    with locked(dest_dir / f".{STAGING}"):
        remove_leftovers(dest_dir, STAGING)  # we hold the lock: any staging folder is a killed process's
        staging = Path(tempfile.mkdtemp(dir=dest_dir, prefix=f".{STAGING}.", suffix=".part"))
        try:
            staged = _stage_members(archive, wanted, dest_dir, staging)
            placed = []
            for target, path, digest in staged:
                # an identical file stays, so its mtime, and the arrays parsed from it, stay valid
                if not _same_file(target, path.stat().st_size, digest):
                    os.replace(path, target)
                placed.append(target)
            fsync_dir(dest_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return placed


def _stage_members(archive: Path, wanted: dict[str, RemoteFile], dest_dir: Path,
                   staging: Path) -> list[tuple[Path, Path, str]]:
    """Unpack and verify the wanted members into `staging`: [(target, staged file, sha256)]."""
    staged: dict[str, tuple[Path, Path, str]] = {}
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                base = PurePosixPath(info.filename).name
                if info.is_dir() or base not in wanted:
                    continue
                spec = wanted[base]
                target = safe_member_path(dest_dir, base)
                if base in staged:
                    raise DataError(f"{archive}: holds two members named {base}; refusing the archive "
                                    "(nothing was added): use the original download")
                limit = spec.size if spec.size is not None else MAX_MEMBER_BYTES
                if info.file_size > limit:
                    raise DataError(f"{archive}: member {info.filename} claims {info.file_size:,} bytes unpacked, "
                                    f"more than {_limit_text(spec, limit)}; refusing the archive (nothing was "
                                    "added): it is corrupt or not the original")
                path = staging / base
                with zf.open(info) as src, open(path, "wb") as out:
                    try:
                        digests = _copy_capped(src, out, limit, ("sha256", "md5") if spec.md5 else ("sha256",))
                    except _TooLarge:
                        raise DataError(f"{archive}: member {info.filename} unpacks to more than "
                                        f"{_limit_text(spec, limit)}; refusing the archive (nothing was added): "
                                        "it is corrupt or not the original") from None
                    out.flush()
                    os.fsync(out.fileno())
                problem = mismatch(path, spec, digests, shown=f"{archive}: member {info.filename}")
                if problem:
                    raise ChecksumError(f"{archive}: member {info.filename}: {problem}; refusing the archive "
                                        f"(nothing was added): {spec.fix}")
                staged[base] = (target, path, digests["sha256"])
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, zlib.error) as exc:
        # RuntimeError: an encrypted member; NotImplementedError: a compression method zipfile lacks
        raise DataError(f"{archive}: not a readable zip archive ({exc}); download it again") from None
    fsync_dir(staging)
    return list(staged.values())


def _limit_text(spec: RemoteFile, limit: int) -> str:
    if spec.size is not None:
        return f"the {limit:,} bytes of the original {spec.name}"
    return f"the {limit:,}-byte limit for an archive member"


def copy_verified(src: Path, dest: Path, spec: RemoteFile | None) -> Path:
    """Copy a user's file into the data home: streamed to a temp file beside `dest`, verified there
    when its checksum is published, flushed to disk, then renamed into place."""
    with locked(dest):
        remove_leftovers(dest.parent, dest.name)  # temp files of a killed copy to `dest`
        fd, tmp = temp_file(dest)
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    with open(src, "rb") as f:
                        digests = _copy_capped(f, out, None, ("sha256", "md5") if spec and spec.md5 else ("sha256",))
                except OSError as exc:
                    raise DataError(f"{src}: cannot read ({exc.strerror or exc})") from None
                out.flush()
                os.fsync(out.fileno())
            if spec is not None and spec.verifiable:
                problem = mismatch(tmp, spec, digests, shown=src)
                if problem:
                    raise ChecksumError(f"{src}: {problem}; {spec.fix}")
            os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600; the data home is shared like any cache
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(dest.parent)
    return dest
