"""create_model: a name, the data's classes, channels and image size -> the module and the input
transform that shapes the data for it, plus the JSON-able spec that rebuilds both (model.json)."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, UnknownNameError
from .catalog import MODELS, ModelEntry
from .checks import bad_value, known_options, positive_int, side_pair
from .policy import InputLimits, plan_input
from .transform import InputTransform
from .zoo import split_name

# Options every model takes; they shape the input, not the network.
INPUT_OPTIONS = ("input_policy", "target_size", "mean", "std", "model_in_chans", "channels_last")
# Options of every timm:/tv: model (model_kwargs go to the zoo's constructor, e.g. drop_rate for timm).
ZOO_OPTIONS = ("pretrained", "weights", "model_kwargs")
# Options of every model: where its weights start from, and a new head / what trains (transfer.py).
WEIGHT_OPTIONS = ("pretrained", "weights")
TRANSFER_OPTIONS = ("head", "head_activation", "head_dropout", "finetune", "unfreeze_epoch", "backbone_lr",
                    "layer_decay")
# What model_kwargs may set: constructor options that shape the network, as the curated zoo models
# take them. Nothing that names a file, URL or pretrained config (timm's checkpoint_path torch.load()s
# any file), so a model.json or config from elsewhere cannot load or fetch anything.
MODEL_KWARGS = (
    # timm
    "drop_rate", "drop_path_rate", "drop_block_rate", "global_pool", "output_stride", "zero_init_last",
    # torchvision
    "dropout", "dropout_aux", "attention_dropout", "stochastic_depth_prob", "layer_scale", "width_mult",
    "reduced_tail", "dilated", "zero_init_residual", "groups", "width_per_group", "bn_size", "memory_efficient",
)
HAND_WRITTEN = ("cnnlab", "user")  # built by calling their class (see catalog.py), not by a zoo
OUR_MEAN, OUR_STD = 0.5, 0.5  # our models train from scratch: map pixels to [-1, 1]


@dataclass
class BuiltModel:
    """module: the torch.nn.Module. transform: uint8 batches -> the module's input.
    spec: JSON-able; `model_from_spec(spec)` rebuilds module (fresh weights) and transform."""

    module: Any
    transform: InputTransform
    spec: dict
    weights: dict | None = None  # where the starting weights came from: source, file, sha256, how matched

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of what the module sees."""
        _, c, h, w = self.transform.output_shape((1, self.spec["in_chans"], *self.spec["input_size"]))
        return (c, h, w)


def resolve(name: str) -> ModelEntry:
    """The catalog entry for a curated name, or an ad-hoc one for 'timm:NAME' / 'tv:NAME'."""
    zoo = split_name(name)
    if zoo is not None:
        from .zoo import check_zoo_name

        check_zoo_name(*zoo)
        return ModelEntry(name, name, f"{zoo[1]} from {'timm' if zoo[0] == 'timm' else 'torchvision'}")
    if name in MODELS:
        return MODELS.get(name)
    raise UnknownNameError(_unknown_model_message(name))


def _unknown_model_message(name: str) -> str:
    message = MODELS.unknown_message(name)
    if ":" not in name:
        from .zoo import zoo_names

        hits = [f"{source}:{name}" for source in ("timm", "tv") if name in zoo_names(source)]
        if hits:
            message = f"unknown model {name!r}: not curated, but the zoos have {' and '.join(map(repr, hits))}"
    return message + "; `cnnlab models list --all` lists the timm:/tv: names"


def _our_module(entry: ModelEntry):
    if entry.source == "user":
        return _UserModel(entry)
    return importlib.import_module(f"{__package__}.{entry.target}")


class _UserModel:
    """A registered user class seen through the interface of cnnlab's own model modules."""

    def __init__(self, entry: ModelEntry):
        module, _, qualname = entry.target.partition(":")
        target = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
        self.MODEL, self.entry = target, entry
        self.takes_size = "input_size" in inspect.signature(target).parameters

    def build(self, num_classes: int, in_chans: int, input_size: tuple[int, int], **options):
        size = {"input_size": input_size} if self.takes_size else {}
        return self.MODEL(num_classes=num_classes, in_chans=in_chans, **size, **options)

    def min_side(self, **options) -> int:
        return self.entry.min_side or 1


def builder_options(entry: ModelEntry) -> tuple[str, ...]:
    """The network options `entry` takes (besides num_classes, in_chans, input_size and INPUT_OPTIONS)."""
    if entry.source not in HAND_WRITTEN:
        return (*ZOO_OPTIONS, *TRANSFER_OPTIONS)
    skip = {"self", "num_classes", "in_chans", "input_size"}
    own = tuple(p for p in inspect.signature(_our_module(entry).MODEL).parameters if p not in skip)
    return (*own, *WEIGHT_OPTIONS, *TRANSFER_OPTIONS)


