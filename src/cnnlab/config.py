"""The typed, frozen run configuration: YAML files plus dotted overrides (train.lr=0.05), validated once."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError
from .yamlsize import check_yaml_size


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Section):
    name: str = Field("fashion-mnist", description="dataset: a registry name (`cnnlab data list`) or idx:/csv:/folder:")
    val: float | int = Field(0.1, description="validation split: a fraction of train, or a count (stratified)")
    carve_from: str | None = Field(None, description="make train/val/test out of this split alone")
    test: float | int = Field(0.1, description="test fraction or count when carving")
    subset: float | int | None = Field(None, description="stratified subset of train, fraction or count")
    split_seed: int = Field(0, description="seed of the val/test/subset draws (kept apart from train.seed)")


class ModelConfig(_Section):
    model_config = ConfigDict(extra="allow", frozen=True)  # the model's own options, validated by its builder
    name: str = Field("rescnn", description="model: a curated name (`cnnlab models list`), timm:NAME or tv:NAME; "
                                            "its options go beside it (model.widths=[32,64], model.activation=gelu)")


class AugmentConfig(_Section):
    rotation: float = Field(0.0, ge=0, le=180, description="max rotation, degrees")
    shift: float = Field(0.0, ge=0, le=0.5, description="max shift, fraction of the image")
    scale: float = Field(0.0, ge=0, lt=1, description="max relative zoom in or out")
    shear: float = Field(0.0, ge=0, le=45, description="max shear, degrees")
    erasing: float = Field(0.0, ge=0, le=1, description="probability of erasing a random rectangle")
    flip: bool = Field(False, description="horizontal flips (refused for datasets of characters)")


class TrainConfig(_Section):
    epochs: int = Field(10, ge=1, description="passes over the training split")
    batch_size: int = Field(128, ge=1, description="images per step")
    optimizer: Literal["sgd", "sgd_nesterov", "adagrad", "rmsprop", "adam", "adamw", "adamax", "nadam"] = Field(
        "adam", description="sgd, sgd_nesterov, adagrad, rmsprop, adam, adamw, adamax, nadam")
    lr: float = Field(1e-3, gt=0, allow_inf_nan=False, description="base learning rate")
    momentum: float = Field(0.9, ge=0, lt=1, description="momentum of sgd / sgd_nesterov")
    weight_decay: float = Field(0.0, ge=0, description="L2 penalty (decoupled for adamw)")
    schedule: Literal["none", "cosine", "onecycle", "step"] = Field(
        "none", description="learning-rate schedule over all steps: none, cosine, onecycle, step")
    warmup_epochs: float = Field(0.0, ge=0, description="linear warm-up, in epochs (fractions allowed)")
    step_size: int = Field(10, ge=1, description="epochs between decays of the step schedule")
    step_gamma: float = Field(0.1, gt=0, le=1, description="decay factor of the step schedule")
    grad_clip: float | None = Field(None, gt=0, description="clip the gradient norm to this value")
    loss: Literal["cross_entropy", "focal"] = Field("cross_entropy", description="cross_entropy or focal")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="label smoothing of either loss")
    focal_gamma: float = Field(2.0, ge=0, description="focusing parameter of the focal loss")
    focal_alpha: float | None = Field(None, gt=0, lt=1, description="scale of the focal loss")
    class_weights: Literal["none", "balanced", "sqrt_balanced"] | list[float] = Field(
        "none", description="none, balanced, sqrt_balanced (from the training labels) or a list per class")
    early_stopping: int | None = Field(None, ge=1, description="patience in epochs on validation accuracy")
    reduce_lr_on_plateau: int | None = Field(None, ge=1, description="patience in epochs on validation loss "
                                                                     "(then lr x 0.1)")
    seed: int = Field(0, description="seed of the weights, batch order, augmentation and dropout")
    threads: int | None = Field(None, ge=1, description="CPU threads; part of the run because it changes results "
                                                        "(none: torch's default, recorded in config.yaml)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto (CUDA when present), cpu or cuda")
    compile: Literal["auto"] | bool = Field("auto", description="torch.compile the training step; auto = on a "
                                                                 "CPU for models of <= 4 M MACs trained on >= 1 M images "
                                                                 "(where it was measured to pay)")
    channels_last: bool = Field(True, description="channels_last memory layout for model and inputs")
    amp: Literal["auto", "off", "bf16"] = Field("auto", description="bf16 autocast; auto = on where the hardware has native bf16 (CUDA, "
                                                     "CPUs with AVX512-BF16 or AMX)")


class RunConfig(_Section):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    augment: AugmentConfig = AugmentConfig()
    train: TrainConfig = TrainConfig()


def parse_value(text: str) -> Any:
    """A command-line value as YAML would read it (1e-3 → float, [1,2] → list, true → bool)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):  # PyYAML reads 3e-4 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            return value
    return value


