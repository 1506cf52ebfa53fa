"""Checks of a planned study that its config schema cannot make, before anything runs: each dataset is
there (or known to the registry, for a dry run), each model builds with its options (profiled on the
meta device, its weights file read), flips are refused for characters, class weights fit the classes.
They return the facts the time estimate needs."""

from __future__ import annotations

import json
from typing import Any

from ..errors import CnnlabError, ConfigError
from .plan import Plan
from .run import model_options


def check_plan(plan: Plan, need_data: bool = True) -> dict[str, dict]:
    """Check what the config schema cannot: every dataset (present, when need_data), every model with
    its options, the augmentation for its dataset. Returns facts per cell key: dataset size and shape,
    the model's params and MACs (for the time estimate)."""
    from ..data import DATASETS, load_dataset
    from ..engine.augment import Augmentation
    from ..models.profile import profile_model

    datasets: dict[str, dict] = {}
    models: dict[str, Any] = {}
    facts = {}
    for record in plan.cells:
        config = plan.config(record)
        data = config.data
        where = f"study {plan.spec.name!r}, cell {record.name}"
        try:
            if data.name not in datasets:
                datasets[data.name] = _dataset_facts(data.name, need_data, DATASETS, load_dataset)
            info = datasets[data.name]
            Augmentation(**config.augment.model_dump()).check(info["flips_allowed"], data.name)
            options = model_options(config)
            model_key = json.dumps([config.model.name, options, info["num_classes"], info["shape"]], sort_keys=True,
                                   default=str)
            if model_key not in models:
                chans, height, width = info["shape"]
                models[model_key] = profile_model(config.model.name, info["num_classes"], chans, (height, width),
                                                  **options)
                if options.get("pretrained") not in (None, False) or options.get("weights") is not None:
                    from ..models import create_model  # reads the weights and checks they fit; loads nothing

                    create_model(config.model.name, info["num_classes"], chans, (height, width), device="meta",
                                 **options)
            weights = config.train.class_weights
            if isinstance(weights, list) and len(weights) != info["num_classes"]:
                raise ConfigError(f"train.class_weights has {len(weights)} values but {data.name} has "
                                  f"{info['num_classes']} classes")
        except CnnlabError as exc:
            raise type(exc)(f"{where}: {exc}") from None
        profile = models[model_key]
        train_images = _train_size(info["splits"], data)
        facts[record.key] = {"train_images": train_images, "eval_images": round(train_images * 0.2),
                             "params": profile.params, "macs": profile.macs, "present": info["present"]}
    return facts


def _dataset_facts(name, need_data, registry, load) -> dict:
    if name in registry:
        spec = registry.get(name)
        present = bool(spec.source.present())
        if not present and not need_data:  # a dry run plans a study whose data is not here yet
            return {"num_classes": spec.num_classes, "shape": spec.image_shape, "splits": dict(spec.official),
                    "flips_allowed": spec.flips_allowed, "present": False}
    dataset = load(name, download=False, progress=False)  # also own data (idx:, csv:, folder:), or the error
    return {"num_classes": dataset.num_classes, "shape": dataset.image_shape,
            "splits": {split: len(dataset[split]) for split in dataset.splits},
            "flips_allowed": dataset.flips_allowed, "present": True}


def _train_size(splits: dict, data) -> int:
    """Roughly how many images a cell trains on (for the time estimate)."""
    if data.carve_from:
        available = splits.get(data.carve_from, 0)
        available -= data.test if data.test >= 1 else available * data.test
    else:
        available = splits.get("train", 0)
    if data.subset is not None:
        available = data.subset if data.subset >= 1 else available * data.subset
    val = data.val if data.val >= 1 else available * data.val
    return max(1, round(available - val))
