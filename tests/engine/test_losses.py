import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnlab.config import build_config
from cnnlab.engine.focal_loss import FocalLoss
from cnnlab.engine.losses import LOSSES, class_weights, make_loss
from cnnlab.errors import ConfigError, UnknownNameError


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
    with pytest.raises(UnknownNameError, match="unknown loss 'hinge'.*known: cross_entropy, focal"):
        make_loss("hinge")


def test_focal_by_name_gets_the_configs_parameters():
    loss = make_loss("focal", weights=[1.0, 2.0], label_smoothing=0.05, gamma=3.0, alpha=0.5)
    assert isinstance(loss, FocalLoss) and (loss.gamma, loss.alpha, loss.label_smoothing) == (3.0, 0.5, 0.05)
    assert loss.weight.tolist() == [1.0, 2.0]


def test_one_registration_makes_a_loss_a_valid_config_value():
    class Hinge(torch.nn.Module):
        def __init__(self, weight=None):
            super().__init__()
            self.weight = weight

        def forward(self, logits, target):
            return torch.nn.functional.multi_margin_loss(logits, target, weight=self.weight)

    LOSSES.register("hinge_test", lambda weight, label_smoothing, gamma, alpha: Hinge(weight))
    try:
        assert build_config(overrides=["train.loss=hinge_test"]).train.loss == "hinge_test"
        loss = make_loss("hinge_test", weights=[1.0, 1.0])
        assert isinstance(loss, Hinge) and loss(torch.tensor([[2.0, 0.0]]), torch.tensor([0])) == 0
    finally:
        LOSSES.unregister("hinge_test")
    with pytest.raises(ConfigError, match="'train.loss' setting must be one of 'cross_entropy', 'focal'"):
        build_config(overrides=["train.loss=hinge_test"])
