"""The public API: what `import cnnlab as cl` offers a notebook, and what every command of the CLI calls.

Each function is one step of the study (data, model, train, evaluate, study, compare, select, report) and
returns a typed result; run and study folders open as `Run` and `Study`."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, bad_value
from .results import Run, Study


# ---- data and models ---------------------------------------------------------------------------
def load_dataset(name: str, download: bool = True, progress: bool = True):
    """A dataset by registry name or idx:/csv:/folder: spec: uint8 images N×C×H×W, labels, class names."""
    from .data import load_dataset as load

    _check_name(name, "load_dataset")
    return load(name, download=download, progress=progress)


def add_data(name: str, source: str | Path) -> list[Path]:
    """Copy files you already have (an archive, .gz files, CSVs) into the data home, verified against the
    published checksums; `cnnlab data add`. Returns the files added."""
    from .data import add_local

    _check_name(name, "add_data")
    return add_local(name, _file(source, "source", "add_data", "a file or folder you already have"))


def create_model(name: str, num_classes: int, in_chans: int = 1, input_size: int | tuple[int, int] = 28, **options):
    """A model (curated name, timm:NAME or tv:NAME) adapted to the data: models.factory.BuiltModel."""
    from .models import create_model as create

    return create(name, num_classes, in_chans, input_size, **options)


# ---- training ----------------------------------------------------------------------------------
def train(config=None, out: str | Path | None = None, *, overrides: Mapping | Sequence[str] | None = None,
          resume: bool = False, callbacks: Iterable = (), progress: bool = True, console=None) -> Run:
    """Train one model into a run folder and return it as a Run.

    config: a run YAML file, a dict of sections, a RunConfig, or None (defaults); overrides: dotted keys
    ({"train.lr": 3e-4} or ["train.lr=3e-4"]). resume=True continues `out` from its last checkpoint; what is
    given then changes that run's own config."""
    from .config import RunConfig, build_config, load_config, override_items
    from .engine.callbacks import Callback
    from .experiments.run import train_run
    from .runfolder import CONFIG

    if not (config is None or isinstance(config, (RunConfig, Mapping, str, os.PathLike))):
        raise bad_value("config", "train", "a run YAML file, a dict of sections or a cl.RunConfig", config)
    callbacks = () if callbacks is None else callbacks
    if not isinstance(callbacks, (list, tuple)) or not all(isinstance(c, Callback) for c in callbacks):
        raise bad_value("callbacks", "train", "a list of cl.Callback objects, e.g. [cl.EarlyStopping(patience=3)]",
                        callbacks)
    given = override_items(overrides, "train")  # checked here, so that an error names train
    if resume and out is None:
        raise ConfigError("--resume needs the run folder: cnnlab train --out RUN --resume (give the run's folder "
                          "with --out)")
    if isinstance(config, RunConfig) and not given:
        built = config
    elif isinstance(config, (RunConfig, Mapping)):
        tree = config.model_dump(mode="json") if isinstance(config, RunConfig) else config
        built = build_config(tree, overrides)
    elif config is not None or given or not resume:
        # resuming: what is given changes the run's own config (so an error names only what was given)
        base = config if config is not None else (Path(out) / CONFIG if resume and (Path(out) / CONFIG).exists()
                                                  else None)
        built = load_config(base, overrides)
    else:
        built = None
    result = train_run(built, out, resume=resume, callbacks=callbacks, progress=progress, console=console)
    return Run(result.path)


@dataclass(frozen=True)
class Prediction:
    file: str
    top: list[tuple[str, float]]  # (class name, probability), most likely first


def predict(run: str | Path | Run, images: Sequence[str | Path], top: int = 5, invert: str = "auto",
            device: str | None = None) -> list[Prediction]:
    """The top-k classes of each image file, with probabilities."""
    from .engine.inference import predict_files

    files = [images] if isinstance(images, (str, os.PathLike)) else images
    if not isinstance(files, Iterable):
        raise bad_value("images", "predict", "a list of image files", images)
    files = [_file(f, "images", "predict", "a list of image files") for f in files]
    rows = predict_files(_path(run, "run", "predict"), files, top, invert, device)
    return [Prediction(str(row["file"]), [(name, float(p)) for name, p in row["top"]]) for row in rows]


