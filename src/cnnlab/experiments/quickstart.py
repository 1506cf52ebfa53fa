"""The quickstart study: a real dataset that is on this machine offline, looked at and trained on by
three small models, so the README's first command shows the whole loop in about a minute."""

from __future__ import annotations

from pathlib import Path

# Same data, seed and epochs for each, so the table compares the models and nothing else.
MODELS = {
    "lenet5": {"name": "lenet5"},
    "lenet5-relu-max": {"name": "lenet5", "activation": "relu", "pool": "max"},
    "rescnn": {"name": "rescnn"},
}
PLANS = {  # dataset -> (train subset, epochs): about a minute on two CPU cores
    "fashion-mnist": (12_000, 3),
    "digits": (None, 15),
}


def quickstart_dataset() -> str:
    """Fashion-MNIST when its files are here (Debian's dataset-fashion-mnist), else scikit-learn's digits."""
    from ..data import DATASETS

    return "fashion-mnist" if DATASETS.get("fashion-mnist").source.present() else "digits"


def run_quickstart(out: str | Path, console=None, progress: bool = True):
    """Explore the dataset (figures in `out`), train MODELS into `out`/runs/<model>, return the results
    frame. Runs already finished in `out` are kept, not trained again."""
    import pandas as pd

    from ..data import class_histogram, dataset_info, load_dataset, sample_grid
    from ..runfolder import RunFolder
    from .run import train_run

    out = Path(out)
    name = quickstart_dataset()
    dataset = load_dataset(name, download=False)
    out.mkdir(parents=True, exist_ok=True)
    figures = {f"{name}-grid.png": sample_grid(dataset, 8), f"{name}-hist.png": class_histogram(dataset)}
    for file, figure in figures.items():
        figure.savefig(out / file, dpi=150)
    subset, epochs = PLANS[name]
    rows = []
    for label, model in MODELS.items():
        config = {"data": {"name": name, "subset": subset}, "model": model,
                  "train": {"epochs": epochs, "batch_size": 128, "seed": 0}}
        folder = out / "runs" / label
        if console is not None:
            console.print(f"[bold]{label}[/] → {folder}")
        result = train_run(config, folder, resume=RunFolder(folder).has_content(), progress=progress, console=console)
        s = result.summary
        rows.append({"model": label, "params": s["params"], "val_acc": s["val"]["accuracy"],
                     "test_acc": s["test"]["accuracy"], "test_loss": s["test"]["loss"],
                     "test_macro_f1": s["test"]["macro_f1"], "train_seconds": s["train_seconds"],
                     "images_per_s": s["images_per_s"], "run": str(folder)})
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "results.csv", index=False)
    return dataset_info(dataset), [out / f for f in figures], frame
