"""cnnlab train | evaluate | predict."""

from __future__ import annotations

from pathlib import Path

import typer

from ..engine.losses import LOSSES
from ..engine.optim import OPTIMIZERS, SCHEDULES
from .output import console, err_console, say, table


def register(app: typer.Typer) -> None:
    app.command(context_settings={"allow_interspersed_args": True})(train)
    app.command()(evaluate)
    app.command()(predict)


def train(
    overrides: list[str] = typer.Argument(None, help="Any config key as key=value (train.lr=3e-4 model.blocks=2)."),
    config_file: Path = typer.Option(None, "-c", "--config", help="A run YAML (sections data, model, augment, train)."),
    data: str = typer.Option(None, "--data", help="Dataset name or idx:/csv:/folder: spec."),
    model: str = typer.Option(None, "--model", help="Model name (cnnlab models list), timm:NAME or tv:NAME."),
    epochs: int = typer.Option(None, "--epochs"),
    batch_size: int = typer.Option(None, "--batch-size"),
    optimizer: str = typer.Option(None, "--optimizer", help=", ".join(OPTIMIZERS.names())),
    lr: float = typer.Option(None, "--lr"),
    weight_decay: float = typer.Option(None, "--weight-decay"),
    schedule: str = typer.Option(None, "--schedule", help=", ".join(SCHEDULES.names())),
    loss: str = typer.Option(None, "--loss", help=", ".join(LOSSES.names())),
    val: float = typer.Option(None, "--val", help="Validation fraction (<1) or count of train."),
    subset: float = typer.Option(None, "--subset", help="Stratified subset of train: fraction (<1) or count."),
    seed: int = typer.Option(None, "--seed"),
    threads: int = typer.Option(None, "--threads", help="CPU threads (part of the run: it changes results)."),
    device: str = typer.Option(None, "--device", help="auto, cpu or cuda"),
    compile: bool = typer.Option(None, "--compile/--no-compile", help="Compile the training step (default: auto, where it pays)."),  # noqa: A002
    out: Path = typer.Option(None, "-o", "--out", help="Run folder (default runs/<model>-<data>-<time>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-epoch progress."),
):
    """Train one model into a run folder (config.yaml, metrics.csv, model.safetensors, summary.json, ...).

    Example: cnnlab train --data emnist-balanced --model rescnn --epochs 50 --batch-size 500 --lr 1e-3
    Example: cnnlab train -c run.yaml train.lr=3e-4 model.blocks=2 --out runs/lr3e-4
    """
    from ..api import train as train_run
    from ..config import FLAGS, parse_assignments

    given = {"--data": data, "--model": model, "--epochs": epochs, "--batch-size": batch_size,
             "--optimizer": optimizer, "--lr": lr, "--weight-decay": weight_decay, "--schedule": schedule,
             "--loss": loss, "--val": _count_or_fraction(val), "--subset": _count_or_fraction(subset), "--seed": seed,
             "--threads": threads, "--device": device, "--compile": compile}
    assert set(given) == set(FLAGS.values()), "every documented flag is handled here"
    flags = {key: given[flag] for key, flag in FLAGS.items() if given[flag] is not None}
    settings = {**flags, **dict(parse_assignments(overrides or []))}
    run = train_run(config_file, out, overrides=settings, resume=resume, progress=not quiet, console=err_console)
    _print_summary(run)


def _count_or_fraction(value: float | None):
    return int(value) if value is not None and value >= 1 and float(value).is_integer() else value


def _print_summary(run) -> None:
    s = run.summary
    rows = [[split, f"{m.accuracy:.2%}", f"{m.loss:.4f}", f"{m.macro_f1:.4f}", "-" if m.top5 is None else f"{m.top5:.2%}"]
            for split, m in (("val", s.val), ("test", s.test))]
    console.print(table(f"{s.model} on {s.data} (best epoch {s.best_epoch} of {s.epochs_run}, chosen on validation)",
                        ["split", "accuracy", "loss", "macro-F1", "top-5"], rows))
    params = f"{s.params:,} parameters" + (
        f" ({s.trainable_params:,} trainable)" if s.trainable_params is not None and s.trainable_params != s.params
        else "")
    say(f"{params} · {s.train_seconds:.1f} s training · {s.images_per_s:,.0f} img/s · run folder {run.path}")
    if s.stopped:
        console.print(s.stopped, highlight=False)


