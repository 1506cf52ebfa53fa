"""The public API: what `import cnnlab as cl` offers a notebook, and what every command of the CLI calls.

Each function is one step of the study (data, model, train, evaluate, study, compare, select, report) and
returns a typed result; run and study folders open as `Run` and `Study`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .results import Run, Study


# ---- data and models ---------------------------------------------------------------------------
def load_dataset(name: str, download: bool = True, progress: bool = True):
    """A dataset by registry name or idx:/csv:/folder: spec: uint8 images N×C×H×W, labels, class names."""
    from .data import load_dataset as load

    return load(name, download=download, progress=progress)


def add_data(name: str, source: str | Path) -> list[Path]:
    """Copy files you already have (an archive, .gz files, CSVs) into the data home, verified against the
    published checksums; `cnnlab data add`. Returns the files added."""
    from .data import add_local

    return add_local(name, source)


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
    from .config import RunConfig, build_config, load_config, parse_assignments
    from .experiments.run import train_run
    from .runfolder import CONFIG

    items = dict(parse_assignments(overrides)) if isinstance(overrides, (list, tuple)) else dict(overrides or {})
    if resume and out is None:
        raise ConfigError("--resume needs the run folder: cnnlab train --out RUN --resume (give the run's folder "
                          "with --out)")
    if isinstance(config, RunConfig) and not items:
        built = config
    elif isinstance(config, (RunConfig, dict)):
        tree = config.model_dump(mode="json") if isinstance(config, RunConfig) else config
        built = build_config(tree, items)
    elif config is not None or items or not resume:
        # resuming: what is given changes the run's own config (so an error names only what was given)
        base = config if config is not None else (Path(out) / CONFIG if resume and (Path(out) / CONFIG).exists()
                                                  else None)
        built = load_config(base, items)
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

    rows = predict_files(_path(run), list(images), top, invert, device)
    return [Prediction(str(row["file"]), [(name, float(p)) for name, p in row["top"]]) for row in rows]


def evaluate(run: str | Path | Run, data: str | None = None, device: str | None = None, confused: int = 8):
    """A finished run on a test split: figures, inference speed, and (on its own data) the analysis."""
    from .analysis.evaluation import evaluate as evaluate_run

    return evaluate_run(_path(run), data, device, confused)


# ---- studies -----------------------------------------------------------------------------------
def run_study(study, out: str | Path | None = None, *, workers: int = 1, executor: str = "local",
              address: str | None = None, retry_failed: bool = False, progress: bool = True, console=None) -> Study:
    """Run every unfinished cell of a study (a YAML file or a dict) and return the Study."""
    from .experiments.study import run_study as run

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

    return compare_paths([_path(p) for p in paths], split, alpha, resamples)


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

    names = [d.strip() for d in data.split(",")] if isinstance(data, str) else [str(d).strip() for d in data]
    return CrossEvaluation(cross_evaluate([_path(r) for r in runs], [n for n in names if n], keep_seen, device))


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
    from .analysis.select import parse_weights, select as rank, write_pareto_figures

    parsed = parse_weights(weights)
    ranked = rank([_path(p) for p in paths], parsed, normalisation, device)
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

    written = write_report([_path(s) for s in sources], out, title)
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

    out = Path(out)
    info, figures, done = run_quickstart(out, console, progress=progress, transfer=transfer)
    title = "cnnlab transfer quickstart" if transfer else "cnnlab quickstart"
    written = report([done.folder.path], out / "report", title)
    return Quickstart(info, figures, Study(done.folder.path), out / "results.csv", written)


def _path(item) -> Path:
    return item.path if isinstance(item, (Run, Study)) else Path(item)
