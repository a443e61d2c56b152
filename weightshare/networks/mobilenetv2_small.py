"""A reduced MobileNetV2 (inverted residuals with depthwise 3x3 convs) for 28x28 1-channel input.

Stem 3x3 conv (stride 1), then inverted-residual stages ``(expansion t, channels c, blocks n,
stride s)`` as in Sandler et al. 2018 but narrower and shallower for 28x28 images, a 1x1 conv to
``LAST_CHANNELS`` and a linear classifier. MLPerf category "light".
"""

from __future__ import annotations

import torch
from torch import nn

# (t, c, n, s): expansion, output channels, repeats, stride of the first block
STAGES = ((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2), (4, 64, 2, 2), (4, 96, 1, 1))
STEM_CHANNELS = 16
LAST_CHANNELS = 256


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act=True):
    layers = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """1x1 expand, 3x3 depthwise, 1x1 linear projection; identity shortcut when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        layers = [] if expansion == 1 else [_conv_bn(cin, hidden, 1)]
        layers += [
            _conv_bn(hidden, hidden, 3, stride, groups=hidden),
            _conv_bn(hidden, cout, 1, act=False),
        ]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.residual else out


class MobileNetV2Small(nn.Module):
    """Reduced MobileNetV2 for (N, 1, 28, 28) input."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, dropout: float = 0.2) -> None:
        super().__init__()
        layers = [_conv_bn(in_channels, STEM_CHANNELS, 3)]
        cin = STEM_CHANNELS
        for t, c, n, s in STAGES:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(_conv_bn(cin, LAST_CHANNELS, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(LAST_CHANNELS, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float32 (N, 1, 28, 28) -> logits (N, num_classes)."""
        x = self.features(x)
        x = torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)
