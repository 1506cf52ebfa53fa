"""The scores training and analysis share (engine/scores.py): top-k accuracy and macro-F1 against
scikit-learn and by hand, and the trainer's evaluation reporting exactly these."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from cnnlab.engine.scores import macro_f1, top_k_accuracy
from cnnlab.engine.trainer import summarize


def random_logits(seed: int, n: int = 200, classes: int = 12):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.arange(classes), rng.integers(0, classes, n - classes)])
    logits = rng.normal(size=(n, classes)).astype(np.float32)
    logits[np.arange(n // 3), labels[: n // 3]] += 2.0
    return labels, logits


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_top_k_accuracy_matches_scikit_learn(seed, k):
    labels, logits = random_logits(seed)
    expected = skm.top_k_accuracy_score(labels, logits, k=k, labels=np.arange(logits.shape[1]))
    assert top_k_accuracy(labels, logits, k) == pytest.approx(expected)


def test_top_1_is_the_accuracy_and_top_5_by_hand():
    labels, logits = random_logits(3)
    assert top_k_accuracy(labels, logits, 1) == pytest.approx((logits.argmax(1) == labels).mean())
    # the true class ranked 1st, 5th, 6th (last) and 5th
    logits = np.array([[9, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]], np.float32)
    assert top_k_accuracy(np.array([0, 1, 0, 4]), logits, 5) == pytest.approx(3 / 4)


def test_top_k_means_nothing_with_k_classes_or_fewer_and_is_nan_without_rows():
    assert top_k_accuracy([0, 1], np.eye(2, 5, dtype=np.float32), 5) is None
    assert top_k_accuracy([0], np.zeros((1, 3)), 5) is None
    assert math.isnan(top_k_accuracy(np.zeros(0, int), np.zeros((0, 8)), 5))


def test_macro_f1_matches_scikit_learn_over_the_classes_that_occur():
    labels, logits = random_logits(4)
    predicted = logits.argmax(1)
    assert macro_f1(labels, predicted) == pytest.approx(skm.f1_score(labels, predicted, average="macro"))
    # class 2 is predicted but never true: left out of the average, not counted as a 0
    assert macro_f1([0, 0, 1, 1], [0, 2, 1, 1]) == pytest.approx((2 / 3 + 1) / 2)
    assert math.isnan(macro_f1([], []))


def test_the_trainer_reports_these_scores():
    labels, logits = random_logits(5, classes=10)
    result = summarize(torch.from_numpy(logits), torch.from_numpy(labels))
    assert result.top5 == top_k_accuracy(labels, logits, 5)
    assert result.top5 == pytest.approx((torch.from_numpy(logits).topk(5, dim=1).indices
                                         == torch.from_numpy(labels)[:, None]).any(1).float().mean().item())
    assert result.macro_f1 == macro_f1(labels, logits.argmax(1))
    assert summarize(torch.from_numpy(logits[:, :5]), torch.from_numpy(labels % 5)).top5 is None