def evaluate(run: str | Path | Run, data: str | None = None, device: str | None = None, confused: int = 8):
    """A finished run on a test split: figures, inference speed, and (on its own data) the analysis."""
    from .analysis.evaluation import evaluate as evaluate_run

    return evaluate_run(_path(run, "run", "evaluate"), data, device, confused)


# ---- studies -----------------------------------------------------------------------------------
def run_study(study, out: str | Path | None = None, *, workers: int = 1, executor: str = "local",
              address: str | None = None, retry_failed: bool = False, progress: bool = True, console=None) -> Study:
    """Run every unfinished cell of a study (a YAML file or a dict) and return the Study."""
    from .experiments.study import run_study as run

    _check_study(study, "run_study")
    done = run(study, out, workers=workers, executor=executor, address=address, retry_failed=retry_failed,
               console=console, progress=progress)
    return Study(done.folder.path)


@dataclass(frozen=True)
class CellEstimate:
    name: str
    state: str
    train_images: int
    params: int
    seconds: float


@dataclass(frozen=True)
class StudyEstimate:
    """A study planned and checked, with each cell's estimated time; nothing was run."""

    name: str
    folder: Path
    threads: int
    workers: int
    cells: list[CellEstimate]
    seconds: float
    missing_data: list[str]
    imported: list[tuple[str, str]] = field(default_factory=list)  # (module, file) of the study's own code


def estimate_study(study, out: str | Path | None = None, workers: int = 1) -> StudyEstimate:
    """Plan and check a study, and estimate its time here from a short timed probe of each model."""
    from .experiments.study import estimate_seconds, open_study

    _check_study(study, "estimate_study")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise bad_value("workers", "estimate_study", "a whole number, at least 1", workers)
    run = open_study(study, out, workers, need_data=False)
    total, per_cell = estimate_seconds(run, workers)
    cells = [CellEstimate(c.name, run.folder.cell_state(c) if run.folder.exists() else "pending",
                          run.facts[c.key]["train_images"], run.facts[c.key]["params"], per_cell[c.key])
             for c in run.plan.cells]
    missing = sorted({c.config["data"]["name"] for c in run.plan.cells if not run.facts[c.key]["present"]})
    return StudyEstimate(run.plan.spec.name, run.folder.path, run.plan.threads, workers, cells, total, missing,
                         list(run.imported))


# ---- analysis ----------------------------------------------------------------------------------
def compare(paths: Sequence[str | Path], split: str = "test", alpha: float = 0.05, resamples: int = 10_000):
    """Is the difference real? McNemar and a bootstrap for runs, paired tests over seeds for seed groups,
    every pair Holm-corrected: analysis.compare.Comparisons."""
    from .analysis.compare import compare as compare_paths

    return compare_paths(_paths(paths, "paths", "compare"), split, alpha, resamples)


@dataclass(frozen=True)
class CrossEvaluation:
    """Every run on every dataset's test split (analysis.crosseval.CrossCell, row-major)."""

    cells: list

    def matrix(self, value: str = "accuracy"):
        """A pandas frame: rows the runs, columns the datasets."""
        from .analysis.crosseval import matrix

        return matrix(self.cells, value)


def crosseval(runs: Sequence[str | Path], data: str | Sequence[str], keep_seen: bool = False,
              device: str | None = None) -> CrossEvaluation:
    """Trained on one dataset, tested on others, labels mapped into the coarser label set."""
    from .analysis.crosseval import crosseval as cross_evaluate

    if isinstance(data, str):
        names = [d.strip() for d in data.split(",")]
    elif isinstance(data, Iterable):
        names = [str(d).strip() for d in data]
    else:
        raise bad_value("data", "crosseval", "dataset names, as 'a,b' or a list", data)
    runs = _paths(runs, "runs", "crosseval")
    return CrossEvaluation(cross_evaluate(runs, [n for n in names if n], keep_seen, device))


@dataclass(frozen=True)
class Selection:
    ranked: list  # analysis.select.Candidate, best first
    weights: dict[str, float]
    normalisation: str
    figures: list[Path] = field(default_factory=list)  # the Pareto fronts, when plot was given

    @property
    def selected(self):
        return self.ranked[0]


