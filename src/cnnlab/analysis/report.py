"""A report people can paste: one self-contained HTML page (figures embedded as PNG) and a Markdown
version beside it with the figures as PNG and SVG files and the tables as CSV, Markdown and LaTeX.

For a study: per factor the table with CIs and the verdict, a bar chart of test accuracy with error
bars and learning curves of one seed per value; then the best cell by validation accuracy analysed
like a run. For runs: learning curves overlaid, then each run's metrics, most-confused pairs,
confusion heatmap, per-class accuracy and a gallery of misclassified test images. Where runs are
transfer runs (model.finetune or model.head set), a transfer section compares them: per mode the
parameters (all, trainable, frozen), accuracy and time, their learning curves and the trainable
share of each model.
"""

from __future__ import annotations

import base64
import html
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, DataError
from ..files import umask
from ..folders import RunRef, StudyRef, resolve_folders
from ..runfolder import RunFolder, atomic_write


@dataclass
class _Doc:
    """Builds the HTML and the Markdown side by side, writing figures and tables into `out`."""

    out: Path
    html: list[str] = field(default_factory=list)
    md: list[str] = field(default_factory=list)
    figures: int = 0

    def heading(self, text: str, level: int = 2) -> None:
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")
        self.md.append(f"{'#' * level} {text}\n")

    def paragraph(self, text: str) -> None:
        self.html.append(f"<p>{html.escape(text)}</p>")
        self.md.append(text + "\n")

    def table(self, headings: list[str], rows: list[list[str]], stem: str | None = None) -> None:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in headings)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
        self.html.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        lines = ["| " + " | ".join(headings) + " |", "|" + "|".join(["---"] * len(headings)) + "|"]
        lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
        self.md.append("\n".join(lines) + "\n")
        if stem:
            _write_csv(self.out / "tables" / f"{stem}.csv", [headings, *rows])

    def figure(self, fig, stem: str, caption: str) -> None:
        from .plots import save_figure

        png, _svg = save_figure(fig, self.out / "figures" / stem)
        data = base64.b64encode(png.read_bytes()).decode()
        self.html.append(f'<figure><img class="figure" alt="{html.escape(caption)}" '
                         f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}</figcaption>'
                         f"</figure>")
        self.md.append(f"![{caption}](figures/{stem}.png)\n\n*{caption}* ([SVG](figures/{stem}.svg))\n")
        self.figures += 1


def _write_csv(path: Path, rows: list[list]) -> None:
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    atomic_write(path, buffer.getvalue())


STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .6em;
text-align:right}th:first-child,td:first-child{text-align:left}img.figure{max-width:100%}
figure{margin:1.5em 0}figcaption{color:#555;font-size:.9em}"""
# Lets a headless browser (and the tests) tell that every embedded figure decoded.
CHECK = """<script>window.addEventListener('load',()=>{const imgs=[...document.images];
document.body.dataset.figures=imgs.length;
document.body.dataset.figuresRendered=imgs.filter(i=>i.complete&&i.naturalWidth>0).length;});</script>"""


def write_report(sources: list[str | Path], out: str | Path, title: str | None = None) -> dict:
    """Write report.html and report.md (plus figures/ and tables/) into `out` for a study folder or
    run folders; returns {'html', 'markdown', 'figures'}. The report is written into a staging folder
    beside `out` and moved into place at the end (replacing an earlier report there only then), so a
    failure leaves no half-written report."""
    out = Path(out)
    sources = [Path(s) for s in sources]
    if not sources:
        raise DataError("report needs a study folder or run folders: cnnlab report STUDY_OR_RUNS... -o DIR")
    refs = resolve_folders(sources, accept=(StudyRef, RunRef))
    studies = [ref for ref in refs if isinstance(ref, StudyRef)]
    runs = [ref.path for ref in refs if isinstance(ref, RunRef)]
    for run in runs:  # the small files first: a corrupt one fails at once, not after minutes of figures
        RunFolder(run).read_summary()
        RunFolder(run).read_config()
    _check_target(out, sources)
    staging, created = _staging_folder(out)
    try:
        figures = _write(staging, sources, studies, runs, title)
        _move_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    return {"html": out / "report.html", "markdown": out / "report.md", "figures": figures}


def _check_target(out: Path, sources: list[Path]) -> None:
    """`out` is a new folder, an empty one, or an earlier report: replacing it must never delete
    anything else (a run, a study, a home folder given by mistake)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {out} is a file; give -o a folder (the report writes report.html, report.md, "
                          f"figures/ and tables/ into it)")
    resolved = out.resolve()
    for source in sources:
        if source.resolve() == resolved or resolved in source.resolve().parents:
            raise ConfigError(f"-o {out} holds {source}, which the report reads; write the report elsewhere")
    report_files = {"report.html", "report.md", "figures", "tables"}
    if out.is_dir() and any(out.iterdir()) and (not (out / "report.html").is_file() or
                                                 {p.name for p in out.iterdir()} - report_files):
        foreign = sorted({p.name for p in out.iterdir()} - report_files)[:3]
        raise ConfigError(f"-o {out} already holds files that are not a cnnlab report "
                          f"({', '.join(foreign) or 'no report.html'}); the report replaces its folder as a whole, so "
                          f"give a new or empty folder")
    from .plots import check_writable

    check_writable(out)


def _staging_folder(out: Path) -> tuple[Path, Path | None]:
    """A fresh folder beside `out` (same file system, so the final move is a rename), and the topmost
    parent folder created for it (removed again on failure), if any."""
    created = None
    parent = out.parent
    missing = [p for p in (parent, *parent.parents) if not p.exists()]
    if missing:
        created = missing[-1]
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=parent))
    except OSError as exc:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise ConfigError(f"-o {out}: cannot create the report folder there ({(exc.strerror or str(exc)).lower()}); "
                          f"choose another folder") from exc
    os.chmod(staging, 0o777 & ~umask())  # mkdtemp makes 0700; a report is shared like any output
    return staging, created


def _move_into_place(staging: Path, out: Path) -> None:
    """Rename `staging` to `out`; an earlier report there is set aside first and removed after."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.rename(out, old / "report")
    try:
        os.rename(staging, out)
    except BaseException:
        if old is not None:
            os.rename(old / "report", out)
            old.rmdir()
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write(out: Path, sources: list[Path], studies: list[StudyRef], runs: list[Path], title: str | None) -> int:
    """Every section, figure and table into `out`; returns the number of figures."""
    doc = _Doc(out)
    title = title or f"cnnlab report: {', '.join(s.name for s in sources)}"
    doc.heading(title, 1)
    doc.paragraph(f"Written {time.strftime('%Y-%m-%d %H:%M')} by cnnlab from {', '.join(map(str, sources))}. "
                  f"Choices (best values, kept epochs) use the validation split; test figures are reported only.")
    _data_section(doc, (runs or studies[0].runs or [None])[0])
    for study in studies:
        _study_section(doc, study.path)
    if len(runs) > 1:
        _learning_curves(doc, _run_labels(runs), "runs")
    transfer = [r for r in runs if _transfer_mode(RunFolder(r).read_config()) is not None]
    if transfer:
        # the overlaid curves above already show these runs when every run is a transfer run
        groups = {label: [run] for label, run in _run_labels(transfer).items()}
        _transfer_section(doc, groups, "runs-transfer", in_study=False,
                          curves=len(runs) == 1 or len(transfer) < len(runs))
    for run in runs:
        _run_section(doc, run)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(doc.html)}{CHECK}</body></html>")
    atomic_write(out / "report.html", page)
    atomic_write(out / "report.md", "\n".join(doc.md))
    return doc.figures


def _study_section(doc: _Doc, path: Path) -> None:
    from ..studyfolder import StudyFolder
    from .plots import study_bars
    from .study_table import (
        collect_results,
        formatted_row,
        headings,
        shows_trainable,
        study_tables,
        to_latex,
        to_markdown,
    )

    folder = StudyFolder(path)
    name = folder.read_manifest()["name"]
    tables = study_tables(path)
    doc.heading(f"Study {name}")
    atomic_write(doc.out / "tables" / f"{name}.tex", to_latex(tables))
    atomic_write(doc.out / "tables" / f"{name}.md", to_markdown(tables))
    frame = collect_results(path)
    frame.to_csv(doc.out / "tables" / f"{name}-cells.csv", index=False)
    trainable = shows_trainable(tables)
    for table in tables:
        doc.heading(f"{table.factor}", 3)
        doc.table(headings(trainable), [formatted_row(r, trainable=trainable) for r in table.rows],
                  f"{name}-{table.factor}")
        doc.paragraph(table.verdict + "." + "".join(f" Note: {n}." for n in table.notes))
        doc.figure(study_bars(table), f"{name}-{table.factor}-bars",
                   f"{table.factor}: test accuracy, mean and 95 % CI over seeds (★ best by validation)")
        import pandas as pd

        done = frame[frame["status"] == "finished"]
        rows = pd.concat([done[done["factor"] == "base"], done[done["factor"] == table.factor]]) \
            if table.factor != "base" else done[done["factor"] == "base"]
        curves = {}  # one seed (the lowest) per value; a value equal to the base shares its cells
        for value, group in rows.drop_duplicates("cell").groupby("value", sort=False):
            first = group.sort_values("seed").iloc[0]
            curves[f"{value} (seed {first['seed']})"] = path / first["cell"]
        if curves:
            _learning_curves(doc, curves, f"{name}-{table.factor}")
    finished = frame[frame["status"] == "finished"]
    groups = _transfer_groups(path, finished)
    if groups:
        _transfer_section(doc, groups, f"{name}-transfer", in_study=True)
    if len(finished):
        best = finished.sort_values("val_accuracy", ascending=False).iloc[0]
        doc.paragraph(f"Best cell by validation accuracy: {best['cell']} ({best['val_accuracy']:.2%}).")
        _run_section(doc, path / best["cell"])


