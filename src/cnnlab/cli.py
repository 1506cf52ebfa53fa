"""The command line: a thin typer app over cnnlab's public API."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from .errors import CnnlabError, ConfigError

console = Console()
err_console = Console(stderr=True)
for _c in (console, err_console):
    if not _c.is_terminal:  # piped or captured: wide enough that tables and epoch lines do not wrap
        _c.width = 120


class _Group(TyperGroup):
    """Turns every failure into one line on stderr and its exit code (2, or the error's own exit_code);
    `--traceback` shows the trace instead. A bare KeyboardInterrupt passes through untouched."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except _PASS_THROUGH:
            raise
        except _CLICK_ERROR as exc:  # a bad flag or argument: click's usage box becomes one line
            if (ctx.obj or {}).get("traceback"):
                raise
            where = getattr(exc, "ctx", None)
            hint = f"; see `{where.command_path} --help`" if where is not None else ""
            _fail(f"{exc.format_message().rstrip('.')}{hint}", 2)
        except CnnlabError as exc:
            if (ctx.obj or {}).get("traceback"):
                raise
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt as exc:  # a bare Ctrl-C passes; one that says how to resume is its message
            if (ctx.obj or {}).get("traceback") or getattr(exc, "exit_code", None) is None or not str(exc):
                raise
            _fail(str(exc), exc.exit_code)
        except OSError as exc:
            if (ctx.obj or {}).get("traceback"):
                raise
            _fail(_describe_os_error(exc), 2)
        except Exception as exc:  # a bug, not the user's doing: say so, and how to see where
            if (ctx.obj or {}).get("traceback"):
                raise
            text = _one_line(str(exc))
            text = text if len(text) <= 300 else text[:297] + "..."
            _fail(f"unexpected {type(exc).__name__}: {text}; rerun with --traceback to see where", 2)


# newer typer releases vendor click: its exception classes are found through typer's own
_CLICK_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
_PASS_THROUGH = (typer.Exit, typer.Abort, *(getattr(sys.modules[_CLICK_ERROR.__module__], name)
                                            for name in ("NoArgsIsHelpError",)
                                            if hasattr(sys.modules[_CLICK_ERROR.__module__], name)))


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _fail(message: str, code: int):
    typer.echo(f"error: {_one_line(message)}", err=True)
    raise typer.Exit(code) from None


_OS_FIXES = {  # errno name -> what to do about it
    "EACCES": "check its permissions or choose another path",
    "EPERM": "check its permissions or choose another path",
    "EROFS": "it is on a read-only file system; choose another path",
    "EISDIR": "it is a folder; give a file",
    "ENOTDIR": "a part of the path is a file, not a folder; choose another path",
    "ENOENT": "check the path",
    "ENOSPC": "the disk is full; free some space or write elsewhere",
    "EDQUOT": "the disk quota is exhausted; free some space or write elsewhere",
    "EEXIST": "remove it or choose another path",
    "ENAMETOOLONG": "choose a shorter path",
    "EMFILE": "too many open files; raise the limit (ulimit -n) or close other programs",
    "EPIPE": "the program reading the output stopped early",
}


def _describe_os_error(exc: OSError) -> str:
    """'FILE: reason; fix' for an OSError (permission denied, is a directory, disk full, ...)."""
    import errno

    reason = (exc.strerror or str(exc) or type(exc).__name__).rstrip(".")
    name = errno.errorcode.get(exc.errno or -1, "")
    fix = _OS_FIXES.get(name, "check the path and its permissions")
    files = [f for f in (exc.filename, getattr(exc, "filename2", None)) if f is not None]
    where = " -> ".join(str(f) for f in files)
    return f"{where}: {reason.lower()}; {fix}" if where else f"{reason.lower()}; {fix}"


app = typer.Typer(cls=_Group, no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False,
                  help="cnnlab: train, compare, ablate and analyse CNN image classifiers.")
data_app = typer.Typer(no_args_is_help=True, help="Find, add and explore datasets.")
app.add_typer(data_app, name="data")
models_app = typer.Typer(no_args_is_help=True, help="List, size and inspect models.")
app.add_typer(models_app, name="models")
study_app = typer.Typer(no_args_is_help=True, help="Run ablations and grids over seeds; status; tables.")
app.add_typer(study_app, name="study")


@app.callback()
def _root(ctx: typer.Context, traceback: bool = typer.Option(False, "--traceback", help="Show the full trace on errors.")):
    ctx.obj = {"traceback": traceback}


@data_app.command("list")
def data_list():
    """List the named datasets, their sizes and whether their files are on this machine.

    Example: cnnlab data list
    """
    from .data import DATASETS, data_home

    table = Table(title=f"datasets (data home: {data_home()})")
    for column in ("name", "classes", "train", "test", "on this machine", "description"):
        # names never wrap or shrink to "emnist-balan…": they are what the user types next
        table.add_column(column, justify="right" if column in ("classes", "train", "test") else "left",
                         no_wrap=column == "name")
    for name, spec in DATASETS.items():
        here = "yes" if spec.source.present() else "no"
        table.add_row(name, str(spec.num_classes), f"{spec.official.get('train', 0):,}", f"{spec.official.get('test', 0):,}", here,
                      spec.description)
    console.print(table)
    console.print("Your own data: idx:DIR, csv:TRAIN.csv[,TEST.csv][;orientation=transposed][;mapping=FILE], "
                  "folder:DIR (one sub-folder per class)")


@data_app.command("info")
def data_info(
    name: str = typer.Argument(..., help="Dataset name or idx:/csv:/folder: spec."),
    offline: bool = typer.Option(False, "--offline", help="Never download; use what is on this machine."),
):
    """Sizes, classes, per-class counts, imbalance, pixel statistics and duplicate images.

    Example: cnnlab data info emnist-balanced
    """
    from .data import explore
    from .data.catalog import DATASETS
    from .data.load import load_dataset

    dataset = load_dataset(name, download=not offline)
    others = {}
    if name.startswith("emnist-"):
        for other in DATASETS.names():
            if other.startswith("emnist-") and other != name and DATASETS.get(other).source.present():
                others[other] = load_dataset(other, download=False)
    info = explore.dataset_info(dataset, others)
    print_info(info)


def print_info(info) -> None:
    c, h, w = info.image_shape
    console.print(f"[bold]{info.name}[/]: {len(info.classes)} classes, images {c}×{h}×{w} uint8")
    for line in info.presence:
        console.print(f"  {line}")
    for note in info.notes:
        console.print(f"  note: {note}")
    table = Table(title="images per class")
    table.add_column("class")
    for split in info.splits:
        table.add_column(split.name, justify="right")
    for i, name in enumerate(info.classes):
        table.add_row(name, *[f"{s.counts[i]:,}" for s in info.splits])
    console.print(table)
    rarest, commonest = info.extremes()
    ref = info.reference.name
    console.print(f"imbalance ({ref}): {info.imbalance:.2f}× (commonest / rarest class)")
    console.print(f"  rarest: {', '.join(f'{n!r} {k:,}' for n, k in rarest)}")
    console.print(f"  commonest: {', '.join(f'{n!r} {k:,}' for n, k in commonest)}")
    for split in info.splits:
        mean = ", ".join(f"{m:.4f}" for m in split.mean)
        std = ", ".join(f"{s:.4f}" for s in split.std)
        console.print(f"{split.name}: pixel mean {mean}, std {std} (0–1 scale); "
                      f"{split.duplicates:,} duplicate images within the split")
    if info.train_test_overlap is not None:
        console.print(f"test images also in train: {info.train_test_overlap:,}")
    for mine, other, theirs, count, total in info.cross_overlaps:
        console.print(f"{info.name} {mine} ∩ {other} {theirs}: {count:,} of {total:,} images "
                      f"({100 * count / max(total, 1):.1f} %)")


def _save(fig, path: Path) -> None:
    """Write a figure atomically to the path figure_path chose, and say where it went."""
    import matplotlib.pyplot as plt

    from .analysis.plots import write_figure

    try:
        write_figure(fig, path)
    finally:
        plt.close(fig)
    console.print(f"wrote {path}", highlight=False, soft_wrap=True)


@data_app.command("show")
def data_show(
    name: str,
    per_class: int = typer.Option(8, "--per-class", "-k", min=1, max=50, help="Samples per class."),
    out: Path = typer.Option(Path("grid.png"), "-o", "--out", help="Image file to write (.png, .svg, .pdf); "
                                                                     "a folder gets grid.png."),
    split: str = typer.Option(None, help="Split to sample from (default: train)."),
    seed: int = typer.Option(0, help="Which samples to draw."),
):
    """Draw a grid of samples per class, upright, labelled with the class name.

    Example: cnnlab data show emnist-mnist --per-class 8 -o grid.png
    """
    from .analysis.plots import figure_path
    from .data import load_dataset, sample_grid

    path = figure_path(out, "grid.png")  # before loading: a bad -o fails at once
    _save(sample_grid(load_dataset(name), per_class, split, seed), path)


@data_app.command("hist")
def data_hist(name: str, out: Path = typer.Option(Path("hist.png"), "-o", "--out", help="Image file to write (.png, "
                                                  ".svg, .pdf); a folder gets hist.png.")):
    """Draw the class histogram of every split.

    Example: cnnlab data hist fashion-mnist -o hist.png
    """
    from .analysis.plots import figure_path
    from .data import class_histogram, load_dataset

    path = figure_path(out, "hist.png")
    _save(class_histogram(load_dataset(name)), path)


@data_app.command("add")
def data_add(
    name: str = typer.Argument(..., help="Dataset or family: emnist, mnist, fashion-mnist, kmnist, cifar10, cifar100."),
    source: Path = typer.Option(..., "--from", help="A file or folder you already have (zip, .gz files, CSVs, tar.gz)."),
):
    """Copy files you already have into the data home, verifying published checksums.

    Example: cnnlab data add emnist --from ~/Downloads/gzip.zip
    """
    from .data import add_local
    from .data.catalog import DATASETS, spec_for_family
    from .data.load import load_dataset

    added = add_local(name, source)
    console.print(f"added {len(added)} file(s) to {added[0].parent}")
    family = spec_for_family(name).source.family
    for dataset_name, spec in DATASETS.items():
        if spec.source.family == family and spec.source.present():
            dataset = load_dataset(dataset_name, download=False)
            console.print(f"[bold]{dataset_name}[/]: " + "; ".join(dataset.presence()))


@data_app.command("download")
def data_download(name: str):
    """Download a named dataset (verified, resumable) and parse it into the cache.

    Example: cnnlab data download mnist
    """
    from .data import load_dataset

    dataset = load_dataset(name)
    console.print(f"[bold]{name}[/]: " + "; ".join(dataset.presence()))


def _data_shape(data: str | None) -> tuple[int, int, int, str]:
    """(classes, channels, size, label) of a dataset on this machine, or MNIST's shape without one."""
    if data is None:
        return 10, 1, 28, "10 classes, 1×28×28"
    from .data import load_dataset

    dataset = load_dataset(data, download=False)
    c, h, w = dataset.image_shape
    return dataset.num_classes, c, h, f"{data}: {dataset.num_classes} classes, {c}×{h}×{w}"


@models_app.command("list")
def models_list(
    data: str = typer.Option(None, "--data", "-d", help="Size the models for this dataset (default 1×28×28, 10 classes)."),
    all_models: bool = typer.Option(False, "--all", help="Also list every timm: and tv: name."),
):
    """The curated models with parameters, MACs and weight size at the data's input size (meta device).

    Example: cnnlab models list --data emnist-balanced
    """
    from rich.progress import track

    from .models import MODELS, list_models, profile_model

    classes, chans, size, label = _data_shape(data)
    table = Table(title=f"curated models ({label}; counted on the meta device, no weights allocated)")
    for column in ("name", "implementation", "params", "MACs", "MB", "about"):
        table.add_column(column, justify="right" if column in ("params", "MACs", "MB") else "left",
                         no_wrap=column == "name")
    for name, entry in track(MODELS.items(), description="sizing models", transient=True, console=console):
        prof = profile_model(name, classes, chans, size)
        table.add_row(name, entry.impl, f"{prof.params:,}", f"{prof.macs / 1e6:,.1f} M", f"{prof.size_mb:.2f}",
                      entry.about)
    console.print(table)
    if all_models:
        zoo = [n for n in list_models(all=True) if ":" in n]
        console.print(f"{len(zoo)} zoo names: " + " ".join(zoo))


@models_app.command("summary")
def models_summary(
    name: str,
    data: str = typer.Option(None, "--data", "-d", help="Dataset whose classes and image shape the model gets."),
    depth: int = typer.Option(None, help="Show layers down to this nesting depth."),
    settings: list[str] = typer.Option(None, "--set", help="A model option as KEY=VALUE, the value read as YAML "
                                                           "(--set finetune=frozen --set head=[256]); repeatable."),
):
    """A layer table like Keras' model.summary(): layer, type, output shape, parameters, then the
    total, trainable and non-trainable parameter counts.

    Example: cnnlab models summary rescnn --data emnist-balanced
    Example: cnnlab models summary efficientnet_lite0 --data cifar10 --set pretrained=true --set finetune=frozen
    """
    from .models import create_model, format_table, layer_table, profile_module

    options = dict(_model_setting(text) for text in settings or [])
    classes, chans, size, label = _data_shape(data)
    built = create_model(name, classes, chans, size, device="meta", **options)
    profile = profile_module(built.module, built.input_shape)
    console.print(f"[bold]{name}[/] ({label}); input transform: {built.transform.to_spec()}")
    typer.echo(format_table(layer_table(built.module, built.input_shape, depth)))
    typer.echo(f"Total params: {profile.params:,}\n"
               f"Trainable params: {profile.trainable_params:,}\n"
               f"Non-trainable params: {profile.params - profile.trainable_params:,}\n"
               f"MACs per image of {'x'.join(map(str, profile.input_shape))}: {profile.macs:,}\n"
               f"Weight size: {profile.size_mb:.2f} MB")
    if options.get("finetune") == "gradual":  # the counts above are those of the first epochs
        frozen_for = options.get("unfreeze_epoch", 1)
        epochs = "epoch 1" if frozen_for == 1 else f"epochs 1–{frozen_for}"
        typer.echo(f"finetune=gradual: the counts above hold for {epochs}; after that all {profile.params:,} "
                   f"parameters train")


def _model_setting(text: str) -> tuple[str, object]:
    """--set KEY=VALUE as (KEY, VALUE read as YAML); 'model.KEY' is KEY, as in a run's overrides."""
    import yaml

    key, sep, value = text.partition("=")
    key = key.strip().removeprefix("model.")
    if not sep or not key:
        raise ConfigError(f"--set {text!r} is not KEY=VALUE; give a model option and its value, e.g. --set "
                          f"finetune=frozen or --set head=[256]")
    try:
        return key, yaml.safe_load(value)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "not YAML"
        raise ConfigError(f"--set {text!r}: the value is not valid YAML ({problem}); write it as YAML, e.g. "
                          f"head=[1024, 512] or finetune=last:2") from None


@app.command(context_settings={"allow_interspersed_args": True})
def train(
    overrides: list[str] = typer.Argument(None, help="Any config key as key=value (train.lr=3e-4 model.blocks=2)."),
    config_file: Path = typer.Option(None, "-c", "--config", help="A run YAML (sections data, model, augment, train)."),
    data: str = typer.Option(None, "--data", help="Dataset name or idx:/csv:/folder: spec."),
    model: str = typer.Option(None, "--model", help="Model name (cnnlab models list), timm:NAME or tv:NAME."),
    epochs: int = typer.Option(None, "--epochs"),
    batch_size: int = typer.Option(None, "--batch-size"),
    optimizer: str = typer.Option(None, "--optimizer", help="sgd, sgd_nesterov, adagrad, rmsprop, adam, adamw, "
                                                            "adamax, nadam"),
    lr: float = typer.Option(None, "--lr"),
    weight_decay: float = typer.Option(None, "--weight-decay"),
    schedule: str = typer.Option(None, "--schedule", help="none, cosine, onecycle, step"),
    loss: str = typer.Option(None, "--loss", help="cross_entropy or focal"),
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
    from .config import FLAGS, load_config
    from .experiments.run import train_run

    given = {"data.name": data, "model.name": model, "train.epochs": epochs, "train.batch_size": batch_size,
             "train.optimizer": optimizer, "train.lr": lr, "train.weight_decay": weight_decay,
             "train.schedule": schedule, "train.loss": loss, "data.val": _count_or_fraction(val),
             "data.subset": _count_or_fraction(subset), "train.seed": seed, "train.threads": threads,
             "train.device": device, "train.compile": compile}
    assert set(given) == set(FLAGS), "every documented flag is handled here"
    flags = {key: value for key, value in given.items() if value is not None}
    if resume and out is None:
        raise ConfigError("--resume needs the run folder: cnnlab train --out RUN --resume (give the run's folder "
                          "with --out)")
    config = None
    if not resume or config_file or flags or overrides:
        # resuming: what is given changes the run's own config (so an error names only what was given)
        base = config_file or (out / "config.yaml" if resume and (out / "config.yaml").exists() else None)
        config = load_config(base, {**flags, **dict(_override(o) for o in overrides or [])})
    result = train_run(config, out, resume=resume, progress=not quiet, console=err_console)
    _print_summary(result.summary, result.path)


def _count_or_fraction(value: float | None):
    return int(value) if value is not None and value >= 1 and float(value).is_integer() else value


def _override(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{text!r} is not key=value (e.g. train.lr=3e-4); flags start with --")
    return key.strip(), value.strip()


def _print_summary(summary: dict, path: Path) -> None:
    table = Table(title=f"{summary['model']} on {summary['data']} (best epoch {summary['best_epoch']} "
                        f"of {summary['epochs_run']}, chosen on validation)")
    for column in ("split", "accuracy", "loss", "macro-F1", "top-5"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split in ("val", "test"):
        m = summary[split]
        table.add_row(split, f"{m['accuracy']:.2%}", f"{m['loss']:.4f}", f"{m['macro_f1']:.4f}",
                      "-" if m["top5"] is None else f"{m['top5']:.2%}")
    console.print(table)
    trainable = summary.get("trainable_params")
    params = f"{summary['params']:,} parameters" + (
        f" ({trainable:,} trainable)" if trainable is not None and trainable != summary["params"] else "")
    console.print(f"{params} · {summary['train_seconds']:.1f} s training · "
                  f"{summary['images_per_s']:,.0f} img/s · run folder {path}", highlight=False, soft_wrap=True)
    if summary.get("stopped"):
        console.print(summary["stopped"], highlight=False)


@app.command()
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
    from .engine.inference import evaluate_run

    result = evaluate_run(run, data, device)
    console.print(f"{run} on {result['data']} test ({result['images']:,} images)", highlight=False, soft_wrap=True)
    table = Table()
    for column in ("accuracy", "loss", "macro-F1", "top-5", "inference"):
        table.add_column(column, justify="right")
    table.add_row(f"{result['accuracy']:.2%}", f"{result['loss']:.4f}", f"{result['macro_f1']:.4f}",
                  "-" if result["top5"] is None else f"{result['top5']:.2%}",
                  f"{result['images_per_s']:,.0f} img/s ({result['device']}, batch {result['batch_size']})")
    console.print(table)
    console.print(f"predictions: {result['predictions']}", highlight=False, soft_wrap=True)
    from .engine.inference import time_inference

    speed = time_inference(run, device)
    console.print(f"latency {speed['latency_ms']:.2f} ms per image (batch 1), {speed['images_per_s']:,.0f} images/s "
                  f"at batch {speed['batch']} ({speed['device']}, {speed['threads']} threads, warm-up excluded)",
                  highlight=False)
    if result["own_data"]:  # the analysis reads predictions.npz, the run's own test split
        _print_run_analysis(run, per_class, confused)


def _print_run_analysis(run: Path, per_class: bool, confused: int) -> None:
    from .analysis.metrics import analyse_run

    report = analyse_run(run, "test", confused)
    m = report.metrics
    line = (f"weighted F1 {m['weighted_f1']:.4f}, macro precision {m['macro_precision']:.4f}, "
            f"macro recall {m['macro_recall']:.4f}")
    if report.case_insensitive is not None:
        line += f"; case-insensitive accuracy {report.case_insensitive:.2%} (upper and lower case of a letter as one)"
    console.print(line, highlight=False)
    if report.pairs:
        pairs = Table(title="most-confused pairs (test)")
        for column in ("pair", "a → b", "b → a", "share of their images"):
            pairs.add_column(column, justify="left" if column == "pair" else "right")
        for pair in report.pairs:
            pairs.add_row(f"{pair.a!r} ↔ {pair.b!r}", str(pair.a_as_b), str(pair.b_as_a), f"{pair.rate:.1%}")
        console.print(pairs)
    if per_class:
        classes = Table(title="per class (test)")
        for column in ("class", "support", "precision", "recall", "F1"):
            classes.add_column(column, justify="left" if column == "class" else "right")
        for row in report.per_class.itertuples():
            classes.add_row(str(row[1]), f"{row.support:,}", f"{row.precision:.3f}", f"{row.recall:.3f}",
                            f"{row.f1:.3f}")
        console.print(classes)


@app.command()
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
    from .analysis.crosseval import crosseval as cross_evaluate, matrix

    cells = cross_evaluate(list(runs), [d.strip() for d in data.split(",") if d.strip()], keep_seen, device)
    trained = {c.run: c.trained_on for c in cells}
    for value, title, fmt in (("accuracy", "accuracy", "{:.2%}"), ("macro_f1", "macro-F1", "{:.4f}"),
                              ("images_per_s", "inference images/s", "{:,.0f}")):
        frame = matrix(cells, value)
        table = Table(title=f"{title} (rows: trained on; columns: tested on)")
        table.add_column("run (trained on)")
        for column in frame.columns:
            table.add_column(column, justify="right")
        for run, row in frame.iterrows():
            table.add_row(f"{run} ({trained[run]})", *(fmt.format(v) for v in row))
        console.print(table)
    for c in cells:
        seen = "" if keep_seen else f", {c.seen:,} seen in training (with them: {c.contaminated_accuracy:.2%})"
        console.print(f"{c.run} on {c.data}: scored {c.scored:,} of {c.images:,} test images ({c.unmapped:,} "
                      f"without a counterpart{seen}); {c.rule}", highlight=False, soft_wrap=True)


@app.command("select")
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
    from .analysis.select import select

    ranked = select(list(paths), weights, normalisation, device)
    table = Table(title=f"ranking ({normalisation}-normalised, weights {weights}; validation accuracy, speed "
                        f"measured on {ranked[0].figures['device']})")
    for column in ("#", "candidate", "score", "seeds", "val acc", "latency ms (batch 1)", "images/s", "params"):
        table.add_column(column, justify="left" if column == "candidate" else "right")
    for place, c in enumerate(ranked, 1):
        f = c.figures
        table.add_row(str(place), c.name, f"{c.score:.3f}", str(f["seeds"]), f"{f['val_accuracy']:.2%}",
                      f"{f['latency_ms']:.2f}", f"{f['images_per_s']:,.0f}", f"{f['params']:,}")
    console.print(table)
    console.print(f"selected: {ranked[0].name}", highlight=False)
    if plot is not None:
        from .analysis.plots import pareto_scatter, save_figure

        points = [{"label": c.name, **c.figures} for c in ranked]
        for x, label, stem in (("latency_ms", "latency, ms per image (batch 1)", "pareto-latency"),
                               ("params", "parameters", "pareto-size")):
            figure = pareto_scatter(points, x, "val_accuracy", x_label=label, y_label="validation accuracy")
            for path in save_figure(figure, plot / stem):
                console.print(f"wrote {path}")


@app.command()
def report(
    sources: list[Path] = typer.Argument(..., help="A study folder or run folders."),
    out: Path = typer.Option(..., "-o", "--out", help="Folder for report.html, report.md, figures/, tables/."),
    title: str = typer.Option(None, "--title", help="The report's title."),
):
    """One self-contained HTML page (figures embedded) and a Markdown version with the tables as CSV,
    Markdown and LaTeX and the figures as PNG and SVG.

    Example: cnnlab report studies/emnist-optimizer -o reports/optimizer
    """
    from .analysis.report import write_report

    written = write_report(list(sources), out, title)
    console.print(f"wrote {written['html']} ({written['figures']} figures embedded) and {written['markdown']}",
                  highlight=False, soft_wrap=True)


@app.command()
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
    from .analysis.compare import accuracy_interval, expand_studies, is_single_run
    from .analysis.compare import compare as compare_paths

    results = compare_paths(list(paths), split, alpha, resamples)
    if all(is_single_run(p) for p in expand_studies(paths)):
        for path in paths:
            accuracy, low, high = accuracy_interval(path, split)
            console.print(f"{path}: {split} accuracy {accuracy:.2%} (95 % Wilson interval {low:.2%}–{high:.2%})",
                          highlight=False, soft_wrap=True)
    for result in results:
        console.print(result.sentence(alpha), highlight=False, soft_wrap=True)
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


@app.command()
def predict(
    run: Path = typer.Argument(..., help="A finished run folder."),
    images: list[Path] = typer.Argument(..., help="Image files (PNG, JPEG, ...)."),
    top: int = typer.Option(5, "--top", "-k", help="How many classes to show per image."),
    invert: str = typer.Option("auto", "--invert", help="auto (match the training background), yes or no."),
):
    """The top-k classes of each image, with probabilities.

    Example: cnnlab predict runs/lenet5-mnist-20261123-101500 digit.png --top 3
    """
    from .engine.inference import predict_files

    for row in predict_files(run, images, top, invert):
        ranked = "  ".join(f"{name} {p:.1%}" for name, p in row["top"])
        console.print(f"{row['file']}: {ranked}", highlight=False, soft_wrap=True)  # one line per file, never wrapped


@app.command()
def quickstart(
    out: Path = typer.Option(Path("quickstart"), "-o", "--out", help="Folder for figures and the study."),
    transfer: bool = typer.Option(False, "--transfer", help="The transfer-learning quickstart: EfficientNet-Lite0's "
                                                            "ImageNet weights frozen vs random vs last stage tuned."),
):
    """A short study offline: look at a real dataset, train three models over three seeds, print the table.

    Example: cnnlab quickstart -o quickstart
    Example: cnnlab quickstart --transfer -o quickstart-transfer
    """
    from .experiments.quickstart import run_quickstart

    info, figures, run = run_quickstart(out, err_console, transfer=transfer)
    print_info(info)
    for figure in figures:
        console.print(f"wrote {figure}")
    _print_study_tables(run.folder.path)
    from .analysis.report import write_report

    written = write_report([run.folder.path], out / "report", "cnnlab quickstart")
    console.print(f"results: {out / 'results.csv'}; study: {run.folder.path}; report: {written['html']} "
                  f"(and {written['markdown']})", highlight=False, soft_wrap=True)


@study_app.command("run")
def study_run(
    study_file: Path = typer.Argument(..., help="A study YAML (name, base, ablate, grid, seeds, imports)."),
    out: Path = typer.Option(None, "-o", "--out", help="Study folder (default studies/<name>)."),
    workers: int = typer.Option(1, "--workers", "-w", help="Cells at a time (process executor)."),
    executor: str = typer.Option("local", "--executor", "-e", help="local, process or ray"),
    address: str = typer.Option(None, "--address", help="Ray cluster: auto or HOST:PORT (default: a local one)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the cells and estimate the time; run nothing."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run failed cells again (from their checkpoint)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-epoch progress (local executor)."),
):
    """Run every unfinished cell of a study; run it again after an interruption to resume.

    Example: cnnlab study run configs/studies/optimizer.yaml --executor process --workers 2
    Example: cnnlab study run configs/studies/activation.yaml --dry-run
    """
    from .experiments.study import run_study

    if dry_run:
        return _study_dry_run(study_file, out, workers)
    run = run_study(study_file, out, workers=workers, executor=executor, address=address,
                    retry_failed=retry_failed, console=err_console, progress=not quiet)
    _print_study_tables(run.folder.path)


def _study_dry_run(study_file: Path, out: Path | None, workers: int) -> None:
    from .experiments.study import describe_seconds, estimate_seconds, open_study

    run = open_study(study_file, out, workers, need_data=False)
    if run.imported:  # the study's own code ran: say which
        console.print("imported user modules: " + ", ".join(f"{name} ({file})" for name, file in run.imported),
                      highlight=False, soft_wrap=True)
    total, per_cell = estimate_seconds(run, workers)
    table = Table(title=f"study {run.plan.spec.name}: {len(run.plan.cells)} cells, {run.plan.threads} threads each "
                        f"→ {run.folder.path}")
    for column in ("cell", "state", "train images", "params", "estimate"):
        table.add_column(column, justify="left" if column in ("cell", "state") else "right")
    for cell in run.plan.cells:
        facts = run.facts[cell.key]
        state = run.folder.cell_state(cell) if run.folder.exists() else "pending"
        table.add_row(cell.name, state, f"{facts['train_images']:,}", f"{facts['params']:,}",
                      describe_seconds(per_cell[cell.key]))
    console.print(table)
    missing = sorted({c.config["data"]["name"] for c in run.plan.cells if not run.facts[c.key]["present"]})
    if missing:
        console.print(f"data not on this machine yet: {', '.join(missing)} (cnnlab data download NAME)")
    console.print(f"estimated time on this machine with {workers} worker(s): [bold]{describe_seconds(total)}[/] "
                  f"(from a short timed probe of each model; nothing was run)")
    if total > 86400:
        console.print("[yellow]this study takes more than a day here: consider a GPU, a Ray cluster "
                      "(--executor ray), fewer seeds, or a data.subset[/]")


@study_app.command("status")
def study_status_command(study_dir: Path = typer.Argument(..., help="A study folder.")):
    """Cells finished / running / failed / interrupted / pending, and each cell's state.

    Example: cnnlab study status studies/emnist-optimizers
    """
    from .experiments.study import study_status

    status = study_status(study_dir)
    table = Table(title=f"study {status['name']}: " + ", ".join(f"{n} {s}" for s, n in status["counts"].items()))
    table.add_column("cell")
    table.add_column("state")
    for cell, state in status["cells"].items():
        table.add_row(cell, state)
    console.print(table)


@study_app.command("table")
def study_table(
    study_dir: Path = typer.Argument(..., help="A study folder."),
    fmt: str = typer.Option("text", "--format", "-f", help="text, markdown, csv or latex"),
    out: Path = typer.Option(None, "-o", "--out", help="Write to this file instead of printing."),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level of the tests."),
):
    """Per factor: mean ± 95 % CI over seeds, the best value by validation, its significance vs the base.

    Example: cnnlab study table studies/emnist-optimizers --format latex -o optimizers.tex
    """
    from .analysis.study_table import study_tables, to_csv, to_latex, to_markdown

    writers = {"markdown": to_markdown, "csv": to_csv, "latex": to_latex}
    if fmt not in (*writers, "text"):
        raise ConfigError(f"--format must be text, markdown, csv or latex. Got {fmt!r} instead.")
    if fmt == "text":
        if out is not None:
            raise ConfigError("--out needs --format markdown, csv or latex; add one (or drop --out to print the "
                              "table)")
        return _print_study_tables(study_dir, alpha)
    if out is not None:
        _check_output_file(out)
    text = writers[fmt](study_tables(study_dir, alpha))
    if out is None:
        console.print(text, highlight=False, markup=False, soft_wrap=True)
    else:
        from .runfolder import atomic_write

        try:
            atomic_write(out, text)
        except OSError as exc:  # name the file asked for, not the temporary one beside it
            raise ConfigError(f"-o {out}: cannot write it ({(exc.strerror or str(exc)).lower()}); choose another "
                              f"path") from exc
        console.print(f"wrote {out}", highlight=False, soft_wrap=True)


def _check_output_file(out: Path) -> None:
    """-o names a file in a folder that can hold it; checked before the work that fills it."""
    from .analysis.plots import check_writable

    if out.is_dir():
        raise ConfigError(f"-o {out} is a folder; give a file name such as {out / 'table.tex'}")
    check_writable(out)


def _print_study_tables(study_dir: Path, alpha: float = 0.05) -> None:
    from .analysis.study_table import formatted_row, headings, shows_trainable, study_tables

    tables = study_tables(study_dir, alpha)
    trainable = shows_trainable(tables)
    for factor_table in tables:
        table = Table(title=f"{factor_table.factor} (mean ± 95 % CI over seeds; ★ best by validation accuracy)")
        for heading in headings(trainable):
            table.add_column(heading, justify="left" if heading == "value" else "right", no_wrap=True)
        for row in factor_table.rows:
            table.add_row(*formatted_row(row, sep="±", trainable=trainable))
        # whole rows, never a value squeezed out or a number folded: wider than the terminal, it wraps there
        _print_whole(table)
        console.print(factor_table.verdict + ".", highlight=False)
        for note in factor_table.notes:
            console.print(f"note: {note}.", highlight=False)


def _print_whole(table) -> None:
    """Print a table at its natural width, so no cell is cut short (a narrower terminal wraps its lines)."""
    natural = console.measure(table, options=console.options.update_width(10_000)).maximum
    width = console.width
    console.width = max(width, natural)
    try:
        console.print(table)
    finally:
        console.width = width


def main() -> None:
    app()


if __name__ == "__main__":
    main()
