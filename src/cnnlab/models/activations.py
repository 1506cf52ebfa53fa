"""Activation functions by name, so every model that takes one accepts the same names.

The registry maps a name to a torch.nn class name (not the class) so that listing names or
validating a config never imports torch. One call adds a name every model then accepts:

    ACTIVATIONS.register("hardswish", ("Hardswish", {}))
"""

from __future__ import annotations

from ..registry import Registry

# name -> (torch.nn class name, constructor kwargs)
ACTIVATIONS: Registry[tuple[str, dict]] = Registry("activation")
ACTIVATIONS.register("relu", ("ReLU", {}))
ACTIVATIONS.register("leaky_relu", ("LeakyReLU", {"negative_slope": 0.01}))
ACTIVATIONS.register("elu", ("ELU", {}))
ACTIVATIONS.register("selu", ("SELU", {}))
ACTIVATIONS.register("sigmoid", ("Sigmoid", {}))
ACTIVATIONS.register("tanh", ("Tanh", {}))
ACTIVATIONS.register("softsign", ("Softsign", {}))
ACTIVATIONS.register("silu", ("SiLU", {}))
ACTIVATIONS.register("swish", ("SiLU", {}))  # swish with beta=1 is SiLU
ACTIVATIONS.register("gelu", ("GELU", {}))
ACTIVATIONS.register("mish", ("Mish", {}))
# Softmax as a hidden activation (the reference study tried it): normalise over channels/features.
ACTIVATIONS.register("softmax", ("Softmax", {"dim": 1}))


def check_activation(name: str) -> str:
    """`name` if it is a known activation, else UnknownNameError with the closest names."""
    ACTIVATIONS.get(name)
    return name


def make_activation(name: str):
    """A fresh torch.nn.Module for the activation `name` (e.g. 'relu', 'swish', 'softmax')."""
    from torch import nn

    class_name, kwargs = ACTIVATIONS.get(name)
    return getattr(nn, class_name)(**kwargs)