def _transfer_mode(config: dict) -> str | None:
    """What trains in a transfer run (its model.finetune; 'all' for a new head alone), None for others."""
    model = config.get("model") or {}
    if model.get("finetune") is None and model.get("head") is None:
        return None
    return str(model.get("finetune") or "all")


def _transfer_groups(path: Path, finished) -> dict[str, list[Path]]:
    """A study's finished transfer cells, one group (its seeds) per table row: 'frozen (base)', 'all', ...;
    a factor's value whose cells are the base's stands for the base, as in the study table."""
    modes = {cell: _transfer_mode(RunFolder(path / cell).read_config()) for cell in dict.fromkeys(finished["cell"])}
    rows = finished[finished["cell"].map(modes).notna()]
    factors = {f for f in rows["factor"] if f != "base"}
    groups: dict[str, list[Path]] = {}
    labels: dict[frozenset, str] = {}  # the cells of a group -> its label
    for (factor, value), group in rows.groupby(["factor", "value"], sort=False):
        cells = [path / c for c in group.sort_values("seed")["cell"]]
        label = "base" if factor == "base" else value if len(factors) == 1 else f"{factor}={value}"
        known = labels.get(frozenset(cells))
        if known == "base":  # the base's cells listed again under a factor: name them by that value, in place
            groups = {(f"{label} (base)" if k == "base" else k): v for k, v in groups.items()}
            labels[frozenset(cells)] = f"{label} (base)"
        elif known is None:
            labels[frozenset(cells)] = label
            groups[label] = cells
    return groups


def _transfer_section(doc: _Doc, groups: dict[str, list[Path]], stem: str, in_study: bool,
                      curves: bool = True) -> None:
    """Transfer runs side by side: per group (a study's value over its seeds, or one run) what trains,
    the parameters all / trainable / frozen, accuracy (mean ± 95 % CI over seeds) and time."""
    from .plots import trainable_bars
    from .stats import mean_ci
    from .study_table import format_count

    doc.heading("Transfer: frozen and fine-tuned", 3 if in_study else 2)
    rows, counts, first_seeds = [], {}, {}
    for label, paths in groups.items():
        summaries = [RunFolder(p).read_summary() for p in paths]
        modes = sorted({_transfer_mode(RunFolder(p).read_config()) for p in paths})

        def mean(key, summaries=summaries):
            return mean_ci([s.get(key) for s in summaries])

        def accuracy(split, summaries=summaries):
            return mean_ci([(s.get(split) or {}).get("accuracy") for s in summaries]).format(100.0, 2)

        params, trainable, frozen = mean("params").mean, mean("trainable_params").mean, mean("frozen_params").mean
        rows.append([label, ", ".join(modes), str(len(summaries)), format_count(params), format_count(trainable),
                     format_count(frozen), accuracy("val"), accuracy("test"), _feature_seconds(summaries),
                     mean("train_seconds").format(1.0, 1)])
        if _finite(trainable) and _finite(frozen):
            counts[label] = (trainable, frozen)
        first_seeds[f"{label} (seed {summaries[0].get('seed')})" if in_study else label] = paths[0]
    doc.table(["value" if in_study else "run", "finetune", "seeds", "params", "trainable", "frozen", "val acc %",
               "test acc %", "features s", "train s"], rows, stem)
    doc.paragraph(("Accuracy and time are the mean ± 95 % CI over seeds. " if in_study else "")
                  + "Trainable and frozen are counted at the end of training (gradual unfreezing has unfrozen the "
                  "backbone by then). features s is the time a frozen backbone took to compute the features the head "
                  "trains on, once (runs after the first read them from the cache); train s is the epochs' time.")
    if curves:
        _learning_curves(doc, first_seeds, stem)
    if counts:
        doc.figure(trainable_bars(counts), f"{stem}-params", "parameters: the trainable and the frozen share")


def _feature_seconds(summaries: list[dict]) -> str:
    """Seconds spent computing a frozen backbone's features, over the runs that computed them."""
    from .stats import mean_ci

    logs = [s["features"] for s in summaries if s.get("features")]
    if not logs:
        return "—"
    computed = [sum(e["seconds"] for e in log if not e.get("cached")) for log in logs
                if any(not e.get("cached") for e in log)]
    return mean_ci(computed).format(1.0, 1) if computed else "cached"


