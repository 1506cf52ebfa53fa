"""The quickstart study: a real dataset that is on this machine offline, looked at, then three small
models trained briefly over three seeds as a study, so the README's first command shows the whole loop
(data -> models -> study -> table with confidence intervals and a significance verdict) in about two
minutes on two CPU cores."""

from __future__ import annotations

from pathlib import Path

# Same data, epochs and seeds for each model, so the table compares the models and nothing else.
MODELS = ["lenet5", {"name": "lenet5", "activation": "relu", "pool": "max"},
          {"name": "rescnn", "widths": [16, 32, 64]}]
PLANS = {  # dataset -> (train subset, epochs)
    "fashion-mnist": (10_000, 4),
    "digits": (None, 15),
}
SEEDS = 3


def quickstart_dataset() -> str:
    """Fashion-MNIST when its files are here (Debian's dataset-fashion-mnist), else scikit-learn's digits."""
    from ..data import DATASETS

    return "fashion-mnist" if DATASETS.get("fashion-mnist").source.present() else "digits"


def quickstart_study(name: str) -> dict:
    subset, epochs = PLANS[name]
    return {
        "name": "quickstart",
        "description": f"three small models on {name}, {SEEDS} seeds",
        "base": {"data": {"name": name, "subset": subset}, "model": "lenet5",
                 "train": {"epochs": epochs, "batch_size": 128}},
        "ablate": {"model": MODELS},
        "seeds": SEEDS,
    }


def run_quickstart(out: str | Path, console=None, progress: bool = True):
    """Explore the dataset (figures in `out`), run the study into `out`/study (finished cells are kept,
    so a second call trains nothing), write `out`/results.csv; returns (data info, figures, StudyRun)."""
    from ..analysis.study_table import collect_results
    from ..data import class_histogram, dataset_info, load_dataset, sample_grid
    from .study import run_study

    out = Path(out)
    name = quickstart_dataset()
    dataset = load_dataset(name, download=False)
    out.mkdir(parents=True, exist_ok=True)
    figures = {f"{name}-grid.png": sample_grid(dataset, 8), f"{name}-hist.png": class_histogram(dataset)}
    for file, figure in figures.items():
        figure.savefig(out / file, dpi=150)
    run = run_study(quickstart_study(name), out / "study", console=console, progress=progress)
    collect_results(run.folder.path).to_csv(out / "results.csv", index=False)
    return dataset_info(dataset), [out / f for f in figures], run
