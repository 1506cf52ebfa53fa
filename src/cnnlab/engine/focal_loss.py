"""The focal loss (Lin et al. 2017) as a torch module."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FocalLoss(nn.Module):
    """Focal loss: cross-entropy scaled by (1 - p_true)^gamma, with optional alpha and weights."""

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
