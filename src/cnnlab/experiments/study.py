"""Run a study: plan and check every cell, write the manifest, estimate, run the cells that are not
finished on an executor, and report progress. See plan.py for the study file and its cells, checks.py
for what is checked before anything runs, executors.py for where cells run, studyfolder.py for the
folder. Each cell's config is validated once, when the study is planned, and travels on as that
RunConfig."""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, Interrupted, bad_value
from ..text import describe_seconds
from ..studyfolder import StudyFolder
from .checks import check_plan
from .executors import CellJob, make_executor
from .plan import Plan, StudySpec, import_user_modules, load_study, parse_study, plan_study

PROBE_BATCH = 64
STARTUP_SECONDS = 1.0  # a cell's own work besides training: 0.5-0.9 s in benchmarks/bench_study.py


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@dataclass
class StudyRun:
    folder: StudyFolder
    plan: Plan
    facts: dict
    outcomes: list[dict] = field(default_factory=list)
    search_path: list[str] = field(default_factory=list)  # the study file's folder: where its imports are found
    imported: list[tuple[str, str]] = field(default_factory=list)  # (module, file) of each of the study's imports

    def counts(self) -> Counter:
        return Counter(self.folder.cell_state(c) for c in self.plan.cells)


def open_study(study: str | Path | dict | StudySpec, out: str | Path | None = None, workers: int = 1,
               need_data: bool = True) -> StudyRun:
    """Read, plan and check a study, and write (or update) its folder's manifest. Nothing runs."""
    search_path: list[str] = []
    if isinstance(study, StudySpec):
        spec = study
    elif isinstance(study, dict):
        spec = parse_study(study)
    else:
        spec, where = load_study(study)
        search_path = [str(where)]
    imported = import_user_modules(spec.imports, search_path)
    folder = StudyFolder(out if out is not None else Path("studies") / spec.name)
    folder.check_target()
    threads = _threads(spec, folder, workers)
    plan = plan_study(spec, threads)
    facts = check_plan(plan, need_data=need_data)
    return StudyRun(folder, plan, facts, search_path=search_path, imported=imported)


def _threads(spec: StudySpec, folder: StudyFolder, workers: int) -> int:
    """Each cell's CPU threads: the study's own train.threads, else what this folder's first run chose
    (so a resumed or re-parallelised study computes the same numbers), else a fair share of the cores."""
    given = (spec.base.get("train") or {}).get("threads") if isinstance(spec.base.get("train"), dict) else None
    if given:
        return int(given)
    if folder.exists():
        stored = folder.read_manifest().get("threads")
        if stored:
            return int(stored)
    return max(1, available_cores() // max(1, workers))


def write_manifest(run: StudyRun, source: str | None = None) -> None:
    """The manifest lists this plan's cells and rows; cells of an earlier version of the study file
    stay in their folders but leave the tables."""
    previous = run.folder.read_manifest() if run.folder.exists() else {}
    if previous and previous.get("name") != run.plan.spec.name:
        raise ConfigError(f"{run.folder.path} holds study {previous.get('name')!r}, not {run.plan.spec.name!r}; "
                          f"choose another --out")
    run.folder.write_manifest({
        "name": run.plan.spec.name,
        "spec": run.plan.spec.model_dump(mode="json"),
        "source": source or previous.get("source"),
        "threads": run.plan.threads,
        "created": previous.get("created", time.strftime("%Y-%m-%dT%H:%M:%S")),
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "cells": [c.__dict__ for c in run.plan.cells],
        "rows": [r.__dict__ for r in run.plan.rows],
        "facts": run.facts,
    })


# ---- estimate ----------------------------------------------------------------------------------
def estimate_seconds(run: StudyRun, workers: int = 1) -> tuple[float, dict]:
    """Seconds the cells would take here, from a short timed probe of each distinct model/data/batch:
    a few training steps on random images of the dataset's shape. Returns (total, seconds per cell key)."""
    cells = run.plan.cells
    probes: dict[str, float] = {}
    per_cell = {}
    for record in cells:
        config = run.plan.config(record)
        facts = run.facts[record.key]
        probe_key = repr((config.model, config.data.name, config.train.batch_size, config.train.amp,
                          config.train.channels_last, config.train.device, config.train.threads))
        if probe_key not in probes:
            probes[probe_key] = _probe_images_per_s(config)
        per_cell[record.key] = _cell_seconds(config, facts, probes[probe_key]) + STARTUP_SECONDS
    total = sum(per_cell.values())
    return total / max(1, min(workers, len(cells) or 1)), per_cell


def _cell_seconds(config, facts: dict, speeds: dict) -> float:
    """Training and evaluation seconds of one cell from the probe's speeds. A frozen backbone without
    augmentation runs once over every image (its features are cached) and then the head alone trains;
    gradual unfreezing trains frozen, then whole."""
    from ..engine.augment import Augmentation

    train, evaluated, epochs = facts["train_images"], facts["eval_images"], config.train.epochs
    options = config.model.model_dump()
    if "infer" in speeds and options.get("finetune") == "frozen" and \
            not Augmentation(**config.augment.model_dump()).active:
        return (train + evaluated) / speeds["infer"]
    if "unfrozen" in speeds:
        frozen = min(epochs, options.get("unfreeze_epoch") or 1)
        return (train * frozen + evaluated * epochs / 3) / speeds["train"] + train * (epochs - frozen) / speeds["unfrozen"]
    return (train * epochs + evaluated * epochs / 3) / speeds["train"]


def _probe_images_per_s(config) -> dict:
    """{'train': training images/s as the cell starts}; for a transfer model also 'infer' (the backbone's
    inference speed, what a feature cache costs) and, for gradual unfreezing, 'unfrozen'."""
    import numpy as np
    import torch

    from ..config import replace
    from ..data import DATASETS
    from ..engine.trainer import Trainer
    from ..models import create_model
    from .run import model_options

    shape = DATASETS.get(config.data.name).image_shape if config.data.name in DATASETS else (1, 28, 28)
    num_classes = DATASETS.get(config.data.name).num_classes if config.data.name in DATASETS else 10
    batch = min(config.train.batch_size, PROBE_BATCH)
    torch.manual_seed(0)
    built = create_model(config.model.name, num_classes, shape[0], shape[1:], **model_options(config))
    train = replace(config, **{"train.epochs": 2, "train.batch_size": batch, "train.compile": False}).train
    trainer = Trainer(built.module, built.transform, train)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch * 3, *shape), dtype=np.uint8)
    labels = rng.integers(0, num_classes, batch * 3)
    speeds = {"train": trainer.fit((images, labels))[-1]["images_per_s"]}
    module = built.module
    if hasattr(module, "set_epoch"):  # a transfer model (models/transfer.py)
        _, seconds, timed = trainer.predict_logits(torch.as_tensor(images))
        speeds["infer"] = timed / seconds if seconds > 0 else speeds["train"]
        if module.plan.finetune == "gradual":
            module.set_epoch(module.plan.unfreeze_epoch + 1)
            speeds["unfrozen"] = Trainer(module, built.transform, train).fit((images, labels))[-1]["images_per_s"]
    return speeds


