"""Losses: cross-entropy with label smoothing and class weights (torch's), focal loss, class-weight policies."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError


def class_weights(labels: np.ndarray, num_classes: int, policy) -> np.ndarray | None:
    """None, scikit-learn's 'balanced' weights, their square root, or the given list."""
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
    if policy == "balanced":
        return weights
    if policy == "sqrt_balanced":
        return np.sqrt(weights)
    raise ConfigError(f"train.class_weights must be none, balanced, sqrt_balanced or a list. Got {policy!r} instead.")


def make_loss(kind: str = "cross_entropy", weights=None, label_smoothing: float = 0.0, gamma: float = 2.0,
              alpha: float | None = None) -> nn.Module:
    weight = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    if kind == "cross_entropy":
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)
    if kind == "focal":
        return FocalLoss(gamma, alpha, weight, label_smoothing)
    raise ConfigError(f"train.loss must be cross_entropy or focal. Got {kind!r} instead.")


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): cross-entropy scaled by (1 - p_true)^gamma, with optional alpha and weights."""

    def __init__(self, gamma: float = 2.0, alpha: float | None = None, weight=None, label_smoothing: float = 0.0):
        super().__init__()
        self.gamma, self.alpha, self.label_smoothing = gamma, alpha, label_smoothing
        self.register_buffer("weight", weight)

    def forward(self, logits, target):
        logits = logits.float()
        ce = F.cross_entropy(logits, target, weight=self.weight, reduction="none", label_smoothing=self.label_smoothing)
        p_true = torch.softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
        loss = (1 - p_true).pow(self.gamma) * ce
        if self.alpha is not None:
            loss = self.alpha * loss
        return loss.mean()
