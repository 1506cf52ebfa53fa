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

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .errors import CnnlabError, DataError
from .yamlsize import check_yaml_size
from .files import atomic_write, fsync_dir  # noqa: F401 - fsync_dir is part of this module's interface

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
    """Paths and readers/writers of one run folder. `guard`, when given, is a study cell's CellLock: each
    write starts only after `guard.check()` and is put in place inside `guard.committing()`, so a process
    that lost its cell writes nothing to it."""

    def __init__(self, path: str | Path, guard=None):
        self.path = Path(path)
        self.guard = guard

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    def _commit(self):
        return self.guard.committing() if self.guard is not None else contextlib.nullcontext()

    def _write(self, name: str, data: bytes | str) -> None:
        if self.guard is not None:
            self.guard.check()  # before anything is written, even a temporary file
        atomic_write(self.file(name), data, commit=self._commit)

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
        """Raise RunError, saying what the folder is instead, unless it is a run holding `names`."""
        if not self.path.exists():
            raise RunError(f"{self.path}: no such run folder; train one with `cnnlab train --out {self.path}`")
        if not self.path.is_dir():
            raise RunError(f"{self.path} is a file, not a run folder")
        self.refuse_links()
        missing = [name for name in names if not self.file(name).exists()]
        if missing and not self.file(CONFIG).exists() and not self.file(SUMMARY).exists():
            raise RunError(f"{self.path} is not a run folder: it has no {CONFIG}, which every run writes when it "
                           f"starts; give the folder of a run (`cnnlab train --out DIR` makes one)")
        for name in missing:
            if not self.file(SUMMARY).exists():
                raise RunError(f"{self.path} is an unfinished run ({name} is missing and there is no {SUMMARY}); "
                               f"continue it with `cnnlab train --out {self.path} --resume`")
            summary = self._read_json(SUMMARY)
            if summary.get("status") == "failed":
                raise RunError(f"{self.path} is a failed run ({summary.get('error') or 'no error recorded'}), so "
                               f"it has no {name}; train a new run with other settings (another --out), or, if the "
                               f"cause is gone, continue it as it is with `cnnlab train --out {self.path} --resume`")
            raise RunError(f"{self.path}: {name} is missing from this finished run; restore the file or train the "
                           f"run again")

    def refuse_links(self) -> None:
        """A run folder holds its files itself: a symbolic link in it (to a file or folder anywhere) would make
        cnnlab read or write outside it."""
        try:
            links = [entry for entry in self.path.iterdir() if entry.is_symlink()]
        except OSError:
            return
        if links:
            raise RunError(f"{links[0]} is a symbolic link (to {os.readlink(links[0])}); a run folder must hold its "
                           f"files itself: replace the link with the file or folder, or remove it")

    def remove_temporaries(self) -> list[Path]:
        """Temporary files of writes that a killed process left half done (call while holding the run)."""
        removed = []
        for name in (CONFIG, ENV, METRICS, WEIGHTS, MODEL_SPEC, CHECKPOINT, PREDICTIONS, SUMMARY):
            for temp in self.path.glob(f".{name}.*"):
                if temp.is_file():
                    temp.unlink(missing_ok=True)
                    removed.append(temp)
        return removed

    # ---- config and environment ------------------------------------------------------------
    def write_config(self, config: dict) -> None:
        self._write(CONFIG, yaml.safe_dump(config, sort_keys=False))

    def read_config(self) -> dict:
        self.require(CONFIG)
        try:
            tree = yaml.safe_load(self.file(CONFIG).read_text())
            check_yaml_size(tree, self.file(CONFIG))
        except UnicodeDecodeError:
            raise RunError(f"{self.file(CONFIG)}: not a text file; restore the file or train the run again") from None
        except yaml.YAMLError as exc:
            raise RunError(f"{self.file(CONFIG)}: not valid YAML ({str(exc).splitlines()[0]}); restore the file or "
                           f"train the run again") from None
        if not isinstance(tree, dict):
            raise RunError(f"{self.file(CONFIG)}: expected a mapping of sections")
        return tree

    def write_env(self, env: dict) -> None:
        self._write(ENV, dumps(env))

    def read_env(self) -> dict:
        return self._read_json(ENV)

    # ---- metrics ---------------------------------------------------------------------------
    def append_metrics(self, row: dict) -> None:
        path = self.file(METRICS)
        if self.guard is not None:
            self.guard.check()
        with self._commit(), path.open("a", newline="") as out:
            new = out.tell() == 0
            writer = csv.DictWriter(out, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: _csv_number(row.get(k)) for k in METRIC_COLUMNS})
            out.flush()
            os.fsync(out.fileno())

    def truncate_metrics(self, epochs: int) -> None:
        """Keep the first `epochs` rows (a resumed run rewrites what came after its checkpoint); a row torn
        by a kill mid-write, or any later one, is dropped."""
        rows = [r for r in self._parse_metrics(repair=True) if r["epoch"] <= epochs]
        text = ",".join(METRIC_COLUMNS) + "\n" + "".join(
            ",".join(_csv_number(r[k]) for k in METRIC_COLUMNS) + "\n" for r in rows)
        self._write(METRICS, text)

    def read_metrics(self) -> list[dict]:
        """One dict per epoch; RunError when the file is damaged (a torn last row: resume the run)."""
        return self._parse_metrics(repair=False)

    def _parse_metrics(self, repair: bool) -> list[dict]:
        path = self.file(METRICS)
        if not path.exists():
            return []
        text = path.read_text(errors="replace")
        lines = text.splitlines()
        if not lines:
            return []
        if lines[0].split(",") != list(METRIC_COLUMNS):
            if repair:
                return []
            raise RunError(f"{path}: the header is not {','.join(METRIC_COLUMNS)}; the file is not cnnlab's "
                           f"metrics (restore it, or train the run again)")
        rows = []
        for number, line in enumerate(lines[1:], 2):
            row = _metric_row(line)
            torn = row is None or row["epoch"] != (rows[-1]["epoch"] + 1 if rows else 1) or \
                (number == len(lines) and not text.endswith("\n"))
            if torn:
                if repair:
                    break  # what follows a torn row came after the kill: the checkpoint decides
                last = "its last row" if number == len(lines) else f"line {number}"
                raise RunError(f"{path}: {last} is incomplete or out of order (the run was killed while writing "
                               f"it); `cnnlab train --out {self.path} --resume` repairs it")
            rows.append(row)
        return rows

    # ---- model -----------------------------------------------------------------------------
    def write_model_spec(self, spec: dict) -> None:
        self._write(MODEL_SPEC, dumps(spec))

    def read_model_spec(self) -> dict:
        return self._read_json(MODEL_SPEC)

    def write_weights(self, state_dict: dict, name: str = WEIGHTS, metadata: dict | None = None) -> None:
        from safetensors.torch import save

        tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
        self._write(name, save(tensors, metadata=metadata))

    def read_weights(self, name: str = WEIGHTS, device="cpu") -> dict:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        self.require(name)
        try:
            return load_file(self.file(name), device=str(device))
        except (SafetensorError, OSError, ValueError) as exc:
            raise RunError(f"{self.file(name)}: not a readable safetensors file ({exc}); "
                           f"retrain the run or restore the file") from None

    def read_checkpoint(self, device="cpu") -> tuple[dict, dict, dict | None]:
        """(tensors, training state, config it was trained with or None) of the last checkpoint."""
        from safetensors import SafetensorError, safe_open

        checkpoint = self.file(CHECKPOINT)
        try:
            with safe_open(checkpoint, framework="pt", device=str(device)) as source:
                metadata = source.metadata() or {}
                state = json.loads(metadata["state"])
                config = json.loads(metadata["config"]) if "config" in metadata else None
                tensors = {key: source.get_tensor(key) for key in source.keys()}
        except (SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:
            raise RunError(f"{checkpoint}: not a readable checkpoint ({exc}); delete it to train the run again "
                           f"from epoch 1") from None
        return tensors, state, config

    def has(self, name: str) -> bool:
        return self.file(name).exists()

    def remove_summary(self) -> None:
        """Forget how the run ended (a resume continues it)."""
        self.file(SUMMARY).unlink(missing_ok=True)

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
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        self._write(name, buffer.getvalue())

    def read_predictions(self, name: str = PREDICTIONS) -> dict[str, Predictions]:
        self.require(name)
        try:
            with np.load(self.file(name), allow_pickle=False) as data:
                splits = sorted({key.rsplit("_", 1)[0] for key in data.files})
                return {s: Predictions(data[f"{s}_indices"], data[f"{s}_labels"], data[f"{s}_logits"].astype(np.float32),
                                       str(data[f"{s}_sha256"])) for s in splits}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # truncated / empty files
            raise DataError(f"{self.file(name)}: not a readable predictions file ({exc}); rewrite it with "
                            f"`cnnlab evaluate {self.path}`") from None

    # ---- summary ---------------------------------------------------------------------------
    def write_summary(self, summary: dict) -> None:
        if summary.get("status") not in STATUSES:
            raise ValueError(f"summary status must be one of {STATUSES}")
        self._write(SUMMARY, dumps(summary))

    def read_summary(self) -> dict:
        return self._read_json(SUMMARY)

    def _read_json(self, name: str) -> dict:
        self.require(name)
        try:
            tree = json.loads(self.file(name).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RunError(f"{self.file(name)}: not valid JSON ({exc}); restore the file or train the run again") from None
        if not isinstance(tree, dict):
            raise RunError(f"{self.file(name)}: expected a JSON object, got {type(tree).__name__}")
        return tree


def runs_in(folder: str | Path) -> list[Path]:
    """The run folders (with a summary.json) directly inside `folder`; one that is a link, or leads out of
    `folder`, is refused rather than read."""
    folder = Path(folder)
    root = folder.resolve()
    runs = []
    for entry in sorted(folder.iterdir()):
        if not (entry / SUMMARY).exists():
            continue
        if entry.is_symlink() or entry.resolve().parent != root:
            raise RunError(f"{entry} is a link to {entry.resolve()}, outside {folder}; a folder of runs must hold its "
                           f"runs itself: replace the link with the run folder, or remove it")
        runs.append(entry)
    return runs


def _metric_row(line: str) -> dict | None:
    """A metrics.csv line as numbers; None when it is not a whole row."""
    fields = line.split(",")
    if len(fields) != len(METRIC_COLUMNS):
        return None
    try:
        row = {k: float(v) if v != "" else math.nan for k, v in zip(METRIC_COLUMNS, fields)}
        epoch = int(fields[0])
    except ValueError:
        return None
    return {**row, "epoch": epoch} if epoch >= 1 else None


def _csv_number(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)
