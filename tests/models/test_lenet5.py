import pytest
import torch
from model_helpers import params

from cnnlab.errors import ConfigError
from cnnlab.models.activations import ACTIVATIONS, make_activation
from cnnlab.models.lenet5 import LeNet5


def test_classic_parameter_count_on_28x28():
    # C1 156 + C3 2,416 + C5 48,120 + F6 10,164 + output 850 = the textbook 61,706
    assert params(LeNet5(num_classes=10, in_chans=1, input_size=28)) == 61_706


@pytest.mark.parametrize("in_chans, side, flat", [(1, 28, 400), (3, 32, 576), (1, 8, 64), (1, 4, 16)])
def test_output_shape_and_flatten_size(in_chans, side, flat):
    model = LeNet5(num_classes=7, in_chans=in_chans, input_size=side)
    assert model.classifier[1].in_features == flat
    assert model(torch.randn(3, in_chans, side, side)).shape == (3, 7)


def test_rectangular_input():
    model = LeNet5(num_classes=5, in_chans=1, input_size=(28, 8))
    assert model(torch.randn(2, 1, 28, 8)).shape == (2, 5)


def test_backward_reaches_every_parameter():
    model = LeNet5(num_classes=10)
    model(torch.randn(4, 1, 28, 28)).logsumexp(1).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("activation", ACTIVATIONS.names())
def test_every_activation(activation):
    model = LeNet5(num_classes=10, activation=activation, pool="max")
    out = model(torch.randn(2, 1, 28, 28))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    kind = type(make_activation(activation))
    assert sum(isinstance(m, kind) for m in model.modules()) == 4  # after C1, C3, C5 and F6


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="'pool' parameter of lenet5"):
        LeNet5(pool="median")
    with pytest.raises(ConfigError, match="'input_size' parameter of lenet5"):
        LeNet5(input_size=3)
