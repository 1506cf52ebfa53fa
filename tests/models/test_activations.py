import pytest
import torch

from cnnlab.errors import UnknownNameError
from cnnlab.models.activations import ACTIVATIONS, make_activation

NAMES = ["relu", "leaky_relu", "elu", "selu", "sigmoid", "tanh", "softsign", "silu", "swish", "gelu", "mish", "softmax"]


def test_every_issue_activation_is_registered():
    assert set(NAMES) <= set(ACTIVATIONS.names())


@pytest.mark.parametrize("name", NAMES)
def test_activation_runs_keeps_shape_and_has_gradient(name):
    x = torch.linspace(-3, 3, 2 * 4 * 3 * 3).reshape(2, 4, 3, 3).requires_grad_()
    y = make_activation(name)(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.sum().backward() if name != "softmax" else (y * x.detach()).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_known_values():
    x = torch.tensor([[-1.0, 0.0, 2.0]])
    assert torch.equal(make_activation("relu")(x), torch.tensor([[0.0, 0.0, 2.0]]))
    assert torch.allclose(make_activation("leaky_relu")(x), torch.tensor([[-0.01, 0.0, 2.0]]))
    assert torch.allclose(make_activation("softsign")(x), torch.tensor([[-0.5, 0.0, 2 / 3]]))
    assert torch.allclose(make_activation("swish")(x), x * torch.sigmoid(x))


def test_softmax_normalises_over_channels():
    x = torch.randn(2, 5, 3, 3)
    y = make_activation("softmax")(x)
    assert torch.allclose(y.sum(dim=1), torch.ones(2, 3, 3))


def test_each_call_gives_a_fresh_module():
    assert make_activation("relu") is not make_activation("relu")


def test_unknown_activation_suggests_the_closest():
    with pytest.raises(UnknownNameError, match="did you mean 'relu'") as info:
        make_activation("rlu")
    assert "leaky_relu" in str(info.value)  # the known names are listed


def test_one_registration_makes_an_activation_every_model_accepts():
    from cnnlab.models import create_model

    ACTIVATIONS.register("hardswish_test", ("Hardswish", {}))
    try:
        assert isinstance(make_activation("hardswish_test"), torch.nn.Hardswish)
        for name in ("lenet5", "rescnn"):
            built = create_model(name, 10, 1, (28, 28), activation="hardswish_test")
            assert any(isinstance(m, torch.nn.Hardswish) for m in built.module.modules()), name
    finally:
        ACTIVATIONS.unregister("hardswish_test")
    with pytest.raises(UnknownNameError, match="unknown activation 'hardswish_test'"):
        make_activation("hardswish_test")
