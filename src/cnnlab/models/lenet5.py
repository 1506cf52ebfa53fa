"""LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998), the classic layout with a selectable activation.

C1 6@5x5 -> S2 2x2 pool -> C3 16@5x5 -> S4 2x2 pool -> C5 120 -> F6 84 -> classes.
C1 pads by 2 so a 28x28 digit gives the 28x28 C1 maps the paper got from its 32x32 padded field.
Departures from the paper, as in every modern reproduction: C3 is fully connected to S2 (not the
paper's sparse table), pooling has no trainable coefficient, and the output layer is linear, not
RBF. C1 pads by 2 at every size and the flatten size is computed from the input size, so 32x32
(CIFAR: 16x6x6 = 576 inputs to C5, not the paper's 400) and 8x8 (scikit-learn's digits) inputs
work too; below 10x10 C3 pads by 2 as well so its 5x5 kernel still fits.
"""

from __future__ import annotations

import torch
from torch import nn

from .activations import check_activation, make_activation
from .checks import bad_value, one_of, positive_int, side_pair

MIN_SIDE = 4  # the smallest side whose feature map survives both 2x2 pools


def _c3_padding(side: int) -> int:
    return 0 if side // 2 >= 5 else 2


def _feature_side(side: int) -> int:
    s2 = side // 2  # C1 keeps the side (padding 2), S2 halves it
    c3 = s2 - 4 + 2 * _c3_padding(side)
    return c3 // 2


class LeNet5(nn.Module):
    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 1,
        input_size: int | tuple[int, int] = 28,
        activation: str = "tanh",
        pool: str = "avg",
    ):
        super().__init__()
        positive_int(num_classes, "num_classes", "lenet5")
        positive_int(in_chans, "in_chans", "lenet5")
        height, width = side_pair(input_size, "input_size", "lenet5")
        if min(height, width) < MIN_SIDE:
            raise bad_value("input_size", "lenet5", f"at least {MIN_SIDE}x{MIN_SIDE}", input_size)
        check_activation(activation)
        pool_layer = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}[one_of(pool, ("avg", "max"), "pool", "lenet5")]
        flat = 16 * _feature_side(height) * _feature_side(width)
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 6, 5, padding=2),
            make_activation(activation),
            pool_layer(2),
            nn.Conv2d(6, 16, 5, padding=(_c3_padding(height), _c3_padding(width))),
            make_activation(activation),
            pool_layer(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, 120),
            make_activation(activation),
            nn.Linear(120, 84),
            make_activation(activation),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def build(num_classes: int, in_chans: int, input_size: tuple[int, int], **options) -> LeNet5:
    return LeNet5(num_classes=num_classes, in_chans=in_chans, input_size=input_size, **options)


MODEL = LeNet5


def min_side(**options) -> int:
    return MIN_SIDE
