"""cnnlab compare | crosseval | select | report."""

from __future__ import annotations

from pathlib import Path

import typer

from .output import console, say, table


def register(app: typer.Typer) -> None:
    app.command()(compare)
    app.command()(crosseval)
    app.command("select")(select_models)
    app.command()(report)


def compare(
    paths: list[Path] = typer.Argument(..., help="Two or more run folders, folders of seeds (a study's "
                                                 "optimizer=sgd/), or a study folder (all its values)."),
    split: str = typer.Option("test", "--split", help="test or val"),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level."),
    resamples: int = typer.Option(10_000, "--resamples", help="Bootstrap resamples (runs)."),
):
    """Is the difference real? Runs: McNemar on paired predictions + a bootstrap CI; folders of seeds:
    paired t and Wilcoxon over seeds; more than two: every pair, Holm-corrected.

    Example: cnnlab compare runs/a runs/b
    Example: cnnlab compare studies/emnist-optimizer/base studies/emnist-optimizer/optimizer=sgd
    Example: cnnlab compare studies/emnist-optimizer
    """
    from ..api import compare as compare_paths

    comparison = compare_paths(paths, split, alpha, resamples)
    for interval in comparison.intervals:
        say(f"{interval.path}: {split} accuracy {interval.accuracy:.2%} (95 % Wilson interval "
            f"{interval.low:.2%}–{interval.high:.2%})")
    for result in comparison.results:
        say(result.sentence(alpha))
        if result.kind == "mcnemar":
            d = result.details
            console.print(f"  only the first right on {d['only_a_right']:,} images, only the second on "
                          f"{d['only_b_right']:,} ({'exact binomial' if d['exact'] else 'chi-square'} McNemar)",
                          highlight=False)
        else:
            console.print(f"  paired over seeds {result.details['seeds']}; Wilcoxon p = "
                          f"{result.details['wilcoxon_p']:.3g}", highlight=False)
        for note in result.notes:
            console.print(f"  note: {note}", highlight=False)


def crosseval(
    runs: list[Path] = typer.Argument(..., help="Run folders (each a model trained on one dataset)."),
    data: str = typer.Option(..., "--data", help="Comma-separated datasets to test on, e.g. "
                                                 "emnist-byclass,emnist-bymerge,emnist-balanced"),
    keep_seen: bool = typer.Option(False, "--keep-seen", help="Also score test images the model trained on."),
    device: str = typer.Option(None, "--device", help="auto, cpu or cuda (default: each run's)."),
):
    """Trained on rows, tested on columns: accuracy, macro-F1 and inference speed, labels mapped into
    the coarser label set, test images seen in training left out (and counted).

    Example: cnnlab crosseval runs/byclass runs/bymerge --data emnist-byclass,emnist-bymerge,emnist-balanced
    Example: cnnlab crosseval runs/c100-fine --data cifar100,cifar100-coarse
    """
    from ..api import crosseval as cross_evaluate

    result = cross_evaluate(runs, data, keep_seen, device)
    trained = {c.run: c.trained_on for c in result.cells}
    for value, title, fmt in (("accuracy", "accuracy", "{:.2%}"), ("macro_f1", "macro-F1", "{:.4f}"),
                              ("images_per_s", "inference images/s", "{:,.0f}")):
        frame = result.matrix(value)
        rows = [[f"{run} ({trained[run]})", *(fmt.format(v) for v in row)] for run, row in frame.iterrows()]
        console.print(table(f"{title} (rows: trained on; columns: tested on)", ["run (trained on)", *frame.columns],
                            rows))
    for c in result.cells:
        seen = "" if keep_seen else f", {c.seen:,} seen in training (with them: {c.contaminated_accuracy:.2%})"
        say(f"{c.run} on {c.data}: scored {c.scored:,} of {c.images:,} test images ({c.unmapped:,} "
            f"without a counterpart{seen}); {c.rule}")


def select_models(
    paths: list[Path] = typer.Argument(..., help="A study folder, folders of seeds, or run folders."),
    weights: str = typer.Option("accuracy=0.6,latency=0.2,size=0.2", "--weights",
                                help="criterion=weight, from accuracy, top5, latency, throughput, size."),
    normalisation: str = typer.Option("minmax", "--normalisation", help="minmax, rank or zscore"),
    device: str = typer.Option(None, "--device", help="Where latency is measured (default: each run's)."),
    plot: Path = typer.Option(None, "--plot", help="Folder for the Pareto-front figures (PNG and SVG)."),
):
    """Rank models by a weighted, normalised score of validation accuracy and speed and size measured
    here; draw the accuracy-vs-latency and accuracy-vs-size Pareto fronts.

    Example: cnnlab select studies/emnist-baseline-zoo --weights accuracy=0.7,latency=0.3 --plot figures
    """
    from ..api import select

    selection = select(paths, weights, normalisation, device, plot)
    rows = [[place, c.name, f"{c.score:.3f}", c.figures["seeds"], f"{c.figures['val_accuracy']:.2%}",
             f"{c.figures['latency_ms']:.2f}", f"{c.figures['images_per_s']:,.0f}", f"{c.figures['params']:,}"]
            for place, c in enumerate(selection.ranked, 1)]
    console.print(table(f"ranking ({normalisation}-normalised, weights {weights}; validation accuracy, speed "
                        f"measured on {selection.selected.figures['device']})",
                        ["#", "candidate", "score", "seeds", "val acc", "latency ms (batch 1)", "images/s", "params"],
                        rows, left=(1,)))
    say(f"selected: {selection.selected.name}")
    for path in selection.figures:
        console.print(f"wrote {path}")


def report(
    sources: list[Path] = typer.Argument(..., help="A study folder or run folders."),
    out: Path = typer.Option(..., "-o", "--out", help="Folder for report.html, report.md, figures/, tables/."),
    title: str = typer.Option(None, "--title", help="The report's title."),
):
    """One self-contained HTML page (figures embedded) and a Markdown version with the tables as CSV,
    Markdown and LaTeX and the figures as PNG and SVG.

    Example: cnnlab report studies/emnist-optimizer -o reports/optimizer
    """
    from ..api import report as write_report

    written = write_report(sources, out, title)
    say(f"wrote {written.html} ({written.figures} figures embedded) and {written.markdown}")
