"""The input policy: how a dataset's images reach a model that wants another size.

Every model has a minimum input side (the smallest image whose feature maps survive its
strides and pools; 75 for Inception-v3, 63 for AlexNet, 4 for LeNet-5 here) and a default side
(the resolution its pretrained weights were trained at). The policy picks one of:
  native  feed the images as they are (allowed when they are at least the minimum),
  pad     zero-pad, centred, to a size (the reference study padded 28x28 to the minimum),
  resize  bilinear to a size (by default the model's default side, for pretrained weights),
  stem    keep the images as they are and give the network a small-input stem instead (ResNet
          family: the 7x7 stride-2 conv and the max-pool become one 3x3 stride-1 conv, as ResNets
          for CIFAR do), so a 28x28 image keeps its detail instead of being blown up 8-fold.
'auto' is native when the images are big enough, otherwise pad to the minimum, or resize to the
one size a fixed-size model (a ViT) accepts.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .checks import bad_value, one_of, side_pair

POLICIES = ("auto", "native", "pad", "resize", "stem")


@dataclass(frozen=True)
class InputLimits:
    """What a model accepts: sides are (height, width)."""

    min_size: tuple[int, int]
    default_size: tuple[int, int]
    fixed: bool = False  # only default_size works (e.g. a ViT with learned position embeddings)


def plan_input(
    owner: str,
    input_size: tuple[int, int],
    limits: InputLimits,
    policy: str = "auto",
    target_size: int | tuple[int, int] | None = None,
) -> tuple[str, tuple[int, int] | None]:
    """(mode, size) for InputTransform: mode is native, pad or resize; size is None for native."""
    one_of(policy, POLICIES, "input_policy", owner)
    target = side_pair(target_size, "target_size", owner) if target_size is not None else None
    fits = all(i >= m for i, m in zip(input_size, limits.min_size))
    if limits.fixed:
        fits = input_size == limits.min_size
    if policy == "auto":
        if target is not None:
            policy = "pad" if all(t >= i for t, i in zip(target, input_size)) else "resize"
        elif fits:
            return "native", None
        else:
            policy = "resize" if limits.fixed else "pad"
    if policy == "stem":
        if target is not None:
            raise bad_value("target_size", owner, "left out with input_policy 'stem'", target_size)
        return "native", None
    if policy == "native":
        if target is not None:
            raise bad_value("target_size", owner, "left out with input_policy 'native'", target_size)
        if not fits:
            raise ConfigError(
                f"{owner} needs inputs of at least {_side(limits.min_size)}, got {_side(input_size)}: "
                f"use input_policy='pad' or 'resize'"
            )
        return "native", None
    if policy == "pad":
        size = target or tuple(max(i, m) for i, m in zip(input_size, limits.min_size))
        if any(s < i for s, i in zip(size, input_size)):
            raise bad_value("target_size", owner, f"at least the input size {_side(input_size)} to pad to", target)
    else:  # resize
        size = target or limits.default_size
    if limits.fixed and size != limits.min_size:
        raise bad_value("target_size", owner, f"{_side(limits.min_size)}, the one size this model takes", target)
    if any(s < m for s, m in zip(size, limits.min_size)):
        raise bad_value("target_size", owner, f"at least {_side(limits.min_size)}", target_size)
    return policy, tuple(size)


def _side(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"
