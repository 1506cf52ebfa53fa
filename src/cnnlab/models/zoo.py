"""Adapters for the timm and torchvision zoos: `timm:NAME` and `tv:NAME`.

A zoo model is built with the caller's classes and input channels and no weights (pretrained
weights only on request, see weights.py). timm models take `in_chans` and `num_classes` directly.
torchvision builders take `num_classes` (that sets the head of every family: resnet/resnext/
wide_resnet/googlenet/inception/shufflenet/regnet `fc`, vgg/alexnet/convnext/efficientnet/
mobilenet/mnasnet `classifier`, densenet `classifier`, squeezenet's final 1x1 conv, vit/swin
heads), and their first conv is rebuilt for the input channels.
Also here: each model's input limits (minimum and default side, normalisation), for policy.py.
"""

from __future__ import annotations

import functools

from ..errors import ConfigError, DownloadError, UnknownNameError
from ..registry import Registry
from .policy import InputLimits
from .weights import default_weights_path, load_adapted

SOURCES = ("timm", "tv")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# torchvision builds these with transform_input=False (it assumes 3 channels); their ported
# weights then expect inputs normalised with 0.5 / 0.5, which the transform does instead.
TV_HALF_NORM = {"googlenet", "inception_v3"}
TV_EXTRA_KWARGS = {
    "googlenet": {"aux_logits": False, "transform_input": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "transform_input": False, "init_weights": True},
}
PROBE_MAX_SIDE = 512


def split_name(name: str) -> tuple[str, str] | None:
    """('timm', 'resnet18') for 'timm:resnet18'; None for a name without a zoo prefix."""
    source, sep, rest = name.partition(":")
    return (source, rest) if sep and source in SOURCES else None


@functools.cache
def zoo_names(source: str) -> tuple[str, ...]:
    """Every image-classification model name of timm or torchvision."""
    if source == "timm":
        import timm

        return tuple(timm.list_models())
    from torchvision.models import get_model_builder, list_models

    # classification builders live in torchvision.models.<arch>; detection, video, quantized … one level deeper
    return tuple(n for n in list_models() if get_model_builder(n).__module__.count(".") == 2)


def check_zoo_name(source: str, name: str) -> None:
    names = zoo_names(source)
    if name not in names:
        registry: Registry[None] = Registry(f"{source} model")
        for n in names:
            registry.register(f"{source}:{n}", True)
        close = registry.suggest(f"{source}:{name}", n=5)
        hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        raise UnknownNameError(
            f"unknown model {source + ':' + name!r}: {hint}`cnnlab models list --all` lists every name")


def build_zoo(source: str, name: str, num_classes: int, in_chans: int, download: bool = False,
              model_kwargs: dict | None = None):
    """The adapted nn.Module, with the zoo's pretrained weights when `download` (timm / torchvision fetch
    them, or take them from their caches); weights from a file are loaded by the caller."""
    check_zoo_name(source, name)
    kwargs = dict(model_kwargs or {})
    try:
        if source == "timm":
            import timm

            # timm adapts downloaded weights to in_chans / num_classes itself
            model = timm.create_model(name, pretrained=download, num_classes=num_classes, in_chans=in_chans, **kwargs)
        else:
            model = _build_tv(name, num_classes, in_chans, download, kwargs)
    except (TypeError, AssertionError, KeyError, NotImplementedError) as exc:  # an option it does not take
        raise ConfigError(f"{source}:{name} rejected model_kwargs {kwargs}: {type(exc).__name__}: {exc}; change or "
                          f"drop them") from None
    except (OSError, RuntimeError, ValueError) as exc:  # network and hub errors, when downloading
        if not download:
            if isinstance(exc, ValueError) and kwargs:
                raise ConfigError(f"{source}:{name} rejected model_kwargs {kwargs}: {exc}; change or drop them") from None
            raise
        raise DownloadError(f"could not fetch pretrained weights for {source}:{name} ({exc}): save them as "
                            f"{default_weights_path(source, name)} (safetensors) or pass pretrained=PATH") from exc
    return model


def _build_tv(name: str, num_classes: int, in_chans: int, download: bool, kwargs: dict):
    from torchvision.models import get_model, get_model_weights

    model = get_model(name, weights=None, num_classes=num_classes, **{**TV_EXTRA_KWARGS.get(name, {}), **kwargs})
    if in_chans != 3:
        replace_first_conv(model, in_chans)
    if download:
        state = get_model_weights(name).DEFAULT.get_state_dict(progress=True)
        load_adapted(model, state, f"tv:{name}")
    return model


