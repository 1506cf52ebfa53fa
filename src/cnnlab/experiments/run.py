"""Train one run into its folder: config -> data -> model -> fit -> evaluate -> run folder.

Everything that can be wrong with the input (config, data, model options) is checked before the
folder is created, so bad input leaves nothing behind. The folder is resumable: the last epoch's
full state is in checkpoint.safetensors, and summary.json appears only when the run is over.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config import RunConfig, build_config, replace, to_dict
from ..errors import CnnlabError, ConfigError, Interrupted
from ..runfolder import CHECKPOINT, CONFIG, ENV, MODEL_SPEC, TENSORBOARD, WEIGHTS, Predictions, RunError, RunFolder, images_sha256
from ..studyfolder import LockLost


@dataclass
class RunResult:
    folder: RunFolder
    summary: dict
    history: list[dict] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.folder.path


def default_run_dir(config: RunConfig, root: str | Path = "runs") -> Path:
    """runs/<model>-<data>-<timestamp>, with characters a file name dislikes replaced."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{config.model.name}-{config.data.name}")
    return Path(root) / f"{name}-{stamp}"


@dataclass
class Prepared:
    """What a run trains on, built from a config and checked before anything is written."""

    config: RunConfig
    dataset: object
    built: object
    augmentation: object
    loss: object


def model_options(config: RunConfig) -> dict:
    """create_model's options for the config's model: its section without the name, and the training's
    memory layout (train.channels_last) unless the model section sets its own."""
    options = {k: v for k, v in config.model.model_dump().items() if k != "name"}
    options.setdefault("channels_last", config.train.channels_last)
    return options


def prepare(config: RunConfig) -> Prepared:
    """Load and split the data, build the model and the loss: every check that needs no folder."""
    import torch

    from ..data import load_splits
    from ..engine.augment import Augmentation
    from ..engine.device import set_threads
    from ..engine.losses import class_weights, make_loss
    from ..models import create_model

    threads = set_threads(config.train.threads)
    if config.train.threads is None:  # the thread count changes results: record the one used
        config = replace(config, **{"train.threads": threads})
    data = config.data
    dataset = load_splits(data)
    augmentation = Augmentation(**config.augment.model_dump()).check(dataset.flips_allowed, data.name)
    chans, height, width = dataset.image_shape
    torch.manual_seed(config.train.seed)  # the initial weights
    built = create_model(config.model.name, dataset.num_classes, chans, (height, width), **model_options(config))
    plan = getattr(built.module, "plan", None)
    if plan is not None and plan.finetune == "gradual" and plan.unfreeze_epoch >= config.train.epochs:
        raise ConfigError(f"finetune=gradual unfreezes after epoch {plan.unfreeze_epoch}, and the run has "
                          f"{config.train.epochs} epochs, so the backbone would never train: lower model.unfreeze_epoch "
                          f"or use finetune=frozen")
    t = config.train
    weights = class_weights(dataset["train"].labels, dataset.num_classes, t.class_weights)
    loss = make_loss(t.loss, weights, t.label_smoothing, t.focal_gamma, t.focal_alpha)
    return Prepared(config, dataset, built, augmentation, loss)


def train_run(config: RunConfig | dict | None = None, out: str | Path | None = None, *, resume: bool = False,
              callbacks=(), progress: bool = True, console=None, guard=None) -> RunResult:
    """Train `config` into the run folder `out` (default runs/<model>-<data>-<time>).

    config: a RunConfig, used as it is (it was validated when it was made), or a dict of sections,
    validated here. resume=True continues the folder's run from its last checkpoint (config None: the
    folder's own); a finished run is returned as it is. Raises CnnlabError for bad input,
    TrainingDiverged (after marking the run failed) when the loss becomes NaN or infinite, Interrupted
    on Ctrl-C (the folder stays resumable). `guard`: a study cell's CellLock, checked before every
    write to the folder.
    """
    if isinstance(config, dict):
        config = build_config(config)
    folder = RunFolder(out, guard=guard) if out is not None else None
    if folder is not None:
        _check_out(folder.path)
    existing = folder is not None and folder.has_content()
    if existing and not resume:
        raise RunError(f"{folder.path} already holds a run ({folder.status}); continue it with --resume "
                       f"or choose another --out")
    if resume:
        if folder is None or not existing:
            raise RunError(f"nothing to resume at {out}: no run folder there; drop --resume to start one")
        config = _resume_config(folder, config)
        if folder.status == "finished":
            return RunResult(folder, folder.read_summary(), folder.read_metrics())
    if config is None:
        config = build_config()
    prepared = prepare(config)
    config = prepared.config
    folder = folder or RunFolder(default_run_dir(config))
    return _fit_into(folder, prepared, resume and existing, callbacks, progress, console)


