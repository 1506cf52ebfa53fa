"""The error tree. Every error a user can cause is a CnnlabError with a message that says
what went wrong, where, and how to fix it; the CLI prints it on one line and exits 2."""

from __future__ import annotations


class CnnlabError(Exception):
    """Base of every error cnnlab raises on purpose."""

    exit_code = 2


class ConfigError(CnnlabError, ValueError):
    """A configuration key or value is invalid."""


def bad_value(param: str, owner: str, expected: str, got: object) -> ConfigError:
    """The one message for a bad value, in scikit-learn's words:
    "The 'dropout' parameter of rescnn must be a float in [0, 1). Got 2 instead." """
    return ConfigError(f"The {param!r} parameter of {owner} must be {expected}. Got {got!r} instead.")


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