def evaluate(
    run: Path = typer.Argument(..., help="A finished run folder."),
    data: str = typer.Option(None, "--data", help="Another dataset with the same classes (default: the run's); "
                                                  "for another label set (CIFAR-100's superclasses) use crosseval."),
    device: str = typer.Option(None, "--device", help="auto, cpu or cuda (default: the run's)."),
    per_class: bool = typer.Option(False, "--per-class", help="Also the per-class precision / recall / F1 table."),
    confused: int = typer.Option(8, "--confused", min=0, help="How many most-confused class pairs to list."),
):
    """Loss, accuracy, top-5, macro-F1 and inference speed on a test split; writes the predictions; on
    the run's own data also weighted F1, the most-confused class pairs by name, and --per-class.

    Example: cnnlab evaluate runs/rescnn-fashion-mnist-20261123-101500 --per-class
    """
    from ..api import evaluate as evaluate_run

    result = evaluate_run(run, data, device, confused)
    _print_evaluation(run, result, per_class)


def _print_evaluation(run: Path, result, per_class: bool) -> None:
    e = result.scores
    say(f"{run} on {e['data']} test ({e['images']:,} images)")
    console.print(table(None, ["accuracy", "loss", "macro-F1", "top-5", "inference"],
                        [[f"{e['accuracy']:.2%}", f"{e['loss']:.4f}", f"{e['macro_f1']:.4f}",
                          "-" if e["top5"] is None else f"{e['top5']:.2%}",
                          f"{e['images_per_s']:,.0f} img/s ({e['device']}, batch {e['batch_size']})"]], left=()))
    say(f"predictions: {e['predictions']}")
    speed = result.timing
    console.print(f"latency {speed['latency_ms']:.2f} ms per image (batch 1), {speed['images_per_s']:,.0f} images/s "
                  f"at batch {speed['batch']} ({speed['device']}, {speed['threads']} threads, warm-up excluded)",
                  highlight=False)
    report = result.analysis
    if report is None:  # another dataset: the analysis reads the run's own test split
        return
    m = report.metrics
    line = (f"weighted F1 {m['weighted_f1']:.4f}, macro precision {m['macro_precision']:.4f}, "
            f"macro recall {m['macro_recall']:.4f}")
    if report.case_insensitive is not None:
        line += f"; case-insensitive accuracy {report.case_insensitive:.2%} (upper and lower case of a letter as one)"
    console.print(line, highlight=False)
    if report.pairs:
        console.print(table("most-confused pairs (test)", ["pair", "a → b", "b → a", "share of their images"],
                            [[f"{p.a!r} ↔ {p.b!r}", p.a_as_b, p.b_as_a, f"{p.rate:.1%}"] for p in report.pairs]))
    if per_class:
        rows = [[row[1], f"{row.support:,}", f"{row.precision:.3f}", f"{row.recall:.3f}", f"{row.f1:.3f}"]
                for row in report.per_class.itertuples()]
        console.print(table("per class (test)", ["class", "support", "precision", "recall", "F1"], rows))


def predict(
    run: Path = typer.Argument(..., help="A finished run folder."),
    images: list[Path] = typer.Argument(..., help="Image files (PNG, JPEG, ...)."),
    top: int = typer.Option(5, "--top", "-k", help="How many classes to show per image."),
    invert: str = typer.Option("auto", "--invert", help="auto (match the training background), yes or no."),
):
    """The top-k classes of each image, with probabilities.

    Example: cnnlab predict runs/lenet5-mnist-20261123-101500 digit.png --top 3
    """
    from ..api import predict as predict_images

    for prediction in predict_images(run, images, top, invert):
        ranked = "  ".join(f"{name} {p:.1%}" for name, p in prediction.top)
        say(f"{prediction.file}: {ranked}")  # one line per file, never wrapped