def _differing_keys(ours: dict, theirs: dict) -> list[str]:
    """The dotted keys ('train.lr') whose values differ between two config trees."""
    return [f"{section}.{key}" for section in {**ours, **theirs}
            for key in {**(ours.get(section) or {}), **(theirs.get(section) or {})}
            if (ours.get(section) or {}).get(key) != (theirs.get(section) or {}).get(key)]


def _check_out(path: Path) -> None:
    """--out must be a folder, or a path where one can be made."""
    for place in (path, *path.parents):
        if place.exists():
            if not place.is_dir():
                where = "" if place == path else f" ({place} is a file)"
                raise RunError(f"--out {path} cannot be a run folder{where}; choose a folder path")
            if not os.access(place, os.W_OK | os.X_OK):
                raise RunError(f"--out {path}: {place} is not writable; choose a folder you can write to")
            return


def _resume_config(folder: RunFolder, given: RunConfig | None) -> RunConfig:
    try:
        saved = build_config(folder.read_config())
    except RunError:
        raise
    except CnnlabError as exc:
        raise ConfigError(f"{folder.file('config.yaml')} was changed into an invalid config ({exc}); restore it, "
                          f"or train a new run with another --out") from None
    if given is not None and given != saved:
        ours, theirs = to_dict(given), to_dict(saved)
        differ = [key for key in _differing_keys(ours, theirs)
                  if not (key == "train.threads" and ours["train"].get("threads") is None)]
        if differ:
            raise ConfigError(f"--resume continues {folder.path} with its saved config, but these settings differ: "
                              f"{', '.join(differ)}; drop them, or train a new run with another --out")
    return saved