def builder_defaults(name: str) -> dict:
    """The defaults of a hand-written model's options (JSON types); {} for timm:/tv: models, whose
    defaults live in their zoos. A study fills them in, so `model.blocks: 1` is the base when 1 is the default."""
    entry = resolve(name)
    if entry.source not in HAND_WRITTEN:
        return {}
    skip = {"self", "num_classes", "in_chans", "input_size"}
    defaults = {}
    for param in inspect.signature(_our_module(entry).MODEL).parameters.values():
        if param.name not in skip and param.default is not inspect.Parameter.empty:
            defaults[param.name] = list(param.default) if isinstance(param.default, tuple) else param.default
    return defaults


def create_model(name: str, num_classes: int, in_chans: int = 1, input_size: int | tuple[int, int] = 28,
                 *, device=None, **options) -> BuiltModel:
    """Build model `name` for `num_classes` classes and images of `in_chans` x `input_size`.

    name: a curated name (`list_models()`), or 'timm:NAME' / 'tv:NAME' for any zoo model.
    options: the model's own (e.g. rescnn: widths, blocks, activation, dropout, batch_norm, pool;
      zoo models: pretrained, weights=PATH, model_kwargs={...}) and, for every model,
      input_policy ('auto' | 'native' | 'pad' | 'resize' | 'stem'), target_size, mean, std,
      model_in_chans (the network's channels when they differ from the data's: the transform
      repeats or averages) and channels_last (the transform's output layout).
    device: build under this torch device (e.g. 'meta' to count without allocating weights).
    """
    entry = resolve(name)
    positive_int(num_classes, "num_classes", name)
    positive_int(in_chans, "in_chans", name)
    input_size = side_pair(input_size, "input_size", name)
    known_options(options, (*builder_options(entry), *INPUT_OPTIONS), f"model {name!r}")
    _check_json(options, name)
    _check_model_kwargs(options.get("model_kwargs"), name)
    from .transfer import transfer_plan
    from .weights import pretrained_source

    plan = transfer_plan(options, name)
    if plan is not None and (options.get("model_kwargs") or {}).get("global_pool") == "":
        raise ConfigError(f"model {name!r}: model_kwargs global_pool='' leaves feature maps unpooled, and a head or "
                          f"finetune needs pooled features; drop global_pool or set it to avg or max")
    zoo = split_name(entry.impl)
    source = pretrained_source(options.get("pretrained"), options.get("weights"), zoo[0] if zoo else None,
                               zoo[1] if zoo else name)
    net_options = {k: v for k, v in options.items() if k not in (*INPUT_OPTIONS, *WEIGHT_OPTIONS, *TRANSFER_OPTIONS)}
    model_chans = positive_int(options.get("model_in_chans", in_chans), "model_in_chans", name)

    limits, mean, std = _limits(entry, input_size, net_options)
    policy = options.get("input_policy", "auto")
    if policy == "auto" and source is not None and options.get("target_size") is not None:
        policy = "resize"  # pretrained weights want the image scaled, not padded into a black frame
    mode, size = plan_input(name, input_size, limits, policy, options.get("target_size"))
    transform = InputTransform(
        chans=model_chans,
        mode=mode,
        size=size,
        mean=_normalisation(options.get("mean"), mean, model_chans),
        std=_normalisation(options.get("std"), std, model_chans),
        channels_last=options.get("channels_last", False),
    )
    with _device(device):
        try:
            download = source is not None and source.path is None and device != "meta"
            module = _build(entry, num_classes, model_chans, size or input_size, net_options, download)
        except (RuntimeError, MemoryError) as exc:
            if isinstance(exc, RuntimeError) and "alloc" not in str(exc):
                raise
            raise ConfigError(f"model {name!r} with {net_options or 'its default options'} does not fit in memory "
                              f"({_first_line(exc)}); choose smaller options") from None
        if options.get("input_policy") == "stem":
            if entry.source in HAND_WRITTEN:
                raise bad_value("input_policy", name, "auto, native, pad or resize (our models are built for "
                                "small images already)", "stem")
            from .zoo import small_input_stem

            small_input_stem(module, name)
        weights = _load_pretrained(module, source, name, check_only=device == "meta") if source is not None else None
        if plan is not None:
            from .transfer import make_transfer

            module = make_transfer(module, num_classes, plan, name)
    spec = {
        "name": name,
        "impl": entry.impl,
        "num_classes": num_classes,
        "in_chans": in_chans,
        "input_size": list(input_size),
        "options": json.loads(json.dumps(options)),
        "transform": transform.to_spec(),
    }
    return BuiltModel(module, transform, spec, weights)


def _load_pretrained(module, source, name: str, check_only: bool = False) -> dict:
    """Load the weights `source` names into `module` (not yet given a new head); what model.json records.
    check_only (a model on the meta device): read the file and check that it fits, load nothing."""
    from .transfer import classifier_name
    from .weights import check_tensors, file_sha256, load_adapted, read_state_dict

    if source.path is None:  # the zoo downloads them into the module
        return {"source": source.label}
    what = f"{name} (from {source.path})"
    state = _run_backbone_state(source.run) if source.run is not None else read_state_dict(source.path)
    check_tensors(state, what)
    loaded = load_adapted(module, state, what, classifier_name(module), ordered=source.path.suffix != ".safetensors",
                          check_only=check_only)
    return {"source": source.label, "file": str(source.path), "sha256": file_sha256(source.path),
            "matched": f"by {loaded['matched']}"}


