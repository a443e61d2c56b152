"""A small SqueezeNet (Iandola et al. 2016) built from fire modules, for 28x28 1-channel input.

Layout in the SqueezeNet v1.1 order, narrowed for 28x28 Fashion-MNIST: a 3x3 stem conv,
max-pool, two fire modules, max-pool, two fire modules, dropout, and the SqueezeNet classifier
(a 1x1 conv to the classes, then global average pooling). No BatchNorm, as in the paper (and in
the Deep Compression experiments on it). The ReLU that the original puts after the classifier
conv is left out: the logits stay linear, so a class cannot die at initialisation.

Feature maps: (N, 1, 28, 28) -> stem (N, 32, 28, 28) -> pool (14x14) -> fire2, fire3 (64 channels)
-> pool (7x7) -> fire4, fire5 (128 channels) -> conv10 (N, 10, 7, 7) -> mean -> (N, 10).
MLPerf category "heavy".
"""

from __future__ import annotations

import torch
from torch import nn

STEM_CHANNELS = 32
# (squeeze channels, expand channels per branch): fire2..fire5; the output is 2 x expand.
FIRES = ((16, 32), (16, 32), (32, 64), (32, 64))
# max-pool (2x2, stride 2) before these fire indices (0-based into FIRES)
POOL_BEFORE = (0, 2)


class Fire(nn.Module):
    """Fire module: squeeze 1x1 conv, then expand 1x1 and expand 3x3 convs on the squeezed map,
    concatenated on channels (1x1 first); ReLU after each conv.

    (N, cin, H, W) -> (N, 2 * expand, H, W).
    """

    def __init__(self, cin: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, expand, 1)
        self.expand3x3 = nn.Conv2d(squeeze, expand, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.squeeze(x))
        return torch.cat([torch.relu(self.expand1x1(s)), torch.relu(self.expand3x3(s))], 1)


class SqueezeNetSmall(nn.Module):
    """SqueezeNet from fire modules for (N, 1, 28, 28) input (60,970 parameters)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, dropout: float = 0.2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, STEM_CHANNELS, 3, padding=1)
        cin = STEM_CHANNELS
        self.fire_names = tuple(f"fire{i + 2}" for i in range(len(FIRES)))  # the paper's numbering
        for name, (squeeze, expand) in zip(self.fire_names, FIRES, strict=True):
            self.add_module(name, Fire(cin, squeeze, expand))
            cin = 2 * expand
        self.dropout = nn.Dropout(dropout)
        self.conv10 = nn.Conv2d(cin, num_classes, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.conv10.weight, std=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float32 (N, 1, 28, 28) -> logits (N, num_classes)."""
        x = torch.relu(self.conv1(x))
        for i, name in enumerate(self.fire_names):
            if i in POOL_BEFORE:
                x = torch.max_pool2d(x, 2)
            x = getattr(self, name)(x)
        x = self.conv10(self.dropout(x))
        return x.mean((2, 3))
