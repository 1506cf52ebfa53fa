"""Study overhead and throughput: what a cell costs besides its training, and cells per hour for the
same small study run sequentially, on a 2-worker process pool, and on a local Ray cluster.

    python benchmarks/bench_study.py [--no-ray] [--out benchmarks/results/study-DATE.json]

The study: LeNet-5 on a 20,000-image stratified subset of Fashion-MNIST (Debian's copy), 3 epochs,
learning rate ablated over 4 values (none equal to the base's) x 2 seeds: 10 distinct cells.
Overhead per cell = the cell's wall time in its worker (start to summary.json) minus its epochs'
training time: data load from the cache, splitting, model build, validation/test evaluation, writing
the run folder. Study wall time includes starting workers (each imports torch) and, for Ray, the
cluster. Each mode runs in a fresh study folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def study(threads: int) -> dict:
    return {
        "name": f"bench-{threads}t",
        "base": {"data": {"name": "fashion-mnist", "subset": 20_000}, "model": "lenet5",
                 "train": {"epochs": 3, "batch_size": 128, "threads": threads, "lr": 2e-3}},
        "ablate": {"train.lr": [5e-4, 1e-3, 3e-3, 1e-2]},
        "seeds": 2,
    }


def run_mode(mode: str, workers: int, threads: int, root: Path, address: str | None = None) -> dict:
    from cnnlab.experiments.study import run_study
    from cnnlab.runfolder import RunFolder

    out = root / mode
    started = time.perf_counter()
    run = run_study(study(threads), out, workers=workers, executor="process" if mode == "process" else
                    "ray" if mode == "ray" else "local", address=address, progress=False)
    wall = time.perf_counter() - started
    ran = [o for o in run.outcomes if o["ran"]]
    overheads, trains = [], []
    for outcome in ran:
        summary = RunFolder(out / outcome["cell"]).read_summary()
        trains.append(summary["train_seconds"])
        overheads.append(outcome["seconds"] - summary["train_seconds"])
    return {"mode": mode, "workers": workers, "threads_per_cell": threads, "cells": len(ran),
            "wall_seconds": wall, "cells_per_hour": 3600 * len(ran) / wall,
            "median_cell_seconds": statistics.median(o["seconds"] for o in ran),
            "median_train_seconds": statistics.median(trains), "median_overhead_seconds": statistics.median(overheads),
            "statuses": sorted({o["status"] for o in run.outcomes})}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=HERE / "results" / f"study-{time.strftime('%Y-%m-%d')}.json")
    p.add_argument("--no-ray", action="store_true")
    a = p.parse_args()
    os.environ.setdefault("CNNLAB_OFFLINE", "1")
    root = Path(tempfile.mkdtemp(prefix="cnnlab-bench-study-"))
    rows = [run_mode("local", 1, 2, root), run_mode("process", 2, 1, root)]
    if not a.no_ray:
        ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        started = time.perf_counter()
        subprocess.run([ray, "start", "--head", "--port=6391", "--num-cpus=2", "--include-dashboard=false",
                        "--disable-usage-stats", "--node-ip-address=127.0.0.1"], check=True, env=env,
                       capture_output=True)
        cluster_seconds = time.perf_counter() - started
        try:
            row = run_mode("ray", 2, 1, root, address="127.0.0.1:6391")
            row["cluster_start_seconds"] = cluster_seconds
            rows.append(row)
        finally:
            subprocess.run([ray, "stop", "--force"], env=env, capture_output=True)
    shutil.rmtree(root, ignore_errors=True)
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": {"cpus": os.cpu_count(),
              "python": platform.python_version(), "platform": platform.platform()}, "rows": rows}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1))
    print("| executor | workers × threads | cells | wall s | cells / hour | median cell s | of which training s "
          "| overhead s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['workers']} × {r['threads_per_cell']} | {r['cells']} | {r['wall_seconds']:.1f} | "
              f"{r['cells_per_hour']:.0f} | {r['median_cell_seconds']:.2f} | {r['median_train_seconds']:.2f} | "
              f"{r['median_overhead_seconds']:.2f} |")
    print(f"\nraw results: {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
