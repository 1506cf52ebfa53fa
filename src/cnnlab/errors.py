"""The error tree. Every error a user can cause is a CnnlabError with a message that says
what went wrong, where, and how to fix it; the CLI prints it on one line and exits 2."""

from __future__ import annotations


class CnnlabError(Exception):
    """Base of every error cnnlab raises on purpose."""

    exit_code = 2


class ConfigError(CnnlabError, ValueError):
    """A configuration key or value is invalid."""


class UnknownNameError(CnnlabError, KeyError):
    """A name (dataset, model, optimizer, ...) is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(CnnlabError):
    """A dataset file is missing, corrupt, or inconsistent."""


class ChecksumError(DataError):
    """A file's checksum differs from the published one."""


class DownloadError(DataError):
    """A download failed (offline, refused, interrupted)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C: the work stopped where it can be resumed, and the message says how. A KeyboardInterrupt
    (not an Exception), so no handler that records failures mistakes it for one."""

    exit_code = 130
