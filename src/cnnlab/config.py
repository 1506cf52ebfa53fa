"""The typed, frozen run configuration: YAML files plus dotted overrides (train.lr=0.05), validated once.

The names train.optimizer, train.schedule, train.loss and the callbacks accept come from the engine's
registries (OPTIMIZERS, SCHEDULES, LOSSES, CALLBACKS), so a module that registers one more makes it a
valid value. Those registry modules import neither torch nor this module: reading them here is cheap
and makes no cycle.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_serializer,
    model_serializer,
)

from .engine.callbacks import CALLBACKS, FROM_CONFIG, CallbackSetting, EarlyStopping, ReduceLROnPlateau
from .engine.losses import LOSSES
from .engine.optim import OPTIMIZERS, SCHEDULES
from .errors import ConfigError, bad_value
from .registry import Registry
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


def _registered(registry: Registry) -> AfterValidator:
    """A name `registry` knows; the error lists the registered names and the closest ones."""

    def check(name: str) -> str:
        if name not in registry:
            raise ValueError(f"must be {registry.one_of(name)}")
        return name

    return AfterValidator(check)


_PATIENCE = TypeAdapter(Annotated[int, Field(ge=1)])


def _patience_or_options(callback) -> BeforeValidator:
    """train.early_stopping / train.reduce_lr_on_plateau: a patience N (every other option at the
    callback's default) or a mapping of the callback's options, checked by its own option model."""
    options_type = callback.Options

    def parse(value):
        if value is None or isinstance(value, options_type):
            return value
        if isinstance(value, bool):  # `true` would be read as a patience of 1
            raise ValueError("must be a patience in epochs (a whole number >= 1) or a mapping of options; leave it "
                             "out (or none) to go without")
        if isinstance(value, Mapping):  # its errors name the option: train.KEY.OPTION
            return options_type.model_validate(dict(value), context=FROM_CONFIG)
        return options_type(patience=_PATIENCE.validate_python(value))

    return BeforeValidator(parse)


class _NamedCallback(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: Annotated[str, _registered(CALLBACKS)]


def _callback_item(value):
    """One entry of train.callbacks: {name: NAME, option: value, ...}."""
    if isinstance(value, CallbackSetting):
        return value
    if not isinstance(value, Mapping):
        raise ValueError("must be a mapping of a callback's name and options, e.g. {name: reduce_lr_on_plateau, "
                         "patience: 2, factor: 0.5}")
    name = _NamedCallback.model_validate(dict(value)).name
    return CallbackSetting.of(name, {k: v for k, v in value.items() if k != "name"}, context=FROM_CONFIG)


def _listing(names: Iterable[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


class TrainConfig(_Section):
    epochs: int = Field(10, ge=1, description="passes over the training split")
    batch_size: int = Field(128, ge=1, description="images per step")
    optimizer: Annotated[str, _registered(OPTIMIZERS)] = Field("adam", description=_listing(OPTIMIZERS.names()))
    lr: float = Field(1e-3, gt=0, allow_inf_nan=False, description="base learning rate")
    momentum: float = Field(0.9, ge=0, lt=1, description="momentum of sgd / sgd_nesterov")
    weight_decay: float = Field(0.0, ge=0, description="L2 penalty (decoupled for adamw)")
    schedule: Annotated[str, _registered(SCHEDULES)] = Field(
        "none", description=f"learning-rate schedule over all steps: {_listing(SCHEDULES.names())}")
    warmup_epochs: float = Field(0.0, ge=0, description="linear warm-up, in epochs (fractions allowed)")
    step_size: int = Field(10, ge=1, description="epochs between decays of the step schedule")
    step_gamma: float = Field(0.1, gt=0, le=1, description="decay factor of the step schedule")
    grad_clip: float | None = Field(None, gt=0, description="clip the gradient norm to this value")
    loss: Annotated[str, _registered(LOSSES)] = Field("cross_entropy", description=_listing(LOSSES.names()))
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="label smoothing of either loss")
    focal_gamma: float = Field(2.0, ge=0, description="focusing parameter of the focal loss")
    focal_alpha: float | None = Field(None, gt=0, lt=1, description="scale of the focal loss")
    class_weights: Literal["none", "balanced", "sqrt_balanced"] | list[float] = Field(
        "none", description="none, balanced, sqrt_balanced (from the training labels) or a list per class")
    early_stopping: Annotated[EarlyStopping.Options | None, _patience_or_options(EarlyStopping)] = Field(
        None, description="patience in epochs on validation accuracy, or a mapping of the options "
                          f"{', '.join(EarlyStopping.Options.model_fields)}")
    reduce_lr_on_plateau: Annotated[ReduceLROnPlateau.Options | None, _patience_or_options(ReduceLROnPlateau)] = (
        Field(None, description="patience in epochs on validation loss (then lr x 0.1), or a mapping of the options "
                                f"{', '.join(ReduceLROnPlateau.Options.model_fields)}"))
    callbacks: tuple[Annotated[CallbackSetting, BeforeValidator(_callback_item)], ...] = Field(
        (),  # a tuple keeps the config hashable
        description=f"more callbacks, each {{name: NAME, option: value, ...}}; NAME: {', '.join(CALLBACKS.names())} "
                    f"or another registered in engine.callbacks.CALLBACKS")
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

    def configured_callbacks(self) -> list[CallbackSetting]:
        """The callbacks this config asks for, in the order they run: early stopping, the plateau
        reduction, then train.callbacks."""
        own = [CallbackSetting(name=name, options=options) for name, options in
               (("early_stopping", self.early_stopping), ("reduce_lr_on_plateau", self.reduce_lr_on_plateau))
               if options is not None]
        return [*own, *self.callbacks]

    @field_serializer("early_stopping", "reduce_lr_on_plateau")
    def _dump_patience_or_options(self, options):
        """N when only the patience differs from the callback's defaults, as `train.early_stopping: N` reads,
        so both spellings are the same config (and the same study cell)."""
        if options is None:
            return None
        if options == type(options)(patience=options.patience):
            return options.patience
        return options.model_dump()

    @field_serializer("callbacks")
    def _dump_callbacks(self, settings):
        return [{"name": setting.name, **setting.options.model_dump()} for setting in settings]

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        tree = handler(self)
        if not self.callbacks:  # a config without them dumps, and hashes, as it did before the key existed
            tree.pop("callbacks", None)
        return tree


class RunConfig(_Section):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    augment: AugmentConfig = AugmentConfig()
    train: TrainConfig = TrainConfig()


def parse_value(text: str) -> Any:
    """A command-line value as YAML would read it (1e-3 → float, [1,2] → list, true → bool)."""
    try:
        value = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):
        return text
    if isinstance(value, str):  # PyYAML reads 3e-4 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            return value
    return value


# settings whose number is short for one option: train.early_stopping: 5 is {patience: 5}
_SHORT_FOR = {("train", "early_stopping"): "patience", ("train", "reduce_lr_on_plateau"): "patience"}


def set_dotted(tree: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for depth, part in enumerate(parts[:-1], 1):
        option = _SHORT_FOR.get(tuple(parts[:depth]))
        if option and isinstance(node.get(part), int) and not isinstance(node.get(part), bool):
            node[part] = {option: node[part]}  # so train.reduce_lr_on_plateau.factor=0.5 keeps the patience
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {key!r}: {part!r} is a value, not a section")
    node[parts[-1]] = value


def parse_assignment(text: str, what: str = "override", example: str = "section.key=value (e.g. train.lr=3e-4)",
                     strict: bool = False) -> tuple[str, Any]:
    """`key=value` as (key, the value read as YAML like parse_value); `what` and `example` name the text
    and its form in the error. A value that is not valid YAML is an error when it opens a list or a mapping, and
    with `strict` always; otherwise it is read as a string."""
    key, sep, value = text.partition("=") if isinstance(text, str) else ("", "", "")
    if not sep or not key.strip():
        raise ConfigError(f"{what} {text!r} is not key=value; it must look like {example}")
    if strict or value.strip()[:1] in ("[", "{"):  # a broken list or mapping is a typo, never meant as text
        try:
            yaml.safe_load(value)
        except (yaml.YAMLError, RecursionError) as exc:
            problem = getattr(exc, "problem", None) or ("nested too deeply" if isinstance(exc, RecursionError)
                                                        else "not YAML")
            examples = "[1024, 512] or last:2" if strict else "[0.1, 0.2] or {patience: 3, factor: 0.5}"
            shown = text if len(text) <= 80 else text[:60] + "…"
            raise ConfigError(f"{what} {shown!r}: the value is not valid YAML ({problem}); write it as YAML, e.g. "
                              f"{examples}") from None
    return key.strip(), parse_value(value.strip())


def parse_assignments(texts: Iterable[str] | None, what: str = "override",
                      example: str = "section.key=value (e.g. train.lr=3e-4)", strict: bool = False
                      ) -> list[tuple[str, Any]]:
    """Every `key=value` of `texts` parsed by parse_assignment, in order."""
    return [parse_assignment(text, what, example, strict) for text in texts or []]


def _known_keys(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += _known_keys(annotation, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def _dotted(loc: tuple) -> str:
    """('train', 'callbacks', 0, 'factor') -> 'train.callbacks[0].factor'"""
    return "".join(f"[{part}]" if isinstance(part, int) else f"{'.' if i else ''}{part}" for i, part in enumerate(loc))


def _callback_of(loc: tuple, tree: dict):
    """The callback class whose options `loc` points into, if it does."""
    if loc[:1] != ("train",) or len(loc) < 3:
        return None
    if loc[1] == "early_stopping":
        return EarlyStopping
    if loc[1] == "reduce_lr_on_plateau":
        return ReduceLROnPlateau
    if loc[1] == "callbacks" and isinstance(loc[2], int):
        try:
            return CALLBACKS.get(tree["train"]["callbacks"][loc[2]]["name"])
        except (KeyError, IndexError, TypeError):
            return None
    return None


def _explain(error: dict, tree: dict) -> str:
    loc = error["loc"]
    key = _dotted(loc)
    got = error.get("input")
    if error["type"] == "extra_forbidden":
        callback = _callback_of(loc, tree)
        if callback is not None:  # an unknown option of a callback: the callback's options are the choices
            options = list(callback.Options.model_fields)
            close = difflib.get_close_matches(str(loc[-1]), options, n=3, cutoff=0.6)
            prefix = _dotted(loc[:-1])
            hint = (f"; did you mean {', '.join(f'{prefix}.{c}' for c in close)}?" if close
                    else f"; the options of {callback.__name__} are {', '.join(options)}")
            return f"unknown config key {key!r}{hint}"
        close = difflib.get_close_matches(key, _known_keys(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; valid keys: {', '.join(_known_keys())}"
        return f"unknown config key {key!r}{hint}"
    if error["type"] == "missing":  # only a callback's name can be
        return f"The {key!r} setting is missing; it must be {CALLBACKS.one_of()}"
    message = error["msg"].replace("Input should be", "must be").replace("Value error, ", "")
    return f"The {key!r} setting {message[0].lower() + message[1:]}. Got {got!r} instead."


def override_items(overrides: Mapping | Iterable[str] | None, owner: str = "build_config") -> list[tuple[str, Any]]:
    """Dotted overrides as (key, value) pairs: from a mapping ({"train.lr": 3e-4}; a text value is read as
    YAML) or from `key=value` texts (["train.lr=3e-4"]). `owner` names the function in the error."""
    if isinstance(overrides, Mapping):
        bad = next((key for key in overrides if not isinstance(key, str) or not key.strip()), None)
        if bad is not None:
            raise bad_value("overrides", owner, "a mapping whose keys are dotted config keys such as 'train.lr'",
                            bad)
        return [(key, parse_value(value) if isinstance(value, str) else value) for key, value in overrides.items()]
    if overrides is None or isinstance(overrides, (list, tuple)):
        return parse_assignments(overrides)
    raise bad_value("overrides", owner, "a mapping of dotted keys ({'train.lr': 3e-4}) or a list of key=value "
                    "texts (['train.lr=3e-4'])", overrides)


def build_config(tree: dict | None = None, overrides: list[str] | dict | None = None) -> RunConfig:
    """Validate a nested dict plus `key=value` overrides into a frozen RunConfig."""
    if tree is not None and not isinstance(tree, Mapping):
        raise bad_value("tree", "build_config", "a mapping of sections (data, model, augment, train)", tree)
    try:
        tree = _deep_copy(tree or {})
    except RecursionError:
        raise ConfigError("the config is nested too deeply to be a run config; give a mapping of the sections "
                          "data, model, augment and train") from None
    for section in ("data", "model"):  # `data: emnist-balanced` is short for `data: {name: emnist-balanced}`
        if isinstance(tree.get(section), str):
            tree[section] = {"name": tree[section]}
    items = override_items(overrides)
    for key, value in items:
        set_dotted(tree, key, value)
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError("; ".join(_explain(e, tree) for e in exc.errors())) from None


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
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to read (thousands of levels); check that the file is the "
                          f"one you meant") from None
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


def _deep_copy(tree: Mapping) -> dict:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in tree.items()}


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
            default = list(field.default) if isinstance(field.default, tuple) else field.default
            rows.append({"key": key, "default": default, "flag": FLAGS.get(key, ""),
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
