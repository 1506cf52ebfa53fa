"""Run and study folders opened for reading, as typed objects a notebook shows as tables:
`cl.Run("runs/lenet5")`, `cl.Study("studies/optimizer")`."""

from __future__ import annotations

import contextlib
import html
import math
from collections import Counter
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path

from .runfolder import CONFIG, SUMMARY, RunError, RunFolder
from .studyfolder import MANIFEST, CellRecord, StudyError, StudyFolder


@dataclass(frozen=True)
class Scores:
    """One split's figures."""

    accuracy: float
    loss: float
    macro_f1: float
    top5: float | None = None

    @classmethod
    def from_dict(cls, tree: dict | None, split: str = "test") -> Scores | None:
        """ValueError naming the entry when `tree` is not a split's scores."""
        if not tree:
            return None
        if not isinstance(tree, dict):
            raise ValueError(f"{split!r} is {tree!r}, not a mapping of scores")
        for name in ("accuracy", "loss", "macro_f1", "top5"):
            if not (name == "top5" and tree.get(name) is None) and not _is_number(tree.get(name)):
                raise ValueError(f"'{split}.{name}' is {tree.get(name)!r}, not a number")
        return cls(tree["accuracy"], tree["loss"], tree["macro_f1"], tree.get("top5"))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class RunSummary:
    """summary.json as fields; `extra` holds what the summary says beyond them."""

    status: str
    model: str | None = None
    data: str | None = None
    seed: int | None = None
    val: Scores | None = None
    test: Scores | None = None
    best_epoch: int | None = None
    epochs_run: int | None = None
    params: int | None = None
    trainable_params: int | None = None
    train_seconds: float | None = None
    images_per_s: float | None = None
    stopped: str | None = None
    error: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, tree: dict) -> RunSummary:
        """ValueError naming the entry when a field of `tree` has the wrong type."""
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: v for k, v in tree.items() if k in names}
        for name, value in known.items():
            kinds = _SUMMARY_TYPES.get(name)
            if value is not None and kinds is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
                raise ValueError(f"{name!r} is {value!r}, not {_SUMMARY_KINDS[kinds]}")
        if not isinstance(known.get("status"), str):
            raise ValueError(f"'status' is {known.get('status')!r}, not finished or failed")
        known["val"], known["test"] = (Scores.from_dict(tree.get(split), split) for split in ("val", "test"))
        return cls(**known, extra={k: v for k, v in tree.items() if k not in names})


_SUMMARY_TYPES = {**dict.fromkeys(("model", "data", "stopped", "error"), str),
                  **dict.fromkeys(("seed", "best_epoch", "epochs_run", "params", "trainable_params"), int),
                  **dict.fromkeys(("train_seconds", "images_per_s"), (int, float))}
_SUMMARY_KINDS = {str: "a text", int: "a whole number", (int, float): "a number"}


@contextlib.contextmanager
def _reading(path: Path, error: type[Exception] = RunError):
    """What a damaged or hostile file makes the readers raise, as one error naming the file."""
    try:
        yield
    except RecursionError:
        raise error(f"{path}: nested too deeply to read, so not a file cnnlab wrote; restore it") from None
    except OSError as exc:
        raise error(f"{path}: cannot read it ({(exc.strerror or str(exc)).lower()}); restore it") from None


def _shown(render, name: str, path: Path) -> str:
    """The HTML of `render()`, or a line saying why the folder cannot be shown: Jupyter calls this to display
    the object, so it never raises."""
    try:
        return render()
    except Exception as exc:  # noqa: BLE001 - any failure is shown, never raised
        return _html_table([name, "status"], [[str(path), f"cannot be shown: {exc}"]])


def _html_table(headings: list[str], rows: list[list[str]], caption: str = "") -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in headings)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    title = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{title}<thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _percent(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.2%}"


