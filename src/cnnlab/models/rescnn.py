"""rescnn: our configurable residual CNN for small images (28x28 characters, 32x32 CIFAR).

stem conv 3x3 -> stage 1 -> pool -> stage 2 -> pool -> ... -> global average pool -> dropout -> linear.
Each stage is `blocks` basic residual blocks (two 3x3 convs, He et al. 2016) at one width; a
block that changes the width projects its shortcut with a 1x1 conv. Pooling sits between stages
only, so a 28x28 input is seen at 28, 14 and 7 pixels by the default three stages.

The defaults (stem 24, widths 24/64/128, one block each) give ~0.30M parameters and ~30M MACs
(~60 MFLOP) per 1x28x28 image: the budget the issue's speed targets are stated for.
"""

from __future__ import annotations

import torch
from torch import nn

from .activations import check_activation, make_activation
from .checks import int_list, one_of, positive_int, probability

DEFAULTS = {"stem": 24, "widths": (24, 64, 128), "blocks": 1}


def _norm(width: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm2d(width) if batch_norm else nn.Identity()


class BasicBlock(nn.Module):
    """act(conv-bn-act-conv-bn(x) + shortcut(x)); the shortcut is a 1x1 conv (+bn) when widths differ."""

    def __init__(self, in_width: int, out_width: int, activation: str, batch_norm: bool):
        super().__init__()
        bias = not batch_norm  # a conv followed by batch norm gets its bias from the norm
        self.conv1 = nn.Conv2d(in_width, out_width, 3, padding=1, bias=bias)
        self.norm1 = _norm(out_width, batch_norm)
        self.act1 = make_activation(activation)
        self.conv2 = nn.Conv2d(out_width, out_width, 3, padding=1, bias=bias)
        self.norm2 = _norm(out_width, batch_norm)
        if in_width == out_width:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(in_width, out_width, 1, bias=bias), _norm(out_width, batch_norm))
        self.act2 = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm2(self.conv2(self.act1(self.norm1(self.conv1(x)))))
        return self.act2(out + self.shortcut(x))


class ResCNN(nn.Module):
    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 1,
        stem: int = DEFAULTS["stem"],
        widths: int | list[int] | tuple[int, ...] = DEFAULTS["widths"],
        blocks: int | list[int] | tuple[int, ...] = DEFAULTS["blocks"],
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = True,
        pool: str = "max",
    ):
        super().__init__()
        positive_int(num_classes, "num_classes", "rescnn")
        positive_int(in_chans, "in_chans", "rescnn")
        positive_int(stem, "stem", "rescnn")
        widths = int_list([widths] if isinstance(widths, int) else widths, "widths", "rescnn")
        blocks = int_list(blocks, "blocks", "rescnn", length=len(widths))
        check_activation(activation)
        probability(dropout, "dropout", "rescnn")
        pool_layer = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}[one_of(pool, ("max", "avg"), "pool", "rescnn")]
        batch_norm = bool(batch_norm)

        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, stem, 3, padding=1, bias=not batch_norm),
            _norm(stem, batch_norm),
            make_activation(activation),
        )
        stages: list[nn.Module] = []
        width = stem
        for index, (stage_width, count) in enumerate(zip(widths, blocks)):
            layers: list[nn.Module] = [pool_layer(2)] if index > 0 else []
            for _ in range(count):
                layers.append(BasicBlock(width, stage_width, activation, batch_norm))
                width = stage_width
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(width, num_classes)
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):  # He init, as for ResNets; torch's default is tuned for linear layers
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


def min_side(widths=DEFAULTS["widths"], **_) -> int:
    """The smallest input side that survives the pools between stages."""
    return 2 ** (len([widths] if isinstance(widths, int) else list(widths)) - 1)


def build(num_classes: int, in_chans: int, input_size: tuple[int, int], **options) -> ResCNN:
    return ResCNN(num_classes=num_classes, in_chans=in_chans, **options)


MODEL = ResCNN