def _run_backbone_state(folder) -> dict:
    """A run folder's weights without its head, named as the plain model names them."""
    from ..runfolder import WEIGHTS, RunError, RunFolder

    run = RunFolder(folder)
    try:
        state = run.read_weights(WEIGHTS)
    except RunError as exc:
        raise ConfigError(f"pretrained=run:{folder}: {exc}") from None
    if any(k.startswith("backbone.") for k in state):  # a run with a transfer head: keep the backbone only
        state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    return state


def model_from_spec(spec: Mapping, *, device=None, where: str | None = None) -> BuiltModel:
    """Rebuild a BuiltModel from its spec (as saved in model.json), with fresh weights: the caller
    loads the saved ones, so pretrained weights are not fetched again. A spec may come from a run
    folder made elsewhere: its options are checked as a config's are; `where` (its file) prefixes errors."""
    options = {k: v for k, v in dict(spec.get("options", {})).items() if k not in ("pretrained", "weights")}
    try:
        built = create_model(spec["name"], spec["num_classes"], spec["in_chans"], tuple(spec["input_size"]),
                             device=device, **options)
    except ConfigError as exc:
        if where is None:
            raise
        raise type(exc)(f"{where}: {exc}") from None
    built.spec["options"] = json.loads(json.dumps(dict(spec.get("options", {}))))  # as recorded
    if "transform" in spec and built.transform.to_spec() != dict(spec["transform"]):
        built.transform = InputTransform.from_spec(spec["transform"])  # the recorded one wins
        built.spec["transform"] = built.transform.to_spec()
    return built


def _limits(entry: ModelEntry, input_size: tuple[int, int], options: dict):
    """(InputLimits, mean preset, std preset) of a model, without building it."""
    if entry.source in HAND_WRITTEN:
        side = _our_module(entry).min_side(**options)
        return InputLimits((side, side), input_size), (OUR_MEAN,), (OUR_STD,)
    from .zoo import zoo_limits, zoo_preset

    default_size, mean, std = zoo_preset(entry.source, entry.target)
    if entry.min_side is not None:  # curated: the minimum is known, no probing
        return InputLimits((entry.min_side, entry.min_side), default_size), mean, std
    return zoo_limits(entry.source, entry.target), mean, std


def _build(entry: ModelEntry, num_classes: int, chans: int, model_input_size: tuple[int, int], options: dict,
           download: bool = False):
    """The nn.Module, for inputs of `chans` x `model_input_size` (after the transform)."""
    if entry.source in HAND_WRITTEN:
        return _our_module(entry).build(num_classes, chans, model_input_size, **options)
    from .zoo import build_zoo

    return build_zoo(entry.source, entry.target, num_classes, chans, download=download, **options)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _normalisation(value, preset: tuple[float, ...], chans: int):
    """The caller's mean/std as given (the transform checks it), or the model's preset fitted to
    its channels: a 3-channel ImageNet preset becomes its average for a grey model."""
    if value is not None:
        return value
    return preset if len(preset) == chans else (sum(preset) / len(preset),) * chans


def _device(device):
    if device is None:
        return contextlib.nullcontext()
    import torch

    return torch.device(device)


def _check_json(options: dict, name: str) -> None:
    try:
        json.dumps(options)
    except (TypeError, ValueError):
        raise ConfigError(f"the options of model {name!r} must be JSON-able (numbers, strings, lists, dicts): "
                          f"{options!r}") from None


def _check_model_kwargs(kwargs, name: str) -> None:
    """model_kwargs: a mapping of MODEL_KWARGS to JSON scalars, or the error naming the key."""
    if kwargs is None:
        return
    if not isinstance(kwargs, dict):
        raise bad_value("model_kwargs", name, "a mapping of constructor options", kwargs)
    for key, value in kwargs.items():
        if key not in MODEL_KWARGS:
            raise ConfigError(f"model {name!r} rejected model_kwargs key {key!r}: model_kwargs may set only options "
                              f"that shape the network ({', '.join(MODEL_KWARGS)}); remove it (weights come from "
                              f"the pretrained / weights=PATH options, safetensors)")
        if value is not None and not isinstance(value, (bool, int, float, str)):
            raise ConfigError(f"model {name!r} rejected model_kwargs {key}={value!r}: its value must be a number, "
                              f"a string, true/false or null")


def list_models(all: bool = False) -> list[str]:  # noqa: A002 - mirrors the CLI's --all
    """The curated names; with all=True also every 'timm:NAME' and 'tv:NAME'."""
    names = MODELS.names()
    if all:
        from .zoo import zoo_names

        names += [f"{source}:{n}" for source in ("timm", "tv") for n in zoo_names(source)]
    return names
