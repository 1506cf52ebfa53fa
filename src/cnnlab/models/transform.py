"""A model's input transform: uint8 images N x C x H x W in, the model's float input out, as one
batched op on the images' device.

Steps, in the order that keeps the work smallest: zero-pad (still uint8, one byte a pixel, and
pixel 0 is the background), average 3 -> 1 channels, convert to float, resize (bilinear),
optionally augment (the caller's batched op), then repeat 1 -> N channels and normalise in one
fused multiply-add that writes the output once (in channels_last layout when asked). The transform is described by a small JSON-able dict, the
one recorded in model.json, and rebuilt from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import ConfigError
from .checks import bad_value, known_options, one_of, positive_int

MODES = ("native", "pad", "resize")
MAX_SIDE = 4096  # a larger model input is a typo or a hostile model.json (one image would need gigabytes)


def _floats(value: float | Sequence[float], chans: int, param: str) -> tuple[float, ...]:
    values = [value] * chans if isinstance(value, (int, float)) else list(value)
    if len(values) == 1:
        values = values * chans
    if len(values) != chans or any(not isinstance(v, (int, float)) or isinstance(v, bool) for v in values):
        raise bad_value(param, "the input transform", f"a float or a list of {chans} floats", value)
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class InputTransform:
    """uint8 N x C x H x W -> float32 N x chans x size (see the module docstring).

    chans: the model's input channels; a 1-channel input is repeated, a many-channel input is
        averaged when chans == 1.
    mode: 'native' (keep the size), 'pad' (zero-pad, centred, to `size`) or 'resize' (bilinear).
    size: (height, width) for 'pad' and 'resize'; None for 'native'.
    mean, std: per model channel, on the 0..1 scale.
    """

    chans: int = 1
    mode: str = "native"
    size: tuple[int, int] | None = None
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    channels_last: bool = False
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        positive_int(self.chans, "chans", "the input transform")
        one_of(self.mode, MODES, "mode", "the input transform")
        if (self.mode == "native") != (self.size is None):
            raise bad_value("size", "the input transform", "None for mode 'native' and (height, width) otherwise",
                            self.size)
        if self.size is not None:
            size = tuple(self.size)
            if len(size) != 2 or any(not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= MAX_SIDE
                                     for v in size):
                raise bad_value("size", "the input transform", f"a (height, width) pair of ints from 1 to {MAX_SIDE}",
                                self.size)
            object.__setattr__(self, "size", size)
        object.__setattr__(self, "mean", _floats(self.mean, self.chans, "mean"))
        object.__setattr__(self, "std", _floats(self.std, self.chans, "std"))
        if not isinstance(self.channels_last, bool):
            raise bad_value("channels_last", "the input transform", "True or False", self.channels_last)
        if any(s <= 0 for s in self.std):
            raise bad_value("std", "the input transform", "positive", self.std)

    # ---- description ---------------------------------------------------------------------
    def to_spec(self) -> dict:
        return {
            "chans": self.chans,
            "mode": self.mode,
            "size": list(self.size) if self.size is not None else None,
            "mean": list(self.mean),
            "std": list(self.std),
            "channels_last": self.channels_last,
        }

    @classmethod
    def from_spec(cls, spec: Mapping) -> InputTransform:
        valid = [k for k in cls.__dataclass_fields__ if not k.startswith("_")]
        known_options(spec, valid, "the input transform spec")
        spec = dict(spec)
        if spec.get("size") is not None:
            spec["size"] = tuple(spec["size"])
        return cls(**spec)

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """The shape the transform gives for an input of `input_shape` (N, C, H, W)."""
        n, _, h, w = input_shape
        height, width = self.size if self.size is not None else (h, w)
        return (n, self.chans, height, width)

    # ---- the op ----------------------------------------------------------------------------
    def _affine(self, device):
        """(scale, shift) so that x_uint8 * scale + shift == (x / 255 - mean) / std, cached per device."""
        key = str(device)
        if key not in self._cache:
            import torch

            std = torch.tensor(self.std, dtype=torch.float32)
            mean = torch.tensor(self.mean, dtype=torch.float32)
            scale = (1.0 / (255.0 * std)).view(1, -1, 1, 1).to(device)
            shift = (-mean / std).view(1, -1, 1, 1).to(device)
            self._cache[key] = (scale, shift)
        return self._cache[key]

    def __call__(self, images, augment=None):
        """augment: optional batched op on the float pixels (0..255, after pad/resize, before
        normalisation), so its zero fill is the background whatever the normalisation."""
        import torch
        import torch.nn.functional as F

        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ConfigError(f"the input transform takes uint8 images N x C x H x W, "
                              f"got {images.dtype} of shape {tuple(images.shape)}")
        n, c, h, w = images.shape
        if c != self.chans and c != 1 and self.chans != 1:
            raise ConfigError(f"cannot turn {c}-channel images into the model's {self.chans} channels")
        x = images
        if self.mode == "pad":
            height, width = self.size
            if h > height or w > width:
                raise ConfigError(f"cannot zero-pad {h}x{w} images to the smaller {height}x{width}; use resize")
            top, left = (height - h) // 2, (width - w) // 2
            x = F.pad(x, (left, width - w - left, top, height - h - top))  # value 0, still uint8
        if c > 1 and self.chans == 1:
            x = x.float().mean(dim=1, keepdim=True)
        else:
            x = x.float()
        if self.mode == "resize" and tuple(x.shape[-2:]) != self.size:
            shrinking = self.size[0] < x.shape[-2] or self.size[1] < x.shape[-1]
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=shrinking)
        if augment is not None:
            x = augment(x)
        scale, shift = self._affine(x.device)
        if x.shape[1] != self.chans:
            x = x.expand(-1, self.chans, -1, -1)  # a view: the multiply-add below writes the repeats
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        out = torch.empty((n, self.chans, *x.shape[-2:]), dtype=torch.float32, device=x.device, memory_format=layout)
        return torch.addcmul(shift, x, scale, out=out)
