"""A finished run's model, back from its folder: evaluate it on a dataset, predict image files."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import build_config, replace
from ..errors import CnnlabError, ConfigError, DataError, bad_value
from ..runfolder import CONFIG, MODEL_SPEC, PREDICTIONS, WEIGHTS, Predictions, RunError, RunFolder, images_sha256

# Larger images are refused from their header, before decoding: the model sees a few thousand pixels,
# and a 400-megapixel PNG that compresses to a few kilobytes would take gigabytes to decode.
MAX_IMAGE_PIXELS = 50_000_000


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
    folder.require(CONFIG, MODEL_SPEC, WEIGHTS)
    try:
        config = build_config(folder.read_config())
    except ConfigError as exc:
        raise RunError(f"{folder.file(CONFIG)}: {str(exc).rstrip('.')}; restore the run's config.yaml or retrain "
                       f"the run") from None
    if device is not None:
        config = replace(config, **{"train.device": device})
    spec = folder.read_model_spec()
    _check_spec(folder, spec)
    try:
        built = model_from_spec(spec)
    except (CnnlabError, TypeError, ValueError, KeyError) as exc:
        raise RunError(f"{folder.file(MODEL_SPEC)} does not describe a model cnnlab can build ({exc}); restore "
                       f"the run's model.json or retrain the run") from None
    trainer = Trainer(built.module, built.transform, config.train)
    state = folder.read_weights(WEIGHTS, device=trainer.device)
    _check_weights(folder, spec, trainer.module.state_dict(), state)
    trainer.load_weights(state)
    return LoadedRun(folder, config, spec, trainer)


def _check_spec(folder: RunFolder, spec: dict) -> None:
    """model.json has what rebuilding and naming predictions need, with one class name per output."""
    file = folder.file(MODEL_SPEC)
    fix = "restore the run's model.json or retrain the run"
    for key, kind in (("name", str), ("num_classes", int), ("in_chans", int), ("input_size", list),
                      ("classes", list)):
        if not isinstance(spec.get(key), kind) or isinstance(spec.get(key), bool):
            raise RunError(f"{file}: {key!r} is missing or not a {kind.__name__} (got {spec.get(key)!r}); {fix}")
    if len(spec["input_size"]) != 2 or not all(isinstance(v, int) and v > 0 for v in spec["input_size"]):
        raise RunError(f"{file}: 'input_size' must be [height, width], got {spec['input_size']!r}; {fix}")
    if len(spec["classes"]) != spec["num_classes"]:
        raise RunError(f"{file} lists {len(spec['classes'])} class names but its model has {spec['num_classes']} "
                       f"outputs (num_classes); the run folder is inconsistent: {fix}")
    if not isinstance(spec.get("options", {}), dict):
        raise RunError(f"{file}: 'options' must be a mapping, got {spec['options']!r}; {fix}")


def _check_weights(folder: RunFolder, spec: dict, expected: dict, state: dict) -> None:
    """The saved tensors are exactly the rebuilt model's, name for name and shape for shape."""
    def shape(tensor) -> str:
        return "×".join(map(str, tensor.shape)) or "scalar"

    problems = [f"{k} is {shape(state[k])} in the file but {shape(v)} in the model" for k, v in expected.items()
                if k in state and tuple(state[k].shape) != tuple(v.shape)]
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing:
        problems.append(f"missing from the file: {_head(missing, 3)}")
    if extra:
        problems.append(f"not in the model: {_head(extra, 3)}")
    if problems:
        options = ", ".join(f"{k}={v}" for k, v in dict(spec.get("options", {})).items()) or "no options"
        raise RunError(f"{folder.file(WEIGHTS)} does not fit the model {folder.file(MODEL_SPEC)} describes "
                       f"({spec['name']}, {options}): {'; '.join(problems[:3])}"
                       f"{f'; and {len(problems) - 3} more' if len(problems) > 3 else ''}. The run folder is "
                       f"inconsistent (model.json or model.safetensors was edited or replaced): restore both from "
                       f"the same run, or retrain it")


def evaluate_run(path: str | Path, data: str | None = None, device: str | None = None,
                 loaded: LoadedRun | None = None) -> dict:
    """Score the run's kept weights on the test split of its own data (rewrites predictions.npz) or of
    `data`, a dataset with the same classes and image shape (writes predictions-<data>.npz). `loaded`: the
    run already loaded by load_run (then `path` and `device` are its)."""
    from ..data import configured_splits, load_dataset

    run = loaded if loaded is not None else load_run(path, device)
    own = data is None or data == run.config.data.name
    name = run.config.data.name if own else data
    d = run.config.data
    dataset = load_dataset(name)
    _check_compatible(run, dataset)  # before splitting: a split of the wrong data would fail less clearly
    dataset = configured_splits(dataset, d, train_subset=False)
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
                        f"trained on {'x'.join(map(str, trained))}; evaluate on a dataset with the run's image shape")


def _head(names, count: int = 5) -> str:
    names = list(names)
    return ", ".join(names[:count]) + (", …" if len(names) > count else "")


def read_image(file: str | Path, chans: int, size: tuple[int, int], invert: str, trained_on: str) -> np.ndarray:
    """An image file as uint8 chans x H x W at the training size; light-on-dark flipped to match the
    training data's background when invert='auto' (or always with 'yes')."""
    import warnings

    from PIL import Image

    if invert not in ("auto", "yes", "no"):
        raise bad_value("--invert", "predict", "auto, yes or no", invert)
    limit = f"the limit is {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels; downscale it first"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, by our own limit
            with Image.open(file) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise DataError(f"{file}: {width}×{height} is {width * height / 1e6:,.0f} megapixels, too large "
                                    f"to decode ({limit})")
                image = image.convert("L" if chans == 1 else "RGB")
                if image.size != (size[1], size[0]):
                    image = image.resize((size[1], size[0]), Image.Resampling.LANCZOS)
                pixels = np.asarray(image, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{file}: no such image file; check the path") from None
    except IsADirectoryError:
        raise DataError(f"{file} is a folder; give image files") from None
    except Image.DecompressionBombError as exc:  # Pillow's own, larger limit: it refuses at open
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size_text = f"{int(found.group(1)) / 1e6:,.0f} megapixels" if found else "too many pixels"
        raise DataError(f"{file}: {size_text}, too large to decode ({limit})") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:  # Pillow's ways of saying "corrupt"
        raise DataError(f"{file}: cannot read it as an image ({exc}); give a PNG, JPEG or other Pillow "
                        f"format") from None
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    mine = background(pixels[None])
    if invert == "yes" or (invert == "auto" and {mine, trained_on} == {"dark", "light"}):
        pixels = 255 - pixels
    return np.ascontiguousarray(pixels)


def predict_files(path: str | Path, files, top: int = 5, invert: str = "auto", device: str | None = None) -> list[dict]:
    """Top-`top` classes with probabilities for each image file."""
    import torch

    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise bad_value("--top", "predict", "a whole number of classes, 1 or more", top)
    if invert not in ("auto", "yes", "no"):
        raise bad_value("--invert", "predict", "auto, yes or no", invert)
    files = list(files)
    if not files:
        raise ConfigError("predict needs at least one image file: cnnlab predict RUN IMAGE...")
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
                   warmup: int = 5, loaded: LoadedRun | None = None) -> dict:
    """Latency of one image (median of `repeats`) and throughput at `batch`, on `device`, after warm-up
    calls that are not timed; random images of the run's input shape (speed does not depend on them).
    `loaded`: the run already loaded by load_run (then `path` and `device` are its)."""
    import statistics
    import time

    import torch

    run = loaded if loaded is not None else load_run(path, device)
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