def small_input_stem(model, owner: str) -> None:
    """Swap a ResNet-family stem (conv1 7x7 stride 2, then maxpool) for a 3x3 stride-1 conv and no
    pool: the usual adaptation of ImageNet ResNets to 28-32 pixel images (He et al. 2016, sec. 4.2)."""
    from torch import nn

    conv, pool = getattr(model, "conv1", None), getattr(model, "maxpool", None)
    if not (isinstance(conv, nn.Conv2d) and conv.kernel_size == (7, 7) and conv.stride == (2, 2)
            and isinstance(pool, nn.MaxPool2d)):
        raise ConfigError(f"input_policy 'stem' needs a ResNet-family model with a 7x7 stride-2 conv1 and a max-pool "
                          f"(resnet50, seresnet50, tv:resnext50_32x4d, timm:resnet18, ...); {owner} has none: "
                          f"use input_policy 'pad' or 'resize'")
    model.conv1 = nn.Conv2d(conv.in_channels, conv.out_channels, 3, 1, 1, bias=conv.bias is not None,
                            device=conv.weight.device, dtype=conv.weight.dtype)
    model.maxpool = nn.Identity()


def replace_first_conv(model, in_chans: int) -> None:
    """Rebuild the first 3-channel Conv2d (the stem of every torchvision classifier) for `in_chans`.
    The fresh weights reuse its initialisation, one input channel's worth at a time."""
    import torch
    from torch import nn

    stems = ((name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.in_channels == 3)
    qualified, module = next(stems, (None, None))
    if module is None:
        raise ConfigError(f"{type(model).__name__} has no 3-channel Conv2d to adapt to {in_chans} channels")
    new = nn.Conv2d(in_chans, module.out_channels, module.kernel_size, module.stride, module.padding,
                    module.dilation, module.groups, module.bias is not None, module.padding_mode,
                    device=module.weight.device, dtype=module.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(module.weight[:, [i % 3 for i in range(in_chans)]])
        if module.bias is not None:
            new.bias.copy_(module.bias)
    parent_name, _, child = qualified.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


@functools.cache
def zoo_preset(source: str, name: str) -> tuple[tuple[int, int], tuple[float, ...], tuple[float, ...]]:
    """(default side, mean, std) of a zoo model: what its pretrained weights were trained with."""
    check_zoo_name(source, name)
    if source == "tv":
        from torchvision.models import get_model_weights

        preset = get_model_weights(name).DEFAULT.transforms()
        side = int(preset.crop_size[0])
        if name in TV_HALF_NORM:
            return (side, side), (0.5,) * 3, (0.5,) * 3
        return (side, side), tuple(preset.mean), tuple(preset.std)
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        return (224, 224), IMAGENET_MEAN, IMAGENET_STD
    return tuple(cfg.input_size[1:]), tuple(cfg.mean), tuple(cfg.std)


@functools.cache
def zoo_limits(source: str, name: str) -> InputLimits:
    """A zoo model's input limits: torchvision publishes its minimum sides; for timm they are found
    by forward passes on the meta device (only shapes are propagated: no memory, no arithmetic)."""
    default_size = zoo_preset(source, name)[0]
    if source == "tv":
        from torchvision.models import get_model_weights

        min_size = tuple(get_model_weights(name).DEFAULT.meta.get("min_size", (1, 1)))
        fixed = min_size == default_size and min_size[0] > 64  # the vits: only their image size works
        return InputLimits(min_size, default_size, fixed)
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is not None and cfg.min_input_size:
        return InputLimits(tuple(cfg.min_input_size[1:]), default_size)
    return probe_limits(lambda: timm.create_model(name), default_size)


def probe_limits(make_model, default_size: tuple[int, int]) -> InputLimits:
    """The smallest square side a model's forward accepts, by bisection on the meta device."""
    import torch

    with torch.device("meta"):
        model = make_model().eval()

    def works(side: int) -> bool:
        try:
            with torch.no_grad():
                model(torch.empty(1, 3, side, side, device="meta"))
            return True
        except Exception:  # any shape error means "too small"
            return False

    if not works(PROBE_MAX_SIDE):
        if works(default_size[0]):
            return InputLimits(default_size, default_size, fixed=True)
        raise ConfigError(f"{type(model).__name__} accepts no square input up to {PROBE_MAX_SIDE}")
    low, high = 1, PROBE_MAX_SIDE
    while low < high:
        mid = (low + high) // 2
        low, high = (low, mid) if works(mid) else (mid + 1, high)
    return InputLimits((low, low), default_size)