# ---- running -----------------------------------------------------------------------------------
def run_study(study: str | Path | dict | StudySpec, out: str | Path | None = None, *, workers: int = 1,
              executor: str = "local", address: str | None = None, retry_failed: bool = False,
              console=None, progress: bool = True) -> StudyRun:
    """Run every cell of the study that is not finished yet (failed ones too with retry_failed) and
    return the StudyRun; outcomes holds one record per cell this call looked at."""
    if workers < 1:
        raise bad_value("--workers", "study run", "at least 1", workers)
    executor_impl = make_executor(executor, workers, address, console, progress)
    run = open_study(study, out, workers)
    source = str(Path(study).resolve()) if isinstance(study, (str, Path)) else None
    write_manifest(run, source)
    study_path = str(run.folder.path.resolve())
    to_run = ("pending", "interrupted", "failed") if retry_failed else ("pending", "interrupted")
    jobs = [CellJob(study_path, c.name, c.key, run.plan.config(c), tuple(run.plan.spec.imports),
                    tuple(run.search_path), retry_failed)
            for c in run.plan.cells if run.folder.cell_state(c) in to_run]
    reporter = ProgressReporter(run, len(jobs), workers, console)
    reporter.start()
    try:
        for outcome in executor_impl.run(jobs):
            run.outcomes.append(outcome)
            reporter.cell_done(outcome)
    except KeyboardInterrupt:
        counts = run.counts()
        raise Interrupted(f"study {run.plan.spec.name} interrupted: {counts['finished']} of {len(run.plan.cells)} "
                          f"cells finished in {run.folder.path}; run the same command again to resume (finished "
                          f"cells are kept, interrupted ones continue from their last epoch)") from None
    reporter.finish()
    return run


class ProgressReporter:
    """One line per finished cell: counts, time per cell, estimated time left."""

    def __init__(self, run: StudyRun, jobs: int, workers: int, console=None):
        self.run, self.jobs, self.workers, self.console = run, jobs, workers, console
        self.done = 0
        self.states: dict[str, int] = {}
        self.seconds: list[float] = []
        self.started = time.perf_counter()

    def _print(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, highlight=False)

    def start(self) -> None:
        counts = self.run.counts()
        total = len(self.run.plan.cells)
        self._print(f"[bold]study {self.run.plan.spec.name}[/]: {total} cells ({len(self.run.plan.rows)} table rows), "
                    f"{counts['finished']} finished, {counts['failed']} failed, {self.jobs} to run, "
                    f"{self.run.plan.threads} threads per cell → {self.run.folder.path}")

    def cell_done(self, outcome: dict) -> None:
        self.done += 1
        self.states[outcome["status"]] = self.states.get(outcome["status"], 0) + 1
        if outcome.get("ran"):
            self.seconds.append(outcome["seconds"])
        left = self.jobs - self.done
        counts = (f"{self.states.get('finished', 0)} finished, {self.states.get('failed', 0)} failed, "
                  f"{min(self.workers, left)} running, {max(0, left - self.workers)} waiting")
        timing = ""
        if self.seconds:
            per_cell = statistics.median(self.seconds)
            timing = f"; {describe_seconds(per_cell)} per cell"
            if left:
                timing += f", ~{describe_seconds(per_cell * left / self.workers)} left"
        error = f" — {outcome['error']}" if outcome["status"] == "failed" and outcome.get("error") else ""
        style = {"finished": "green", "failed": "red"}.get(outcome["status"], "yellow")
        self._print(f"[{self.done}/{self.jobs}] {outcome['cell']}: [{style}]{outcome['status']}[/]"
                    f"{'' if outcome.get('ran') else ' (not run here)'}{error} ({counts}{timing})")

    def finish(self) -> None:
        counts = self.run.counts()
        self._print(f"study {self.run.plan.spec.name}: {counts['finished']} finished, {counts['failed']} failed, "
                    f"{counts['running']} running elsewhere, {counts['interrupted'] + counts['pending']} not done, "
                    f"in {describe_seconds(time.perf_counter() - self.started)}")


def study_status(path: str | Path) -> dict:
    """Cells by state, and each cell's state, from a study folder."""
    folder = StudyFolder(path)
    cells = folder.cells()
    states = {c.name: folder.cell_state(c) for c in cells}
    return {"name": folder.read_manifest()["name"], "counts": Counter(states.values()), "cells": states}
