import pytest
import torch
from model_helpers import params
from torch import nn

from cnnlab.errors import ConfigError, UnknownNameError
from cnnlab.models.activations import ACTIVATIONS
from cnnlab.models.rescnn import ResCNN


def conv_params(cin, cout, k, bias=False):
    return cin * cout * k * k + (cout if bias else 0)


def test_default_parameter_count_by_hand():
    bn = lambda c: 2 * c  # noqa: E731 - weight and bias
    stem = conv_params(1, 24, 3) + bn(24)
    stage1 = 2 * conv_params(24, 24, 3) + 2 * bn(24)
    stage2 = conv_params(24, 64, 3) + conv_params(64, 64, 3) + 2 * bn(64) + conv_params(24, 64, 1) + bn(64)
    stage3 = conv_params(64, 128, 3) + conv_params(128, 128, 3) + 2 * bn(128) + conv_params(64, 128, 1) + bn(128)
    head = 128 * 47 + 47
    assert params(ResCNN(num_classes=47)) == stem + stage1 + stage2 + stage3 + head == 299_543


@pytest.mark.parametrize("in_chans, side", [(1, 28), (3, 32)])
def test_output_shape(in_chans, side):
    model = ResCNN(num_classes=10, in_chans=in_chans)
    assert model(torch.randn(2, in_chans, side, side)).shape == (2, 10)


def test_backward_reaches_every_parameter():
    model = ResCNN(num_classes=10)
    model(torch.randn(4, 1, 28, 28)).logsumexp(1).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_batch_norm_off_and_dropout_on():
    model = ResCNN(num_classes=10, batch_norm=False, dropout=0.5)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d))  # no norm to give a bias
    dropout = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(dropout) == 1 and dropout[0].p == 0.5
    x = torch.randn(4, 1, 28, 28)
    model.train()
    assert not torch.equal(model(x), model(x))  # dropout is random in training
    model.eval()
    assert torch.equal(model(x), model(x))


def test_stages_blocks_widths_and_pooling():
    model = ResCNN(num_classes=3, stem=8, widths=[8, 16], blocks=[2, 3], pool="avg")
    blocks = [m for m in model.modules() if type(m).__name__ == "BasicBlock"]
    assert len(blocks) == 5
    assert [b.conv2.out_channels for b in blocks] == [8, 8, 16, 16, 16]
    projections = [b for b in blocks if not isinstance(b.shortcut, nn.Identity)]
    assert len(projections) == 1 and projections[0].shortcut[0].kernel_size == (1, 1)
    assert sum(isinstance(m, nn.AvgPool2d) for m in model.modules()) == 1  # between the two stages only
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 3)


@pytest.mark.parametrize("activation", ACTIVATIONS.names())
def test_every_activation(activation):
    model = ResCNN(num_classes=5, stem=8, widths=[8, 16], activation=activation)
    out = model(torch.randn(2, 1, 28, 28))
    assert out.shape == (2, 5) and torch.isfinite(out).all()


@pytest.mark.parametrize("options, match", [
    ({"dropout": 1.5}, "'dropout' parameter of rescnn must be a float in \\[0, 1\\)"),
    ({"widths": []}, "'widths' parameter"),
    ({"widths": [8, 16], "blocks": [1, 2, 3]}, "'blocks' parameter"),
    ({"pool": "min"}, "'pool' parameter"),
    ({"stem": 0}, "'stem' parameter"),
])
def test_bad_options(options, match):
    with pytest.raises(ConfigError, match=match):
        ResCNN(**options)


def test_unknown_activation():
    with pytest.raises(UnknownNameError, match="did you mean 'gelu'"):
        ResCNN(activation="gelo")
