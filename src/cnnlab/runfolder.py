"""A run is a folder. This module alone writes and reads its files, so the engine, the studies and the
analysis agree on one format:

  config.yaml        the resolved config, after validation
  env.json           versions, device, threads, git hash
  metrics.csv        one row per epoch (METRIC_COLUMNS)
  model.safetensors  the kept weights (best on validation); model.json rebuilds the model
  checkpoint.safetensors  the last epoch's full training state, for --resume
  predictions.npz    per evaluated split: sample indices, labels, float16 logits, sha256 of the images
  tensorboard/       TensorBoard event files
  summary.json       written last and atomically; a run without it is unfinished

Importing this module imports neither torch nor pandas.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .errors import CnnlabError, DataError

CONFIG = "config.yaml"
ENV = "env.json"
METRICS = "metrics.csv"
WEIGHTS = "model.safetensors"
MODEL_SPEC = "model.json"
CHECKPOINT = "checkpoint.safetensors"
PREDICTIONS = "predictions.npz"
TENSORBOARD = "tensorboard"
SUMMARY = "summary.json"
METRIC_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "images_per_s")
STATUSES = ("finished", "failed")
FLOAT16_MAX = float(np.finfo(np.float16).max)


class RunError(CnnlabError):
    """A run folder that is missing, unfinished or not a run."""


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write via a temporary file in the same folder and rename, so readers see all or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data.encode() if isinstance(data, str) else data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o666 & ~_umask())  # mkstemp makes 0600; a run folder is shared like any output
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-able: {type(value).__name__}")


def dumps(value: Any) -> str:
    """JSON with NaN/inf written as null (strict JSON readers choke on NaN)."""
    return json.dumps(_finite(value), indent=2, default=_json_default) + "\n"


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def images_sha256(images: np.ndarray) -> str:
    """The fingerprint of an evaluated image set (its bytes in order, with the shape)."""
    digest = hashlib.sha256(str(tuple(images.shape)).encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Predictions:
    """One split's predictions: positions in the dataset's split, true labels, logits, image fingerprint."""

    indices: np.ndarray
    labels: np.ndarray
    logits: np.ndarray
    sha256: str

    @property
    def predicted(self) -> np.ndarray:
        return self.logits.argmax(axis=1)


class RunFolder:
    """Paths and readers/writers of one run folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    # ---- state --------------------------------------------------------------------------
    @property
    def status(self) -> str:
        """'finished' or 'failed' (from summary.json), 'unfinished' (started), or 'empty'."""
        if self.file(SUMMARY).exists():
            return self.read_summary().get("status", "failed")
        if self.file(CONFIG).exists():
            return "unfinished"
        return "empty"

    def has_content(self) -> bool:
        return self.path.is_dir() and any(self.path.iterdir())

    def require(self, *names: str) -> None:
        if not self.path.is_dir():
            raise RunError(f"{self.path}: no such run folder; train one with `cnnlab train --out {self.path}`")
        for name in names:
            if not self.file(name).exists():
                raise RunError(f"{self.path} is not a finished run: {name} is missing "
                               f"(continue it with `cnnlab train --out {self.path} --resume`)")

    # ---- config and environment ------------------------------------------------------------
    def write_config(self, config: dict) -> None:
        atomic_write(self.file(CONFIG), yaml.safe_dump(config, sort_keys=False))

    def read_config(self) -> dict:
        self.require(CONFIG)
        try:
            tree = yaml.safe_load(self.file(CONFIG).read_text())
        except yaml.YAMLError as exc:
            raise RunError(f"{self.file(CONFIG)}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(tree, dict):
            raise RunError(f"{self.file(CONFIG)}: expected a mapping of sections")
        return tree

    def write_env(self, env: dict) -> None:
        atomic_write(self.file(ENV), dumps(env))

    def read_env(self) -> dict:
        return self._read_json(ENV)

    # ---- metrics ---------------------------------------------------------------------------
    def append_metrics(self, row: dict) -> None:
        path = self.file(METRICS)
        new = not path.exists()
        with path.open("a", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: _csv_number(row.get(k)) for k in METRIC_COLUMNS})

    def truncate_metrics(self, epochs: int) -> None:
        """Keep the first `epochs` rows (a resumed run rewrites what came after its checkpoint)."""
        rows = [r for r in self.read_metrics() if r["epoch"] <= epochs]
        text = ",".join(METRIC_COLUMNS) + "\n" + "".join(
            ",".join(_csv_number(r[k]) for k in METRIC_COLUMNS) + "\n" for r in rows)
        atomic_write(self.file(METRICS), text)

    def read_metrics(self) -> list[dict]:
        path = self.file(METRICS)
        if not path.exists():
            return []
        with path.open(newline="") as source:
            rows = list(csv.DictReader(source))
        return [{k: (int(v) if k == "epoch" else float(v) if v not in ("", None) else math.nan)
                 for k, v in row.items() if k in METRIC_COLUMNS} for row in rows]

    # ---- model -----------------------------------------------------------------------------
    def write_model_spec(self, spec: dict) -> None:
        atomic_write(self.file(MODEL_SPEC), dumps(spec))

    def read_model_spec(self) -> dict:
        return self._read_json(MODEL_SPEC)

    def write_weights(self, state_dict: dict, name: str = WEIGHTS, metadata: dict | None = None) -> None:
        from safetensors.torch import save

        tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
        atomic_write(self.file(name), save(tensors, metadata=metadata))

    def read_weights(self, name: str = WEIGHTS, device="cpu") -> dict:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        self.require(name)
        try:
            return load_file(self.file(name), device=str(device))
        except (SafetensorError, OSError, ValueError) as exc:
            raise RunError(f"{self.file(name)}: not a readable safetensors file ({exc}); "
                           f"retrain the run or restore the file") from None

    # ---- predictions -----------------------------------------------------------------------
    def write_predictions(self, predictions: dict[str, Predictions], name: str = PREDICTIONS) -> None:
        arrays = {}
        for split, pred in predictions.items():
            arrays[f"{split}_indices"] = np.asarray(pred.indices, dtype=np.int64)
            arrays[f"{split}_labels"] = np.asarray(pred.labels, dtype=np.int64)
            # clipped to float16's range: a diverged model's huge logits would otherwise be stored as inf
            arrays[f"{split}_logits"] = np.clip(np.asarray(pred.logits, dtype=np.float32), -FLOAT16_MAX,
                                                FLOAT16_MAX).astype(np.float16)
            arrays[f"{split}_sha256"] = np.array(pred.sha256)
        path = self.file(name)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write(path, buffer.getvalue())

    def read_predictions(self, name: str = PREDICTIONS) -> dict[str, Predictions]:
        self.require(name)
        try:
            with np.load(self.file(name), allow_pickle=False) as data:
                splits = sorted({key.rsplit("_", 1)[0] for key in data.files})
                return {s: Predictions(data[f"{s}_indices"], data[f"{s}_labels"], data[f"{s}_logits"].astype(np.float32),
                                       str(data[f"{s}_sha256"])) for s in splits}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # truncated / empty files
            raise DataError(f"{self.file(name)}: not a readable predictions file ({exc})") from None

    # ---- summary ---------------------------------------------------------------------------
    def write_summary(self, summary: dict) -> None:
        if summary.get("status") not in STATUSES:
            raise ValueError(f"summary status must be one of {STATUSES}")
        atomic_write(self.file(SUMMARY), dumps(summary))

    def read_summary(self) -> dict:
        return self._read_json(SUMMARY)

    def _read_json(self, name: str) -> dict:
        self.require(name)
        try:
            tree = json.loads(self.file(name).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RunError(f"{self.file(name)}: not valid JSON ({exc})") from None
        if not isinstance(tree, dict):
            raise RunError(f"{self.file(name)}: expected a JSON object, got {type(tree).__name__}")
        return tree


def _csv_number(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)
