"""`cnnlab quickstart` end to end: wall seconds per phase and in total, in fresh processes.

    python benchmarks/bench_quickstart.py [--repeats N] [--configs default,avx2-bf16-off] [--no-markdown]

Each run is a fresh interpreter running the `cnnlab` console script's entry point into a fresh output
folder and a fresh data home (CNNLAB_DATA), so it pays what a first-time user pays: importing, caching
the dataset's arrays, exploring, nine cells, the table and the report. Configurations:

- default: the quickstart as shipped (train.amp=auto: bf16 where the CPU computes it natively).
- avx2-bf16-off: a machine without AVX-512 and without bf16, emulated here: oneDNN limited to AVX2
  (ONEDNN_MAX_CPU_ISA=AVX2) and train.amp=off added to the quickstart study's base.

Phases come from when each line of the quickstart's output arrives: start -> the study's first line
(import, data cache, exploration figures, planning and checking the study), the study (per cell: its
wall time and, from its summary.json, the epochs' training seconds; the rest is the cell's overhead:
data split, model build, evaluation, run-folder writes), study end -> first line of stdout (results.csv,
dataset statistics), the tables, the report, and exit. Results go to benchmarks/results/quickstart-DATE.json
and to the "Quickstart" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIGS = {
    "default": {"env": {}, "train": {}},
    "avx2-bf16-off": {"env": {"ONEDNN_MAX_CPU_ISA": "AVX2"}, "train": {"amp": "off"}},
}
# The console script's own entry point, with the configuration's train settings added to the study's base.
DRIVER = """
import json, sys
from importlib.metadata import entry_points
import cnnlab.experiments.quickstart as quickstart
quickstart.TRAIN_SETTINGS.update(json.loads(sys.argv[2]))
main = next(iter(entry_points(group="console_scripts", name="cnnlab"))).load()
sys.argv = ["cnnlab", "quickstart", "-o", sys.argv[1]]
sys.exit(main())
"""
CELL_LINE = re.compile(r"^\[(\d+)/(\d+)\] (\S+): (\w+)")
PHASES = ["start to study", "study", "results and data statistics", "tables", "report", "exit", "total"]


def run_once(name: str, root: Path) -> dict:
    """One quickstart in a fresh process; seconds per phase, per cell, and the accuracies it got."""
    setting = CONFIGS[name]
    out, data_home = root / f"{name}-out", root / f"{name}-data"
    env = {**os.environ, **setting["env"], "CNNLAB_DATA": str(data_home), "COLUMNS": "200"}
    lines: list[tuple[float, str, str]] = []

    def read(stream, label):
        for line in stream:
            lines.append((time.perf_counter(), label, line.rstrip("\n")))

    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", DRIVER, str(out), json.dumps(setting["train"])], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
    readers = [threading.Thread(target=read, args=(process.stdout, "out")),
               threading.Thread(target=read, args=(process.stderr, "err"))]
    for reader in readers:
        reader.start()
    code = process.wait()
    ended = time.perf_counter()
    for reader in readers:
        reader.join()
    if code != 0:
        tail = "\n".join(text for _, _, text in lines[-20:])
        raise SystemExit(f"quickstart ({name}) exited with {code}:\n{tail}")
    lines.sort(key=lambda item: item[0])

    def first(label, test, after=0.0):
        return next(t for t, where, text in lines if where == label and t >= after and test(text))

    study_start = first("err", lambda s: s.startswith("study quickstart:") and " cells " in s)
    study_end = first("err", lambda s: s.startswith("study quickstart:") and " not done, in " in s)
    first_out = first("out", lambda s: True, study_end)
    report_line = first("out", lambda s: s.startswith("results: "))
    tables_end = max(t for t, where, _ in lines if where == "out" and t < report_line)
    cell_ends = [(t, CELL_LINE.match(text)) for t, where, text in lines if where == "err" and CELL_LINE.match(text)]
    rows = {r["cell"]: r for r in csv.DictReader((out / "results.csv").open()) if r["factor"] != "base"}
    cells, previous = [], study_start
    for when, match in cell_ends:
        row = rows[match.group(3)]
        wall, train = when - previous, float(row["train_seconds"])
        cells.append({"cell": match.group(3), "model": row["value"], "seed": int(row["seed"]), "wall_s": wall,
                      "train_s": train, "overhead_s": wall - train, "test_accuracy": float(row["test_accuracy"])})
        previous = when
    phases = dict(zip(PHASES, [study_start - started, study_end - study_start, first_out - study_end,
                               tables_end - first_out, report_line - tables_end, ended - report_line,
                               ended - started]))
    models = {}
    for cell in cells:
        models.setdefault(cell["model"], []).append(cell["test_accuracy"])
    return {"config": name, "phases_s": phases, "cells": cells,
            "test_accuracy_mean": {m: statistics.mean(a) for m, a in models.items()},
            "train_s_sum": sum(c["train_s"] for c in cells), "overhead_s_sum": sum(c["overhead_s"] for c in cells)}


def machine() -> dict:
    info = {"python": platform.python_version(), "cores": len(os.sched_getaffinity(0))}
    try:
        text = Path("/proc/cpuinfo").read_text()
        info["cpu"] = re.search(r"^model name\s*:\s*(.+)$", text, re.M).group(1).strip()
        flags = set(re.search(r"^flags\s*:\s*(.+)$", text, re.M).group(1).split())
        info["flags"] = sorted(f for f in flags if re.match(r"(avx|amx|fma|sse4)", f))
    except (OSError, AttributeError):
        info["cpu"] = platform.processor() or platform.machine()
    import torch

    info["torch"] = torch.__version__
    return info


def summarize(runs: list[dict]) -> dict:
    """Median over repeats of each phase; accuracies and per-cell figures of the median-total run."""
    totals = sorted(runs, key=lambda r: r["phases_s"]["total"])
    middle = totals[len(totals) // 2]
    return {"repeats": len(runs), "phases_s": {p: statistics.median(r["phases_s"][p] for r in runs) for p in PHASES},
            "totals_s": [r["phases_s"]["total"] for r in runs], "median_run": middle}


def markdown(results: dict) -> str:
    m = results["machine"]
    flags = ", ".join(f for f in m.get("flags", []) if f.startswith(("avx2", "avx512f", "avx512_bf16", "amx")))
    lines = ["## Quickstart", "",
             f"`python benchmarks/bench_quickstart.py --repeats {results['repeats']}` — {results['date']}, "
             f"{m['cpu']} ({m['cores']} cores; {flags or 'no AVX2'}), Python {m['python']}, torch {m['torch']}. "
             "Each run is `cnnlab quickstart` in a fresh process, a fresh output folder and a fresh data home "
             "(so it includes caching Fashion-MNIST's arrays); `avx2-bf16-off` emulates a CPU without AVX-512 and "
             "bf16 (`ONEDNN_MAX_CPU_ISA=AVX2` and `train.amp=off`). Seconds are medians over the repeats; raw "
             f"figures in `benchmarks/results/{results['file']}`.", "",
             "| configuration | " + " | ".join(PHASES) + " | of the study: training | cell overhead |",
             "|---|" + "---:|" * (len(PHASES) + 2)]
    for name, summary in results["configs"].items():
        run = summary["median_run"]
        lines.append(f"| {name} | " + " | ".join(f"{summary['phases_s'][p]:.1f}" for p in PHASES)
                     + f" | {run['train_s_sum']:.1f} | {run['overhead_s_sum']:.1f} |")
    lines += ["", "Test accuracy, mean over the three seeds (run with the median total):", "",
              "| configuration | " + " | ".join(next(iter(results["configs"].values()))["median_run"]
                                               ["test_accuracy_mean"]) + " |",
              "|---|" + "---:|" * len(next(iter(results["configs"].values()))["median_run"]["test_accuracy_mean"])]
    for name, summary in results["configs"].items():
        lines.append(f"| {name} | " + " | ".join(f"{a:.2%}" for a in summary["median_run"]["test_accuracy_mean"].values())
                     + " |")
    return "\n".join(lines) + "\n"


def update_benchmarks_md(section: str, path: Path = HERE.parent / "BENCHMARKS.md") -> None:
    """Replace the Quickstart section (up to the next level-2 heading), or append it."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## Quickstart\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated: " + ", ".join(CONFIGS))
    parser.add_argument("--out", type=Path, help="JSON results (default benchmarks/results/quickstart-DATE.json)")
    parser.add_argument("--no-markdown", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args()
    date = time.strftime("%Y-%m-%d")
    out = args.out or HERE / "results" / f"quickstart-{date}.json"
    results = {"date": date, "machine": machine(), "repeats": args.repeats, "file": out.name, "configs": {}}
    for name in args.configs.split(","):
        if name not in CONFIGS:
            raise SystemExit(f"unknown configuration {name!r}; known: {', '.join(CONFIGS)}")
        runs = []
        for repeat in range(args.repeats):
            root = Path(tempfile.mkdtemp(prefix="bench-quickstart-"))
            try:
                runs.append(run_once(name, root))
            finally:
                shutil.rmtree(root, ignore_errors=True)
            phases = runs[-1]["phases_s"]
            print(f"{name} #{repeat + 1}: " + ", ".join(f"{p} {phases[p]:.1f} s" for p in PHASES), flush=True)
            print("  test accuracy: " + ", ".join(f"{m} {a:.2%}" for m, a in runs[-1]["test_accuracy_mean"].items())
                  + f"; training {runs[-1]['train_s_sum']:.1f} s, cell overhead {runs[-1]['overhead_s_sum']:.1f} s",
                  flush=True)
        results["configs"][name] = summarize(runs)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    section = markdown(results)
    print(section)
    if not args.no_markdown:
        update_benchmarks_md(section)


if __name__ == "__main__":
    main()