class Run:
    """A run folder: its summary, config, metrics, predictions and figures, read from its files."""

    def __init__(self, path: str | Path):
        self.folder = RunFolder(path)
        if self.folder.path.exists() and not self.folder.path.is_dir():
            raise RunError(f"{self.folder.path} is a file, not a run folder; give the folder `cnnlab train` wrote")
        if not self.folder.path.is_dir():
            raise RunError(f"{self.folder.path}: no such run folder; give the folder `cnnlab train` wrote")
        if StudyFolder(path).exists():
            raise RunError(f"{self.folder.path} is a study folder, not a run; open it with cnnlab.Study")
        if not (self.folder.has(CONFIG) or self.folder.has(SUMMARY)):
            raise RunError(f"{self.folder.path} is not a run folder (no {CONFIG}); give the folder `cnnlab train` "
                           f"wrote")

    def __repr__(self) -> str:
        try:
            status = self.status
        except Exception:  # noqa: BLE001 - a repr never raises (it shows in tracebacks and in Jupyter)
            status = "unreadable"
        return f"Run({str(self.path)!r}, {status})"

    @property
    def path(self) -> Path:
        return self.folder.path

    @property
    def name(self) -> str:
        return self.folder.path.name

    @property
    def status(self) -> str:
        """finished, failed or unfinished (resumable)."""
        with _reading(self.path / SUMMARY):
            status = self.folder.status
        if not isinstance(status, str):
            raise RunError(f"{self.path / SUMMARY}: its status is {status!r}, not finished or failed; restore the "
                           f"file or train the run again")
        return status

    @cached_property
    def summary(self) -> RunSummary:
        if not self.folder.has(SUMMARY):
            raise RunError(f"{self.path} has not finished (no {SUMMARY}); resume it with "
                           f"`cnnlab train --out {self.path} --resume`")
        with _reading(self.path / SUMMARY):
            tree = self.folder.read_summary()
        try:
            return RunSummary.from_dict(tree)
        except ValueError as exc:
            raise RunError(f"{self.path / SUMMARY}: {exc}; restore the file or train the run again") from None

    @cached_property
    def config(self):
        """The run's validated RunConfig."""
        from .config import build_config

        with _reading(self.path / CONFIG):
            return build_config(self.folder.read_config())

    @property
    def metrics(self):
        """metrics.csv as a pandas frame, one row per epoch."""
        import pandas as pd

        return pd.DataFrame(self._read_metrics())

    def _read_metrics(self) -> list[dict]:
        self.folder.refuse_links()  # never read a metrics.csv outside the folder
        with _reading(self.path):
            return self.folder.read_metrics()

    def predictions(self, split: str = "test"):
        """The stored predictions of a split, with the class names (analysis.metrics.RunPredictions)."""
        from .analysis.metrics import read_run_predictions

        return read_run_predictions(self.path, split)

    def analysis(self, split: str = "test", top_pairs: int = 10):
        """Per-class table, confusion matrix, most-confused pairs (analysis.metrics.RunReport)."""
        from .analysis.metrics import analyse_run

        return analyse_run(self.path, split, top_pairs)

    def curves(self):
        """Learning curves (loss and accuracy per epoch) as a matplotlib figure."""
        from .analysis.plots import learning_curves

        return learning_curves({self.name: self._read_metrics()}, title=self.name)

    def confusion(self, split: str = "test", normalize: bool = True):
        """The confusion heatmap of a split as a matplotlib figure."""
        from .analysis.plots import confusion_heatmap

        report = self.analysis(split)
        return confusion_heatmap(report.matrix, report.source.classes, normalize=normalize,
                                 title=f"{self.name} ({split})")

    def _repr_html_(self) -> str:
        return _shown(self._html, "run", self.path)

    def _html(self) -> str:
        if not self.folder.has(SUMMARY):
            return _html_table(["run", "status"], [[self.name, self.status]])
        s = self.summary
        row = [s.model or "—", s.data or "—", s.status, _percent(s.val.accuracy if s.val else None),
               _percent(s.test.accuracy if s.test else None),
               "—" if not s.test else f"{s.test.macro_f1:.4f}", "—" if s.params is None else f"{s.params:,}",
               "—" if s.train_seconds is None else f"{s.train_seconds:.1f}",
               f"{'—' if s.best_epoch is None else s.best_epoch} / {'—' if s.epochs_run is None else s.epochs_run}"]
        return _html_table(["model", "data", "status", "val acc", "test acc", "test macro-F1", "params",
                            "train s", "best / epochs"], [row], caption=str(self.path))