def set_dotted(tree: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {key!r}: {part!r} is a value, not a section")
    node[parts[-1]] = value


def _known_keys(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += _known_keys(annotation, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def _explain(error: dict) -> str:
    key = ".".join(str(p) for p in error["loc"])
    got = error.get("input")
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(key, _known_keys(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; valid keys: {', '.join(_known_keys())}"
        return f"unknown config key {key!r}{hint}"
    message = error["msg"].replace("Input should be", "must be").replace("Value error, ", "")
    return f"The {key!r} setting {message[0].lower() + message[1:]}. Got {got!r} instead."


def build_config(tree: dict | None = None, overrides: list[str] | dict | None = None) -> RunConfig:
    """Validate a nested dict plus `key=value` overrides into a frozen RunConfig."""
    tree = _deep_copy(tree or {})
    for section in ("data", "model"):  # `data: emnist-balanced` is short for `data: {name: emnist-balanced}`
        if isinstance(tree.get(section), str):
            tree[section] = {"name": tree[section]}
    items = overrides.items() if isinstance(overrides, dict) else (_split_override(o) for o in overrides or [])
    for key, value in items:
        set_dotted(tree, key, parse_value(value) if isinstance(value, str) else value)
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError("; ".join(_explain(e) for e in exc.errors())) from None


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None) -> RunConfig:
    """Read a YAML run file (safe_load) and apply overrides."""
    tree = {} if path is None else read_yaml_mapping(path, "expected a mapping of sections (data, model, augment, train)")
    return build_config(tree, overrides)


def read_yaml_mapping(path: str | Path, expected: str, what: str = "", allow_empty: bool = True) -> dict:
    """A YAML file (safe_load) that must hold a mapping (empty: {} when allowed). Errors name the file."""
    path = Path(path)
    try:
        tree = yaml.safe_load(path.read_text())
        check_yaml_size(tree, path)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file; give a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read{' ' + what if what else ''} ({exc.strerror or exc}); check the "
                          f"path") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); check the file at that line") from None
    if tree is None and allow_empty:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: {expected}; got {'nothing' if tree is None else type(tree).__name__} "
                          f"(write it as `key: value` lines)")
    return tree


def to_dict(config: RunConfig) -> dict:
    return config.model_dump(mode="json")


def replace(config: RunConfig, **changes) -> RunConfig:
    """A copy with dotted keys changed (replace(c, **{"train.threads": 2})), validated again."""
    return build_config(to_dict(config), changes)


def _split_override(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} must look like section.key=value (e.g. train.lr=3e-4)")
    return key.strip(), value.strip()


def _deep_copy(tree: dict) -> dict:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in tree.items()}


# The command-line flags of `cnnlab train`; every other key is set as key=value.
FLAGS = {
    "data.name": "--data", "data.val": "--val", "data.subset": "--subset", "model.name": "--model",
    "train.epochs": "--epochs", "train.batch_size": "--batch-size", "train.optimizer": "--optimizer",
    "train.lr": "--lr", "train.weight_decay": "--weight-decay", "train.schedule": "--schedule",
    "train.loss": "--loss", "train.seed": "--seed", "train.threads": "--threads", "train.device": "--device",
    "train.compile": "--compile",
}


def key_table() -> list[dict]:
    """Every config key with its default, flag and meaning (the README's table)."""
    rows = []
    for section, section_model in RunConfig.model_fields.items():
        for name, field in section_model.annotation.model_fields.items():
            key = f"{section}.{name}"
            rows.append({"key": key, "default": field.default, "flag": FLAGS.get(key, ""),
                         "meaning": field.description or ""})
    return rows


def markdown_key_table() -> str:
    lines = ["| key | default | flag | meaning |", "|---|---|---|---|"]
    for row in key_table():
        default = "none" if row["default"] is None else row["default"]
        flag = f"`{row['flag']}`" if row["flag"] else ""
        lines.append(f"| `{row['key']}` | `{default}` | {flag} | {row['meaning']} |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m cnnlab.config prints the README's key table
    print(markdown_key_table())