def _fit_into(folder: RunFolder, prepared: Prepared, resuming: bool, callbacks, progress, console) -> RunResult:
    from ..engine.callbacks import CSVLogger, ModelCheckpoint, ProgressPrinter, TensorBoard
    from ..engine.device import environment
    from ..engine.inference import background
    from ..engine.trainer import Trainer, TrainingDiverged

    import torch

    config, dataset, built = prepared.config, prepared.dataset, prepared.built
    t = config.train
    transfer = _transfer_mode(built.module, prepared.augmentation)

    def save_last(epoch):
        tensors, meta = trainer.state_dict()
        folder.write_weights(tensors, CHECKPOINT, metadata={"state": json.dumps(meta),
                                                            "config": json.dumps(to_dict(config), sort_keys=True)})

    # on cached features the trainer holds the head only; the kept weights are always the whole model's
    checkpoint = ModelCheckpoint(save_best=lambda weights, epoch: folder.write_weights(
        built.module.state_dict() if transfer == "features" else weights), save_last=save_last)
    run_callbacks = [CSVLogger(folder.append_metrics)]
    if transfer is not None:
        run_callbacks.append(_finetune_schedule(built.module))
    run_callbacks += [setting.build() for setting in t.configured_callbacks()]  # early stopping, plateau, more
    run_callbacks.append(TensorBoard(folder.file(TENSORBOARD)))
    if progress:
        run_callbacks.append(ProgressPrinter(console))
    callbacks = [*run_callbacks, *callbacks, checkpoint]  # checkpoint last: it saves their state
    if transfer == "features":
        from ..models.transfer import FeatureInput

        trainer = Trainer(built.module.head, FeatureInput(), t.model_copy(update={"compile": False}),
                          loss=prepared.loss, callbacks=callbacks)
        built.module.to(trainer.device)
        if t.channels_last:  # the backbone computes the features: in the layout its inputs come in
            built.module.backbone.to(memory_format=torch.channels_last)
    else:
        trainer = Trainer(built.module, built.transform, t, loss=prepared.loss, augmentation=prepared.augmentation,
                          callbacks=callbacks)
    env = environment(trainer.device, trainer.threads)
    if built.weights is not None:
        env["weights"] = built.weights
    if resuming and folder.file(CHECKPOINT).exists() and transfer == "features":
        _check_same_start(folder, built.weights)  # the checkpoint holds the head; the backbone is read again
    if resuming and folder.file(CHECKPOINT).exists():
        _restore(folder, trainer, env, config)
    else:  # a new run, or one killed before its first epoch ended: start (again) from the folder's config
        try:
            folder.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunError(f"cannot create the run folder {folder.path} ({exc.strerror}); choose another --out") from None
        folder.write_config(to_dict(config))
        spec = {**built.spec, "classes": list(dataset.classes), "data": config.data.name,
                "background": background(dataset["train"].images)}
        if built.weights is not None:
            spec["weights"] = built.weights
        folder.write_model_spec(spec)
        if resuming:
            _start_over(folder, env)
        else:
            folder.write_env(env)
    train, val, test = dataset["train"], dataset["val"], dataset["test"]
    inputs = {"train": train.images, "val": val.images, "test": test.images}
    cache = None
    if transfer == "features":
        from ..engine.features import FeatureCache

        cache = FeatureCache(built.module.backbone, built.transform, trainer.device, trainer.amp, built.spec,
                             built.module.num_features, batch_size=t.batch_size)
    elif transfer == "augmented" and progress:
        _say(console, "frozen backbone with augmentation on: the backbone runs on every step (features cannot be "
                      "cached when the images change each epoch)")
    try:
        if cache is not None:
            inputs = {name: cache(name, images) for name, images in inputs.items()}
            if progress:
                _say(console, "frozen backbone: " + ", ".join(_feature_note(e) for e in cache.log)
                     + "; the head trains on them")
        history = trainer.fit((inputs["train"], train.labels), (inputs["val"], val.labels))
    except TrainingDiverged as exc:
        _write_failed(folder, str(exc), trainer)
        raise
    except LockLost:
        raise  # another process has the cell now: write nothing
    except KeyboardInterrupt:  # unfinished, resumable
        done = f"epochs 1–{trainer.epoch} are saved in {folder.path}" if trainer.epoch else \
            f"no epoch had finished, {folder.path} starts again from epoch 1"
        raise Interrupted(f"interrupted during epoch {trainer.epoch + 1} of {t.epochs}: {done}; resume with "
                          f"`cnnlab train --out {folder.path} --resume`") from None
    except SystemExit:
        raise
    except Exception as exc:
        _write_failed(folder, f"{type(exc).__name__}: {exc}", trainer)
        raise
    best = folder.read_weights(WEIGHTS, device=trainer.device)  # choose on validation
    if transfer == "features":  # the whole model's weights; the trainer holds its head
        built.module.load_state_dict(best)
    else:
        trainer.load_weights(best)
    results = {name: trainer.evaluate(inputs[name], split.labels) for name, split in (("val", val), ("test", test))}
    folder.write_predictions({name: Predictions(_positions(split), split.labels, results[name].logits,
                                                images_sha256(split.images))
                              for name, split in (("val", val), ("test", test))})
    summary = _summary(folder, trainer, checkpoint.best_epoch, results, config, built.module)
    if cache is not None:
        summary["features"] = cache.log
        computed = [e["images_per_s"] for e in cache.log if e["split"] == "test" and e["images_per_s"]]
        # the whole model's speed (backbone and head), not the head's on features; timed again when they were cached
        summary["inference_images_per_s"] = computed[0] if computed else cache.time_backbone(test.images[:512])
    folder.write_summary(summary)
    folder.file(CHECKPOINT).unlink(missing_ok=True)  # the kept weights are in model.safetensors
    return RunResult(folder, summary, history)


def _positions(split):
    """Each image's position in its split's file (partial and carved splits keep theirs)."""
    import numpy as np

    return split.items if split.items is not None else np.arange(len(split), dtype=np.int64)


