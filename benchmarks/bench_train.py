"""Training speed, side by side: cnnlab's Trainer against the conventional DataLoader loop and
Keras `model.fit`, on Fashion-MNIST, LeNet-5 and the ~0.3M-parameter rescnn, batch 128 and 512.

    python benchmarks/bench_train.py [--repeats 3] [--keras-python /tmp/venv-tf/bin/python]
        [--rescnn-subset 10000] [--out benchmarks/results/train-DATE.json]

Each measurement is a fresh process (so no system inherits another's warm caches or threads)
training 2 epochs; the figure is images/s in epoch 2. Systems are interleaved within each repeat,
in a rotating order, so a noisy neighbour hits all of them alike; the table gives medians and
the ratio of medians. Keras runs in its own environment (benchmarks/setup_keras_env.sh); without
it the Keras column is left out. `cores` is CPU time / wall time in epoch 2 (Keras sometimes
keeps only one core busy; the column shows when).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = [  # (model, batch, augment, subset)
    ("lenet5", 128, False, None),
    ("lenet5", 512, False, None),
    ("rescnn", 128, False, "rescnn"),
    ("rescnn", 512, False, "rescnn"),
    ("lenet5", 128, True, None),
]


def command(system: str, model: str, batch: int, augment: bool, subset: int | None, keras_python: str | None):
    args = ["--model", model, "--batch", str(batch), "--epochs", "2"]
    if subset:
        args += ["--subset", str(subset)]
    if system == "keras":
        return [keras_python, str(HERE / "keras_bench.py"), *args]
    script = {"cnnlab": "cnnlab_bench.py", "dataloader": "baseline_dataloader.py"}[system]
    return [sys.executable, str(HERE / script), *args, *(["--augment"] if augment else [])]


def measure(cmd: list[str]) -> dict:
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--keras-python", default="/tmp/venv-tf/bin/python")
    p.add_argument("--rescnn-subset", type=int, default=10_000, help="rescnn epochs use the first N images")
    p.add_argument("--only", default=None, help="run only cases whose label contains this text")
    p.add_argument("--out", type=Path, default=HERE / "results" / f"train-{time.strftime('%Y-%m-%d')}.json")
    a = p.parse_args()
    keras_python = a.keras_python if Path(a.keras_python).exists() else None
    if keras_python is None:
        print(f"no Keras environment at {a.keras_python}: run benchmarks/setup_keras_env.sh; Keras left out",
              file=sys.stderr)

    rows = []
    for model, batch, augment, subset in CASES:
        subset = a.rescnn_subset if subset == "rescnn" else subset
        label = f"{model} b{batch}" + (" + per-sample augmentation" if augment else "")
        if a.only and a.only not in label:
            continue
        systems = ["cnnlab", "dataloader"] + (["keras"] if keras_python and not augment else [])
        results = {s: [] for s in systems}
        for repeat in range(a.repeats):
            order = systems[repeat % len(systems):] + systems[:repeat % len(systems)]
            for system in order:
                result = measure(command(system, model, batch, augment, subset, keras_python))
                results[system].append(result)
                print(f"{label:40s} {system:10s} {result['images_per_s']:9,.0f} img/s  "
                      f"cores {result['cores_used']:.2f}", file=sys.stderr, flush=True)
        medians = {s: statistics.median(r["images_per_s"] for r in results[s]) for s in systems}
        rows.append({"case": label, "model": model, "batch": batch, "augment": augment, "images": subset or 60000,
                     "medians": medians, "runs": results,
                     "cores": {s: [round(r["cores_used"], 2) for r in results[s]] for s in systems}})

    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "rows": rows},
                                indent=1))
    print(markdown(rows))
    print(f"\nraw results: {a.out}", file=sys.stderr)


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


def markdown(rows: list[dict]) -> str:
    lines = ["| case | images/epoch | cnnlab | DataLoader loop | Keras fit | cnnlab ÷ DataLoader | cnnlab ÷ Keras | "
             "cores (cnnlab / DataLoader / Keras) |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        m = row["medians"]
        keras = m.get("keras")
        keras_cell = "" if keras is None else f"{keras:,.0f}"
        keras_ratio = "" if keras is None else f"{m['cnnlab'] / keras:.2f}×"
        cores = " / ".join(",".join(f"{c:.1f}" for c in row["cores"][s]) for s in row["cores"])
        lines.append(f"| {row['case']} | {row['images']:,} | {m['cnnlab']:,.0f} | {m['dataloader']:,.0f} | "
                     f"{keras_cell} | {m['cnnlab'] / m['dataloader']:.2f}× | {keras_ratio} | {cores} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
