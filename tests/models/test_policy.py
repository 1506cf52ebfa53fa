import pytest

from cnnlab.errors import ConfigError
from cnnlab.models.policy import InputLimits, plan_input

INCEPTION = InputLimits((75, 75), (299, 299))
RESNET = InputLimits((1, 1), (224, 224))
VIT = InputLimits((224, 224), (224, 224), fixed=True)


def test_auto_is_native_when_big_enough_else_pads_to_the_minimum():
    assert plan_input("m", (28, 28), RESNET) == ("native", None)
    assert plan_input("m", (28, 28), INCEPTION) == ("pad", (75, 75))
    assert plan_input("m", (28, 28), VIT) == ("resize", (224, 224))


def test_auto_with_a_target_pads_up_and_resizes_down():
    assert plan_input("m", (28, 28), RESNET, target_size=32) == ("pad", (32, 32))
    assert plan_input("m", (64, 64), RESNET, target_size=32) == ("resize", (32, 32))


def test_explicit_policies():
    assert plan_input("m", (28, 28), INCEPTION, "resize") == ("resize", (299, 299))
    assert plan_input("m", (28, 28), INCEPTION, "resize", 80) == ("resize", (80, 80))
    assert plan_input("m", (28, 28), RESNET, "pad") == ("pad", (28, 28))
    assert plan_input("m", (28, 28), RESNET, "pad", (32, 40)) == ("pad", (32, 40))
    assert plan_input("m", (80, 80), INCEPTION, "native") == ("native", None)


@pytest.mark.parametrize("args, match", [
    (((28, 28), INCEPTION, "native"), "needs inputs of at least 75x75.*input_policy='pad' or 'resize'"),
    (((28, 28), INCEPTION, "pad", 60), "'target_size' parameter of m must be at least 75x75"),
    (((28, 28), RESNET, "pad", 20), "'target_size'.*at least the input size 28x28"),
    (((28, 28), VIT, "resize", 100), "the one size this model takes"),
    (((28, 28), RESNET, "stretch"), "'input_policy' parameter of m must be one of 'auto', 'native'"),
])
def test_impossible_plans_are_config_errors(args, match):
    with pytest.raises(ConfigError, match=match):
        plan_input("m", *args)
