"""A finished run's model, back from its folder: evaluate it on a dataset, predict image files."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import build_config, replace
from ..errors import ConfigError, DataError
from ..runfolder import PREDICTIONS, WEIGHTS, Predictions, RunFolder, images_sha256


@dataclass
class LoadedRun:
    folder: RunFolder
    config: object
    spec: dict
    trainer: object  # a Trainer holding the weights; used for its batched, timed inference

    @property
    def classes(self) -> list[str]:
        return self.spec["classes"]


def background(images: np.ndarray) -> str:
    """'dark', 'light' or 'mixed': the typical brightness of the images' one-pixel border."""
    sample = images[:: max(1, len(images) // 2000)].astype(np.float32)
    border = np.concatenate([sample[..., 0, :], sample[..., -1, :], sample[..., :, 0], sample[..., :, -1]], axis=-1)
    level = float(np.median(border.mean(axis=(1, 2))))
    return "dark" if level < 40 else "light" if level > 215 else "mixed"


def load_run(path: str | Path, device: str | None = None) -> LoadedRun:
    """The run's model with its kept weights, on `device` (default: the run's setting)."""
    from ..models import model_from_spec
    from .trainer import Trainer

    folder = RunFolder(path)
    folder.require("config.yaml", "model.json", WEIGHTS)
    config = build_config(folder.read_config())
    if device is not None:
        config = replace(config, **{"train.device": device})
    spec = folder.read_model_spec()
    built = model_from_spec(spec)
    trainer = Trainer(built.module, built.transform, config.train)
    trainer.load_weights(folder.read_weights(WEIGHTS, device=trainer.device))
    return LoadedRun(folder, config, spec, trainer)


def evaluate_run(path: str | Path, data: str | None = None, device: str | None = None) -> dict:
    """Score the run's kept weights on the test split of its own data (rewrites predictions.npz) or of
    `data`, a dataset with the same classes and image shape (writes predictions-<data>.npz)."""
    from ..data import load_dataset, prepare_splits

    run = load_run(path, device)
    own = data is None or data == run.config.data.name
    name = run.config.data.name if own else data
    d = run.config.data
    dataset = prepare_splits(load_dataset(name), val=d.val, carve_from=d.carve_from, test=d.test, seed=d.split_seed)
    _check_compatible(run, dataset)
    splits = ("val", "test") if own else ("test",)
    results, predictions = {}, {}
    for split_name in splits:
        split = dataset[split_name]
        result = run.trainer.evaluate(split.images, split.labels)
        items = split.items if split.items is not None else np.arange(len(split))
        results[split_name] = result
        predictions[split_name] = Predictions(items, split.labels, result.logits, images_sha256(split.images))
    file = PREDICTIONS if own else f"predictions-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.npz"
    run.folder.write_predictions(predictions, file)
    test = results["test"]
    return {"run": str(run.folder.path), "data": name, "own_data": own, "split": "test", "images": len(test.labels),
            **test.metrics(), "device": str(run.trainer.device), "batch_size": run.trainer.eval_batch_size,
            "predictions": str(run.folder.file(file))}


def _check_compatible(run: LoadedRun, dataset) -> None:
    if list(dataset.classes) != list(run.classes):
        raise DataError(f"{dataset.name} has {dataset.num_classes} classes ({_head(dataset.classes)}) but the run "
                        f"was trained on {len(run.classes)} ({_head(run.classes)}); evaluate on a dataset with the "
                        f"same classes (mapping one label set onto another is cross-split evaluation)")
    trained = (run.spec["in_chans"], *run.spec["input_size"])
    if tuple(dataset.image_shape) != tuple(trained):
        raise DataError(f"{dataset.name} images are {'x'.join(map(str, dataset.image_shape))} but the run was "
                        f"trained on {'x'.join(map(str, trained))}")


def _head(names, count: int = 5) -> str:
    names = list(names)
    return ", ".join(names[:count]) + (", …" if len(names) > count else "")


def read_image(file: str | Path, chans: int, size: tuple[int, int], invert: str, trained_on: str) -> np.ndarray:
    """An image file as uint8 chans x H x W at the training size; light-on-dark flipped to match the
    training data's background when invert='auto' (or always with 'yes')."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            image = image.convert("L" if chans == 1 else "RGB")
            if image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling.LANCZOS)
            pixels = np.asarray(image, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{file}: no such image file") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{file}: cannot read it as an image ({exc}); give a PNG, JPEG or other Pillow format") from None
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    if invert not in ("auto", "yes", "no"):
        raise ConfigError(f"invert must be auto, yes or no. Got {invert!r} instead.")
    mine = background(pixels[None])
    if invert == "yes" or (invert == "auto" and {mine, trained_on} == {"dark", "light"}):
        pixels = 255 - pixels
    return np.ascontiguousarray(pixels)


def predict_files(path: str | Path, files, top: int = 5, invert: str = "auto", device: str | None = None) -> list[dict]:
    """Top-`top` classes with probabilities for each image file."""
    import torch

    if top < 1:
        raise ConfigError(f"The 'top' parameter must be an int >= 1. Got {top!r} instead.")
    run = load_run(path, device)
    chans, size = run.spec["in_chans"], tuple(run.spec["input_size"])
    trained_on = run.spec.get("background", "mixed")
    images = np.stack([read_image(f, chans, size, invert, trained_on) for f in files])
    logits, _, _ = run.trainer.predict_logits(torch.from_numpy(images))
    probabilities = torch.softmax(logits.float(), dim=1).cpu()
    k = min(top, probabilities.shape[1])
    values, indices = probabilities.topk(k, dim=1)
    return [{"file": str(f), "top": [(run.classes[i], float(p)) for p, i in zip(v.tolist(), ix.tolist())]}
            for f, v, ix in zip(files, values, indices)]


def time_inference(path: str | Path, device: str | None = None, repeats: int = 30, batch: int = 256,
                   warmup: int = 5) -> dict:
    """Latency of one image (median of `repeats`) and throughput at `batch`, on `device`, after warm-up
    calls that are not timed; random images of the run's input shape (speed does not depend on them)."""
    import statistics
    import time

    import torch

    run = load_run(path, device)
    trainer = run.trainer
    shape = (run.spec["in_chans"], *run.spec["input_size"])
    images = torch.randint(0, 256, (batch, *shape), dtype=torch.uint8, device=trainer.device)

    def timed(x) -> float:
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        start = time.perf_counter()
        trainer.infer(x)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        return time.perf_counter() - start

    with torch.inference_mode():
        trainer.module.eval()
        for _ in range(warmup):
            timed(images[:1])
            timed(images)
        single = statistics.median(timed(images[:1]) for _ in range(repeats))
        large = statistics.median(timed(images) for _ in range(max(3, repeats // 10)))
    return {"latency_ms": single * 1000, "images_per_s": batch / large, "batch": batch, "device": str(trainer.device),
            "threads": trainer.threads}
