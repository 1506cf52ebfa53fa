"""Where raw files come from: verified downloads (resumable), local archives, system copies."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import ChecksumError, DataError, DownloadError
from .cache import atomic_write_bytes, locked
from .idx import read_bytes

CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """A published file. `content_sha256` checks the gunzipped payload, for mirrors that recompress."""

    name: str
    url: str | None = None
    sha256: str | None = None
    content_sha256: str | None = None
    md5: str | None = None
    size: int | None = None

    @property
    def verifiable(self) -> bool:
        return bool(self.sha256 or self.content_sha256 or self.md5)


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, spec: RemoteFile) -> None:
    """Raise ChecksumError unless `path` matches every checksum `spec` publishes."""
    checks = []
    if spec.sha256:
        checks.append(("sha256", spec.sha256, lambda: file_digest(path, "sha256")))
    if spec.md5:
        checks.append(("md5", spec.md5, lambda: file_digest(path, "md5")))
    if spec.content_sha256:
        checks.append(("sha256 of the unpacked content", spec.content_sha256,
                       lambda: hashlib.sha256(read_bytes(path)).hexdigest()))
    for what, expected, compute in checks:
        actual = compute()
        if actual != expected:
            raise ChecksumError(
                f"{path}: {what} is {actual[:16]}…, expected {expected[:16]}… for {spec.name}; the file is "
                f"corrupt or a different version: delete it and download or add it again"
            )


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


def extract_zip_members(archive: Path, wanted: dict[str, RemoteFile], dest_dir: Path) -> list[Path]:
    """Extract the members of `archive` whose base name is in `wanted`, verify them, write atomically."""
    written = []
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                base = PurePosixPath(info.filename).name
                if info.is_dir() or base not in wanted:
                    continue
                target = safe_member_path(dest_dir, base)
                if target.exists():
                    continue
                with zf.open(info) as src, locked(target):
                    part = target.with_name(target.name + ".part")
                    with open(part, "wb") as out:
                        shutil.copyfileobj(src, out, CHUNK)
                    try:
                        verify(part, wanted[base])
                    except ChecksumError:
                        part.unlink(missing_ok=True)
                        raise
                    os.replace(part, target)
                written.append(target)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{archive}: not a readable zip archive ({exc}); download it again") from None
    return written


def copy_verified(src: Path, dest: Path, spec: RemoteFile | None) -> Path:
    """Copy a user's file into the data home, verifying it when its checksum is published."""
    if spec is not None and spec.verifiable:
        verify(src, spec)
    with locked(dest):
        atomic_write_bytes(dest, src.read_bytes())
    return dest
