"""cnnlab study run | status | table, and cnnlab quickstart."""

from __future__ import annotations

from pathlib import Path

import typer

from ..experiments.executors import EXECUTORS
from .output import console, err_console, print_info, print_study_tables, say, table

app = typer.Typer(no_args_is_help=True, help="Run ablations and grids over seeds; status; tables.")


@app.command("run")
def study_run(
    study_file: Path = typer.Argument(..., help="A study YAML (name, base, ablate, grid, seeds, imports)."),
    out: Path = typer.Option(None, "-o", "--out", help="Study folder (default studies/<name>)."),
    workers: int = typer.Option(1, "--workers", "-w", help="Cells at a time (process executor)."),
    executor: str = typer.Option("local", "--executor", "-e", help=", ".join(EXECUTORS.names())),
    address: str = typer.Option(None, "--address", help="Ray cluster: auto or HOST:PORT (default: a local one)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the cells and estimate the time; run nothing."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run failed cells again (from their checkpoint)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-epoch progress (local executor)."),
):
    """Run every unfinished cell of a study; run it again after an interruption to resume.

    Example: cnnlab study run configs/studies/optimizer.yaml --executor process --workers 2
    Example: cnnlab study run configs/studies/activation.yaml --dry-run
    """
    from ..api import estimate_study, run_study

    if dry_run:
        return _print_estimate(estimate_study(study_file, out, workers))
    study = run_study(study_file, out, workers=workers, executor=executor, address=address,
                      retry_failed=retry_failed, console=err_console, progress=not quiet)
    print_study_tables(study.tables())


def _print_estimate(estimate) -> None:
    from ..text import describe_seconds

    if estimate.imported:  # the study's own code ran: say which
        say("imported user modules: " + ", ".join(f"{name} ({file})" for name, file in estimate.imported))
    rows = [[c.name, c.state, f"{c.train_images:,}", f"{c.params:,}", describe_seconds(c.seconds)]
            for c in estimate.cells]
    console.print(table(f"study {estimate.name}: {len(estimate.cells)} cells, {estimate.threads} threads each "
                        f"→ {estimate.folder}", ["cell", "state", "train images", "params", "estimate"], rows,
                        left=(0, 1)))
    if estimate.missing_data:
        console.print(f"data not on this machine yet: {', '.join(estimate.missing_data)} (cnnlab data download NAME)")
    console.print(f"estimated time on this machine with {estimate.workers} worker(s): "
                  f"[bold]{describe_seconds(estimate.seconds)}[/] (from a short timed probe of each model; nothing was "
                  f"run)")
    if estimate.seconds > 86400:
        console.print("[yellow]this study takes more than a day here: consider a GPU, a Ray cluster "
                      "(--executor ray), fewer seeds, or a data.subset[/]")


@app.command("status")
def study_status(study_dir: Path = typer.Argument(..., help="A study folder.")):
    """Cells finished / running / failed / interrupted / pending, and each cell's state.

    Example: cnnlab study status studies/emnist-optimizers
    """
    from ..api import Study

    study = Study(study_dir)
    states = study.states
    counts = ", ".join(f"{n} {s}" for s, n in study.counts.items())
    console.print(table(f"study {study.name}: {counts}", ["cell", "state"], list(states.items()), left=(0, 1)))


@app.command("table")
def study_table(
    study_dir: Path = typer.Argument(..., help="A study folder."),
    fmt: str = typer.Option("text", "--format", "-f", help="text, markdown, csv or latex"),
    out: Path = typer.Option(None, "-o", "--out", help="Write to this file instead of printing."),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level of the tests."),
):
    """Per factor: mean ± 95 % CI over seeds, the best value by validation, its significance vs the base.

    Example: cnnlab study table studies/emnist-optimizers --format latex -o optimizers.tex
    """
    from ..analysis.study_table import TABLE_FORMATS, write_tables
    from ..api import Study
    from ..errors import ConfigError, bad_value

    if fmt != "text" and fmt not in TABLE_FORMATS:
        raise bad_value("--format", "study table", "one of text, " + ", ".join(TABLE_FORMATS.names()), fmt)
    if fmt == "text":
        if out is not None:
            raise ConfigError("--out needs --format markdown, csv or latex; add one (or drop --out to print the "
                              "table)")
        return print_study_tables(Study(study_dir).tables(alpha))
    if out is None:
        console.print(Study(study_dir).table(fmt, alpha), highlight=False, markup=False, soft_wrap=True)
        return
    say(f"wrote {write_tables(study_dir, fmt, out, alpha)}")


def quickstart(
    out: Path = typer.Option(Path("quickstart"), "-o", "--out", help="Folder for figures and the study."),
    transfer: bool = typer.Option(False, "--transfer", help="The transfer-learning quickstart: EfficientNet-Lite0's "
                                                            "ImageNet weights frozen vs random vs last stage tuned."),
):
    """A short study offline: look at a real dataset, train three models over three seeds, print the table.

    Example: cnnlab quickstart -o quickstart
    Example: cnnlab quickstart --transfer -o quickstart-transfer
    """
    from ..api import quickstart as run_quickstart

    result = run_quickstart(out, transfer=transfer, console=err_console)
    print_info(result.info)
    for figure in result.figures:
        console.print(f"wrote {figure}")
    print_study_tables(result.study.tables())
    say(f"results: {result.results}; study: {result.study.path}; report: {result.report.html} "
        f"(and {result.report.markdown})")