def _run_labels(runs: list[Path]) -> dict[str, Path]:
    """Each run by its folder's name, or parent/name where two runs share one (runs/a/last and runs/b/last)."""
    names = [r.name for r in runs]
    return {(r.name if names.count(r.name) == 1 else "/".join(r.parts[-2:])): r for r in runs}


def _finite(value) -> bool:
    import math

    return value is not None and math.isfinite(value)


def _data_section(doc: _Doc, run: Path | None) -> None:
    """The class balance of the data the (first) run trained on, when that data is on this machine."""
    from ..config import build_config
    from ..data import class_histogram, load_dataset
    from ..errors import CnnlabError

    if run is None:
        return
    name = build_config(RunFolder(run).read_config()).data.name
    try:
        dataset = load_dataset(name, download=False, progress=False)
    except CnnlabError:
        doc.paragraph(f"(The dataset {name} is not on this machine, so its class histogram is left out.)")
        return
    doc.heading(f"Data: {name}")
    sizes = ", ".join(f"{split} {len(dataset[split]):,}" for split in dataset.splits)
    doc.paragraph(f"{dataset.num_classes} classes, images {'×'.join(map(str, dataset.image_shape))}; {sizes}.")
    doc.figure(class_histogram(dataset), f"data-{name.replace(':', '_').replace('/', '_')}-classes",
               f"{name}: images per class and split")


def _learning_curves(doc: _Doc, runs: dict[str, Path], stem: str) -> None:
    from .plots import learning_curves

    metrics = {label: RunFolder(run).read_metrics() for label, run in runs.items()}
    doc.figure(learning_curves(metrics), f"{stem}-curves", f"learning curves ({stem}): train solid, validation dashed")


def _run_section(doc: _Doc, path: Path) -> None:
    from .metrics import analyse_run
    from .plots import confusion_heatmap, misclassified_gallery, per_class_accuracy

    folder = RunFolder(path)
    summary = folder.read_summary()
    stem = "-".join(path.parts[-2:]).replace("=", "_").replace("/", "_")
    doc.heading(f"Run {path.name}", 3)
    from ..engine.inference import time_inference

    report = analyse_run(path)
    m = report.metrics
    speed = time_inference(path, repeats=20)
    doc.table(["model", "data", "params", "best epoch", "train s", "test acc", "top-5", "macro-F1", "weighted F1",
               "latency ms (batch 1)", "images/s (batch 256)", "measured on"],
              [[summary.get("model", ""), summary.get("data", ""), f"{summary.get('params', 0):,}",
                str(summary.get("best_epoch")), f"{summary.get('train_seconds', 0):.1f}", f"{m['accuracy']:.2%}",
                "—" if m["top5"] is None else f"{m['top5']:.2%}", f"{m['macro_f1']:.4f}", f"{m['weighted_f1']:.4f}",
                f"{speed['latency_ms']:.2f}", f"{speed['images_per_s']:,.0f}",
                f"{speed['device']}, {speed['threads']} threads"]], f"{stem}-metrics")
    import numpy as np

    counts = [["true \\ predicted", *report.source.classes]]
    counts += [[name, *map(str, row)] for name, row in zip(report.source.classes, np.asarray(report.matrix))]
    _write_csv(doc.out / "tables" / f"{stem}-confusion-counts.csv", counts)
    if report.case_insensitive is not None:
        doc.paragraph(f"Case-insensitive accuracy: {report.case_insensitive:.2%}.")
    if report.pairs:
        doc.table(["pair", "a → b", "b → a", "share of their images"],
                  [[f"{p.a} ↔ {p.b}", str(p.a_as_b), str(p.b_as_a), f"{p.rate:.1%}"] for p in report.pairs],
                  f"{stem}-confused")
    doc.figure(confusion_heatmap(report.matrix, report.source.classes), f"{stem}-confusion",
               "confusion matrix (test), rows normalised: true class down, predicted across")
    doc.figure(per_class_accuracy(report.per_class), f"{stem}-per-class", "per-class accuracy (recall) on test")
    images = _test_images(folder, report.source.predictions.labels)
    if images is not None:
        pred = report.source.predictions
        doc.figure(misclassified_gallery(images, pred.labels, pred.predicted, report.source.classes),
                   f"{stem}-misclassified", "misclassified test images: true → predicted")
    else:
        doc.paragraph("(The test images are not on this machine, so the gallery of misclassified images is left out.)")


def _test_images(folder: RunFolder, labels):
    """The run's test images in the order of its predictions, when its data is here."""
    import numpy as np

    from ..config import build_config
    from ..data import load_splits
    from ..errors import CnnlabError

    d = build_config(folder.read_config()).data
    try:
        dataset = load_splits(d, download=False, progress=False)
    except CnnlabError:
        return None
    test = dataset["test"]
    return test.images if np.array_equal(test.labels, labels) else None
