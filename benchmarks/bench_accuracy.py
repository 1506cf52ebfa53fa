"""Accuracy and time-to-accuracy of the run recipes in configs/runs/, on this machine.

    python benchmarks/bench_accuracy.py [--recipes rescnn-fashion-mnist rescnn-mnist ...]
        [--runs benchmarks/results/runs] [--device auto]

Each recipe is trained with `cnnlab.experiments.run.train_run` exactly as `cnnlab train -c` would
(an interrupted benchmark resumes its runs). Reported: test accuracy and macro-F1 of the epoch
chosen on validation, its Wilson 95 % interval, wall-clock training time, and the first epoch
whose validation accuracy came within 0.1 % of the best (time to accuracy). MNIST comes from
../shared/data/mnist and EMNIST bymerge from ../shared/data/emnist (added to the data home first).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared" / "data"
RECIPES = ["rescnn-fashion-mnist", "rescnn-mnist", "rescnn-emnist-bymerge"]


def wilson(accuracy: float, n: int, z: float = 1.96) -> tuple[float, float]:
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def add_shared_data() -> None:
    from cnnlab.data import add_local
    from cnnlab.data.datasets import DATASETS

    if not DATASETS.get("mnist").source.present() and (SHARED / "mnist").exists():
        add_local("mnist", SHARED / "mnist")
    if not DATASETS.get("emnist-bymerge").source.present() and (SHARED / "emnist").exists():
        add_local("emnist", SHARED / "emnist")


def main() -> None:
    from cnnlab.config import load_config, replace
    from cnnlab.experiments.run import train_run
    from cnnlab.runfolder import RunFolder

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", nargs="+", default=RECIPES)
    p.add_argument("--runs", type=Path, default=HERE / "results" / "runs")
    p.add_argument("--device", default=None, help="override train.device (the recipes say nothing)")
    a = p.parse_args()
    add_shared_data()
    rows = []
    for recipe in a.recipes:
        config = load_config(REPO / "configs" / "runs" / f"{recipe}.yaml")
        if a.device:
            config = replace(config, **{"train.device": a.device})
        folder = a.runs / recipe
        started = time.perf_counter()
        result = train_run(config, folder, resume=RunFolder(folder).has_content())
        wall = time.perf_counter() - started
        s, metrics = result.summary, result.folder.read_metrics()
        best = max(r["val_acc"] for r in metrics)
        first = next(r for r in metrics if r["val_acc"] >= best - 0.001)
        n = s["sizes"]["test"]
        low, high = wilson(s["test"]["accuracy"], n)
        rows.append({"recipe": recipe, "data": s["data"], "test_accuracy": s["test"]["accuracy"],
                     "wilson95": [low, high], "test_images": n, "test_macro_f1": s["test"]["macro_f1"],
                     "epochs": s["epochs_run"], "best_epoch": s["best_epoch"], "train_seconds": s["train_seconds"],
                     "wall_seconds_this_call": wall, "seconds_to_best_val": sum(
                         r["seconds"] for r in metrics if r["epoch"] <= first["epoch"]),
                     "images_per_s": s["images_per_s"], "device": s["device"], "threads": s["threads"]})
        print(json.dumps(rows[-1]), flush=True)
    out = HERE / "results" / f"accuracy-{time.strftime('%Y-%m-%d')}.json"
    out.write_text(json.dumps(rows, indent=1))
    print("| recipe | test accuracy (Wilson 95 %) | macro-F1 | epochs | training time | to best val |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['recipe']} | {r['test_accuracy']:.2%} ({r['wilson95'][0]:.2%}–{r['wilson95'][1]:.2%}, "
              f"n={r['test_images']:,}) | {r['test_macro_f1']:.4f} | {r['epochs']} | "
              f"{r['train_seconds'] / 60:.1f} min | {r['seconds_to_best_val'] / 60:.1f} min |")


if __name__ == "__main__":
    main()
