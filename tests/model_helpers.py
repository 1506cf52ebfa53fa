"""Helpers of the model tests: parameter counts, and a pickle that runs code when it is loaded."""

from __future__ import annotations

import pickle
from pathlib import Path


def params(model) -> int:
    return sum(p.numel() for p in model.parameters())


class _Payload:
    """Unpickling this creates the file `path`: what a pickle someone sends could do instead."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def write_payload(folder: Path) -> tuple[Path, Path]:
    """(the pickle, the sentinel file its unpickling would create)."""
    sentinel, payload = folder / "UNPICKLED", folder / "weights.pth"
    payload.write_bytes(pickle.dumps(_Payload(sentinel)))
    pickle.loads(payload.read_bytes()).close()  # the payload is live: loading it creates the sentinel
    assert sentinel.exists()
    sentinel.unlink()
    return payload, sentinel