def select(paths: Sequence[str | Path], weights: str | Mapping[str, float] | None = None,
           normalisation: str = "minmax", device: str | None = None, plot: str | Path | None = None) -> Selection:
    """Rank models by a weighted, normalised score of validation accuracy, latency and size measured here;
    plot: a folder for the accuracy-vs-latency and accuracy-vs-size Pareto fronts (PNG and SVG)."""
    from .analysis.select import parse_weights, write_pareto_figures
    from .analysis.select import select as rank

    parsed = parse_weights(weights)
    ranked = rank(_paths(paths, "paths", "select"), parsed, normalisation, device)
    figures = write_pareto_figures(ranked, Path(plot)) if plot is not None else []
    return Selection(ranked, parsed, normalisation, figures)


@dataclass(frozen=True)
class Report:
    html: Path
    markdown: Path
    figures: int


def report(sources: Sequence[str | Path | Run | Study], out: str | Path, title: str | None = None) -> Report:
    """One self-contained HTML page and a Markdown version with tables (CSV, Markdown, LaTeX) and figures."""
    from .analysis.report import write_report

    written = write_report(_paths(sources, "sources", "report"), _file(out, "out", "report", "a folder path"), title)
    return Report(Path(written["html"]), Path(written["markdown"]), written["figures"])


# ---- the quickstart ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Quickstart:
    info: object  # data.explore.DatasetInfo
    figures: list[Path]
    study: Study
    results: Path  # results.csv, one row per cell
    report: Report


def quickstart(out: str | Path = "quickstart", transfer: bool = False, progress: bool = True,
               console=None) -> Quickstart:
    """The quickstart study offline: explore a real dataset, train three models over three seeds, write the
    results, the figures and the report into `out`. transfer: the transfer-learning quickstart."""
    from .experiments.quickstart import run_quickstart

    out = _file(out, "out", "quickstart", "a folder path")
    _check_quickstart_folder(out)
    info, figures, done = run_quickstart(out, console, progress=progress, transfer=transfer)
    study = Study(done.folder.path)
    study.results.to_csv(out / "results.csv", index=False)
    title = "cnnlab transfer quickstart" if transfer else "cnnlab quickstart"
    written = report([study], out / "report", title)
    return Quickstart(info, figures, study, out / "results.csv", written)


def _check_quickstart_folder(out: Path) -> None:
    """The quickstart writes figures, results.csv, study/ and report/ into `out`: a new folder or its own."""
    from .runfolder import CONFIG, SUMMARY
    from .studyfolder import StudyFolder

    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file; the quickstart writes a folder (figures, study/, report/): give a "
                          f"folder path")
    if (out / CONFIG).exists() or (out / SUMMARY).exists() or StudyFolder(out).exists():
        kind = "a study" if StudyFolder(out).exists() else "a run"
        raise ConfigError(f"{out} is {kind} folder; the quickstart writes its own folder (figures, study/, report/): "
                          f"give a new folder path")


def _check_name(name, owner: str) -> None:
    if not isinstance(name, str):
        raise bad_value("name", owner, "a dataset name (`cnnlab data list`) or an idx:/csv:/folder: spec", name)


def _check_study(study, owner: str) -> None:
    from .experiments.plan import StudySpec

    if not isinstance(study, (str, os.PathLike, Mapping, StudySpec)):
        raise bad_value("study", owner, "a study YAML file or a dict (name, base, ablate, grid, seeds)", study)


def _file(item, param: str, owner: str, expected: str) -> Path:
    if not isinstance(item, (str, os.PathLike)):
        raise bad_value(param, owner, expected, item)
    return Path(item)


def _path(item, param: str, owner: str) -> Path:
    """A folder given as a path, a Run or a Study."""
    if isinstance(item, (Run, Study)):
        return item.path
    return _file(item, param, owner, "a folder: a path, a cl.Run or a cl.Study")


def _paths(items, param: str, owner: str) -> list[Path]:
    """Folders given as a list; one folder alone is a list of one."""
    if isinstance(items, (str, os.PathLike, Run, Study)):
        items = [items]
    if not isinstance(items, Iterable):
        raise bad_value(param, owner, "a list of folders (paths, cl.Run or cl.Study)", items)
    return [_path(item, param, owner) for item in items]
