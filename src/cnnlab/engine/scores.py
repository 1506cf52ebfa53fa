"""Scores of predictions against true labels, computed one way for the evaluation during training and
for the analysis of saved predictions: numpy arrays in, floats out (torch is not needed)."""

from __future__ import annotations

import math

import numpy as np


def top_k_accuracy(labels, logits, k: int = 5) -> float | None:
    """Share of the rows whose true class is among the `k` highest logits; None with `k` classes or fewer
    (every row would count). nan without rows."""
    labels, logits = np.asarray(labels), np.asarray(logits)
    if logits.ndim != 2 or logits.shape[1] <= k:
        return None
    if len(labels) == 0:
        return math.nan
    # a partial sort is enough: which k classes lead, not their order
    top = np.argpartition(-logits, k, axis=1)[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def macro_f1(labels, predicted) -> float:
    """F1 averaged over the classes that occur among the labels (a class never true is left out rather than
    counted as 0, so a test set without some class is not penalised for it); nan without rows."""
    from sklearn.metrics import f1_score

    labels, predicted = np.asarray(labels), np.asarray(predicted)
    if len(labels) == 0:
        return math.nan
    return float(f1_score(labels, predicted, labels=np.unique(labels), average="macro", zero_division=0))