def _restore(folder: RunFolder, trainer, env: dict, config: RunConfig) -> None:
    """Load the last checkpoint into the trainer; only once it has loaded does a failed run's record go."""
    checkpoint = folder.file(CHECKPOINT)
    tensors, meta, saved = folder.read_checkpoint(trainer.device)
    if saved is not None and saved != to_dict(config):
        current = to_dict(config)
        differ = _differing_keys(current, saved)
        raise ConfigError(f"{folder.file(CONFIG)} differs from the config its checkpoint was trained with "
                          f"({', '.join(differ) or 'sections'}): restore those settings to resume, or train a new run "
                          f"with another --out")
    try:
        trainer.load_state_dict(tensors, meta)
    except (RuntimeError, KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        reason = str(exc).strip().splitlines()[0][:300]
        raise RunError(f"{checkpoint}: its training state does not fit this run's model and optimizer ({reason}); "
                       f"delete it to train the run again from epoch 1") from None
    folder.remove_temporaries()
    folder.remove_summary()  # a failed run resumes from its last good epoch
    folder.truncate_metrics(trainer.epoch)
    _note_resume(folder, env, trainer.epoch)


def _start_over(folder: RunFolder, env: dict) -> None:
    """A run killed before its first checkpoint: nothing was kept, so it restarts from its config."""
    folder.remove_temporaries()
    folder.remove_summary()
    folder.truncate_metrics(0)
    _note_resume(folder, env, 0)


def _note_resume(folder: RunFolder, env: dict, epoch: int) -> None:
    try:
        saved_env = folder.read_env() if folder.has(ENV) else dict(env)
    except RunError:
        saved_env = dict(env)  # unreadable: write it again
    saved_env.setdefault("resumed", []).append({"at": time.strftime("%Y-%m-%dT%H:%M:%S"), "epoch": epoch,
                                                "host": env["host"], "device": env["device"]})
    folder.write_env(saved_env)


def _write_failed(folder: RunFolder, error: str, trainer) -> None:
    folder.write_summary({"status": "failed", "error": error, "val": None, "test": None,
                          "best_epoch": None, "epochs_run": trainer.epoch})


def _transfer_mode(module, augmentation) -> str | None:
    """'features' (a frozen backbone, nothing random before the head: train on cached features),
    'augmented' (frozen, but the images change each step), 'finetune' (a transfer model whose backbone
    trains) or None (not a transfer model)."""
    from ..models.transfer import TransferNet

    if not isinstance(module, TransferNet):
        return None
    if module.always_frozen:
        return "augmented" if augmentation.active else "features"
    return "finetune"


def _check_same_start(folder: RunFolder, weights: dict | None) -> None:
    recorded = (folder.read_model_spec().get("weights") or {}) if folder.has(MODEL_SPEC) else {}
    if recorded.get("sha256") != (weights or {}).get("sha256"):
        raise ConfigError(f"the pretrained weights {recorded.get('file') or (weights or {}).get('file')} changed since "
                          f"{folder.path} started (sha256 {str(recorded.get('sha256'))[:12]}… then, "
                          f"{str((weights or {}).get('sha256'))[:12]}… now): put the original file back to resume, or "
                          f"train a new run with another --out")


def _feature_note(entry: dict) -> str:
    done = "read from the cache" if entry["cached"] else f"computed in {entry['seconds']:.1f} s"
    return f"{entry['split']} features {done}"


def _finetune_schedule(module):
    """A callback setting what trains at each epoch's start (gradual unfreezing), a pure function of
    the epoch, so a resumed run continues alike."""
    from ..engine.callbacks import Callback

    class FinetuneSchedule(Callback):
        def on_epoch_begin(self, epoch: int, logs: dict) -> None:
            module.set_epoch(epoch)

    return FinetuneSchedule()


def _say(console, text: str) -> None:
    from rich.console import Console

    (console or Console(stderr=True)).print(text, highlight=False, soft_wrap=True)


def _summary(folder: RunFolder, trainer, best_epoch, results: dict, config: RunConfig, module) -> dict:
    from ..models.transfer import parameter_counts

    rows = folder.read_metrics()
    speeds = [r["images_per_s"] for r in rows[1:] or rows]  # epoch 1 holds the warm-up
    return {
        "status": "finished",
        "error": None,
        "val": _metrics(results["val"]),
        "test": _metrics(results["test"]),
        "best_epoch": best_epoch,
        **parameter_counts(module),
        "train_seconds": sum(r["seconds"] for r in rows),
        "images_per_s": statistics.median(speeds) if speeds else math.nan,
        "epochs_run": trainer.epoch,
        "stopped": trainer.stop_reason,
        "inference_images_per_s": results["test"].images_per_s,
        "data": config.data.name,
        "model": config.model.name,
        "seed": config.train.seed,
        "threads": trainer.threads,
        "device": str(trainer.device),
        "sizes": {"val": len(results["val"].labels), "test": len(results["test"].labels)},
    }


def _metrics(result) -> dict:
    return {"accuracy": result.accuracy, "loss": result.loss, "macro_f1": result.macro_f1, "top5": result.top5}
