"""Losses by name (cross-entropy with label smoothing and class weights, focal) and class-weight policies.

LOSSES is a registry, so one call adds a choice that `train.loss` then accepts:

    LOSSES.register("mine", lambda weight, label_smoothing, gamma, alpha: MyLoss(weight=weight))

torch and numpy are imported when a loss is built, not with this module: the config validates names from here.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ConfigError
from ..registry import Registry

# name -> builder(weight: float tensor per class or None, label_smoothing, gamma, alpha) -> torch.nn.Module
LOSSES: Registry[Callable] = Registry("loss")


@LOSSES.register("cross_entropy")
def _cross_entropy(weight, label_smoothing: float, **_):
    from torch import nn

    return nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)


@LOSSES.register("focal")
def _focal(weight, label_smoothing: float, gamma: float, alpha: float | None, **_):
    from .focal_loss import FocalLoss

    return FocalLoss(gamma, alpha, weight, label_smoothing)


def make_loss(kind: str = "cross_entropy", weights=None, label_smoothing: float = 0.0, gamma: float = 2.0,
              alpha: float | None = None):
    """The loss module `kind` (a LOSSES name); weights: one per class, or None."""
    import torch

    build = LOSSES.get(kind)
    weight = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    return build(weight=weight, label_smoothing=label_smoothing, gamma=gamma, alpha=alpha)


def class_weights(labels, num_classes: int, policy):
    """None, scikit-learn's 'balanced' weights, their square root, or the given list (a numpy array)."""
    import numpy as np

    if policy in (None, "none"):
        return None
    if isinstance(policy, (list, tuple)):
        if len(policy) != num_classes:
            raise ConfigError(f"train.class_weights has {len(policy)} values but the data has {num_classes} classes")
        return np.asarray(policy, dtype=np.float64)
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(labels)
    weights = np.ones(num_classes)
    weights[present] = compute_class_weight("balanced", classes=present, y=labels)
    return {"balanced": weights, "sqrt_balanced": np.sqrt(weights)}[policy]
