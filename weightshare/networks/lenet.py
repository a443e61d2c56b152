"""LeNet-300-100, LeNet-5 and Caffe's LeNet for 28x28 single-channel input (10 classes)."""

from __future__ import annotations

import torch
from torch import nn


class LeNet300(nn.Module):
    """LeNet-300-100: 784-300-100-10 fully connected, ReLU (266,610 parameters)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float32 (N, 1, 28, 28) -> logits (N, num_classes)."""
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


class LeNet5(nn.Module):
    """LeNet-5 (LeCun 1998) with ReLU and max pooling: conv 6@5x5, conv 16@5x5, 120-84-10."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float32 (N, 1, 28, 28) -> logits (N, num_classes)."""
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


class LeNet5Caffe(nn.Module):
    """Caffe's LeNet (``examples/mnist/lenet_train_test.prototxt``), the "LeNet-5" of Deep
    Compression (Han et al. 2016, table 3: 431K weights): conv 20@5x5, max-pool, conv 50@5x5,
    max-pool, fc 500, ReLU, fc 10 (431,080 parameters).

    As in Caffe, the convolutions have no activation; the only ReLU follows ``fc1``.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.fc1 = nn.Linear(50 * 4 * 4, 500)
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float32 (N, 1, 28, 28) -> logits (N, num_classes)."""
        x = torch.max_pool2d(self.conv1(x), 2)  # (N, 20, 12, 12)
        x = torch.max_pool2d(self.conv2(x), 2)  # (N, 50, 4, 4)
        x = torch.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)
