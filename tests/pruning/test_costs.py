"""MAC and parameter counts: stride, padding, groups, zeros skipped; latency is measured."""

from __future__ import annotations

import torch
from torch import nn

from weightshare.networks.lenet import LeNet5
from weightshare.pruning.costs import latency_ms, layer_costs, totals


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, stride=2, padding=1)  # 9x9 -> 5x5
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.fc = nn.Linear(200, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.dw(self.conv(x)), 1))


def test_counts_follow_stride_padding_and_groups():
    torch.manual_seed(0)
    net = _Net()
    with torch.no_grad():
        net.conv.weight[:, :2] = 0.0  # half of each filter
        net.fc.weight[:5] = 0.0
    rows = {r.name: r for r in layer_costs(net, (4, 9, 9))}
    assert (rows["conv"].macs, rows["conv"].sparse_macs) == (25 * 8 * 36, 25 * 8 * 18)
    assert (rows["dw"].kind, rows["dw"].macs, rows["dw"].params) == ("depthwise", 25 * 8 * 9, 72)
    assert (rows["fc"].macs, rows["fc"].sparse_macs, rows["fc"].params) == (2000, 1000, 2010)
    assert rows["conv"].output_shape == (8, 5, 5)


def test_lenet5_totals():
    t = totals(layer_costs(LeNet5(), (1, 28, 28)))
    assert t["params"] == 61706
    assert t["macs"] == 6 * 28 * 28 * 25 + 16 * 10 * 10 * 150 + 48000 + 10080 + 840


def test_latency_is_a_positive_median():
    assert latency_ms(LeNet5(), (1, 28, 28), 2, repeats=3) > 0
