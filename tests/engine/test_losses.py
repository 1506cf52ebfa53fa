import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnlab.engine.losses import FocalLoss, class_weights, make_loss
from cnnlab.errors import ConfigError


def test_focal_with_gamma_zero_is_cross_entropy():
    logits = torch.randn(32, 5, generator=torch.Generator().manual_seed(0))
    target = torch.arange(32) % 5
    assert torch.allclose(FocalLoss(gamma=0)(logits, target), F.cross_entropy(logits, target))


def test_focal_down_weights_easy_examples():
    target = torch.tensor([0, 0])
    easy = torch.tensor([[6.0, 0, 0], [6.0, 0, 0]])
    hard = torch.tensor([[0.2, 0, 0], [0.2, 0, 0]])
    ratio_focal = FocalLoss(gamma=2)(easy, target) / FocalLoss(gamma=2)(hard, target)
    ratio_ce = F.cross_entropy(easy, target) / F.cross_entropy(hard, target)
    assert ratio_focal < ratio_ce / 10


def test_focal_value_by_hand():
    logits = torch.tensor([[2.0, 0.0]])
    p = torch.softmax(logits, 1)[0, 0]
    expected = 0.25 * (1 - p) ** 2 * -torch.log(p)
    assert torch.allclose(FocalLoss(gamma=2, alpha=0.25)(logits, torch.tensor([0])), expected)


def test_class_weight_policies():
    labels = np.array([0] * 90 + [1] * 10)
    balanced = class_weights(labels, 2, "balanced")
    assert balanced == pytest.approx([100 / (2 * 90), 100 / (2 * 10)])
    assert class_weights(labels, 2, "sqrt_balanced") == pytest.approx(np.sqrt(balanced))
    assert class_weights(labels, 2, "none") is None
    assert class_weights(labels, 2, [1, 3]).tolist() == [1, 3]
    with pytest.raises(ConfigError, match="has 3 values but the data has 2 classes"):
        class_weights(labels, 2, [1, 2, 3])


def test_weighted_cross_entropy_with_smoothing_uses_torch():
    loss = make_loss("cross_entropy", weights=[1.0, 3.0], label_smoothing=0.1)
    assert isinstance(loss, torch.nn.CrossEntropyLoss) and loss.label_smoothing == 0.1
    assert loss.weight.tolist() == [1.0, 3.0]
    with pytest.raises(ConfigError):
        make_loss("hinge")