class Study:
    """A study folder: its cells and their states, results frame, tables with confidence intervals and tests."""

    def __init__(self, path: str | Path):
        self.folder = StudyFolder(path)
        if not self.folder.path.exists():
            raise StudyError(f"{self.path}: no such study folder; give the folder `cnnlab study run` wrote")
        if not self.folder.path.is_dir():
            raise StudyError(f"{self.path} is a file, not a study folder; give the folder `cnnlab study run` wrote")
        if self.folder.manifest_path.is_symlink():  # a study folder holds its own manifest
            raise StudyError(f"{self.folder.manifest_path} is a symbolic link; a study folder must hold its "
                             f"{MANIFEST} itself: replace the link with the file")
        with _reading(self.folder.manifest_path, StudyError):
            self._manifest = self.folder.read_manifest()
        name, spec = self._manifest.get("name"), self._manifest.get("spec", {})
        problem = (f"its name is {name!r}, not a text" if not isinstance(name, str) else
                   f"its spec is a {type(spec).__name__}, not a mapping" if not isinstance(spec, dict) else None)
        if problem:
            raise StudyError(f"{self.folder.manifest_path}: not a readable study manifest ({problem}); restore it, or "
                             f"delete it and run the study file again with the same --out (finished cells are kept)")

    def __repr__(self) -> str:
        try:
            counts = ", ".join(f"{n} {s}" for s, n in self.counts.items())
        except Exception:  # noqa: BLE001 - a repr never raises (it shows in tracebacks and in Jupyter)
            counts = "cells unreadable"
        return f"Study({str(self.path)!r}, {counts})"

    @property
    def path(self) -> Path:
        return self.folder.path

    @property
    def name(self) -> str:
        return self._manifest["name"]

    @property
    def description(self) -> str:
        return self._manifest.get("spec", {}).get("description") or ""

    @property
    def cells(self) -> list[CellRecord]:
        return self._manifest["cells"]

    @property
    def states(self) -> dict[str, str]:
        """Each cell's state now: finished, failed, running, interrupted or pending."""
        with _reading(self.path, StudyError):
            return {c.name: self.folder.cell_state(c) for c in self.cells}

    @property
    def counts(self) -> Counter:
        return Counter(self.states.values())

    def run(self, cell: str) -> Run:
        """The run of a cell, by its name ('optimizer=sgd/seed=1-3f2a9c1b')."""
        names = [c.name for c in self.cells]
        if cell not in names:
            shown = ", ".join(names[:4]) + (", …" if len(names) > 4 else "")
            raise StudyError(f"{self.path} has no cell {cell!r}; its cells are {shown} (study.states lists them)")
        return Run(self.folder.run(cell).path)

    @property
    def runs(self) -> dict[str, Run]:
        """The finished cells' runs, by cell name."""
        return {name: self.run(name) for name, state in self.states.items() if state == "finished"}

    @property
    def results(self):
        """A pandas frame, one row per (factor, value, seed), with the cell's state and metrics."""
        from .analysis.study_table import collect_results

        return collect_results(self.path)

    def tables(self, alpha: float = 0.05):
        """One analysis.study_table.FactorTable per factor: mean ± 95 % CI over seeds, best value, tests."""
        from .analysis.study_table import study_tables

        return study_tables(self.path, alpha)

    def table(self, fmt: str = "markdown", alpha: float = 0.05) -> str:
        """The tables as markdown, csv or latex text."""
        from .analysis.study_table import TABLE_FORMATS, render_tables

        if isinstance(fmt, str):
            TABLE_FORMATS.get(fmt)  # an unknown format fails before the study is read
        return render_tables(self.tables(alpha), fmt)

    def _repr_html_(self) -> str:
        return _shown(self._html, "study", self.path)

    def _html(self) -> str:
        from .analysis.study_table import formatted_row, headings, shows_trainable

        tables = self.tables()
        trainable = shows_trainable(tables)
        parts = [f"<p><b>study {html.escape(self.name)}</b> ({html.escape(str(self.path))}): "
                 + html.escape(", ".join(f"{n} {s}" for s, n in self.counts.items())) + "</p>"]
        for factor in tables:
            rows = [formatted_row(r, trainable=trainable) for r in factor.rows]
            parts.append(_html_table(headings(trainable), rows, caption=f"{factor.factor} (mean ± 95 % CI over seeds; "
                                                                        f"★ best by validation accuracy)"))
            parts.append(f"<p>{html.escape(factor.verdict)}.</p>")
        return "\n".join(parts)
