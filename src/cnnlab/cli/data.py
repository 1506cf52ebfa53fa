"""cnnlab data list | info | show | hist | add | download."""

from __future__ import annotations

from pathlib import Path

import typer

from .output import console, print_info, save, table

app = typer.Typer(no_args_is_help=True, help="Find, add and explore datasets.")


@app.command("list")
def data_list():
    """List the named datasets, their sizes and whether their files are on this machine.

    Example: cnnlab data list
    """
    from ..data import DATASETS, data_home

    rows = [[name, spec.num_classes, f"{spec.official.get('train', 0):,}", f"{spec.official.get('test', 0):,}",
             "yes" if spec.source.present() else "no", spec.description] for name, spec in DATASETS.items()]
    # names never wrap or shrink to "emnist-balan…": they are what the user types next
    console.print(table(f"datasets (data home: {data_home()})",
                        ["name", "classes", "train", "test", "on this machine", "description"], rows,
                        left=(0, 4, 5), no_wrap=(0,)))
    console.print("Your own data: idx:DIR, csv:TRAIN.csv[,TEST.csv][;orientation=transposed][;mapping=FILE], "
                  "folder:DIR (one sub-folder per class)")


@app.command("info")
def data_info(
    name: str = typer.Argument(..., help="Dataset name or idx:/csv:/folder: spec."),
    offline: bool = typer.Option(False, "--offline", help="Never download; use what is on this machine."),
):
    """Sizes, classes, per-class counts, imbalance, pixel statistics and duplicate images.

    Example: cnnlab data info emnist-balanced
    """
    from ..data import describe_dataset

    print_info(describe_dataset(name, download=not offline))


@app.command("show")
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
    from ..analysis.plots import figure_path
    from ..data import load_dataset, sample_grid

    path = figure_path(out, "grid.png")  # before loading: a bad -o fails at once
    save(sample_grid(load_dataset(name), per_class, split, seed), path)


@app.command("hist")
def data_hist(name: str, out: Path = typer.Option(Path("hist.png"), "-o", "--out", help="Image file to write (.png, "
                                                  ".svg, .pdf); a folder gets hist.png.")):
    """Draw the class histogram of every split.

    Example: cnnlab data hist fashion-mnist -o hist.png
    """
    from ..analysis.plots import figure_path
    from ..data import class_histogram, load_dataset

    path = figure_path(out, "hist.png")
    save(class_histogram(load_dataset(name)), path)


@app.command("add")
def data_add(
    name: str = typer.Argument(..., help="Dataset or family: emnist, mnist, fashion-mnist, kmnist, cifar10, cifar100."),
    source: Path = typer.Option(..., "--from", help="A file or folder you already have (zip, .gz files, CSVs, tar.gz)."),
):
    """Copy files you already have into the data home, verifying published checksums.

    Example: cnnlab data add emnist --from ~/Downloads/gzip.zip
    """
    from ..api import add_data
    from ..data import family_datasets

    added = add_data(name, source)
    console.print(f"added {len(added)} file(s) to {added[0].parent}")
    for dataset_name, dataset in family_datasets(name):
        console.print(f"[bold]{dataset_name}[/]: " + "; ".join(dataset.presence()))


@app.command("download")
def data_download(name: str):
    """Download a named dataset (verified, resumable) and parse it into the cache.

    Example: cnnlab data download mnist
    """
    from ..data import load_dataset

    dataset = load_dataset(name)
    console.print(f"[bold]{name}[/]: " + "; ".join(dataset.presence()))
