"""The testbed's model registry: architecture names mapped to builders, nothing else.

Every network works on 1-channel 28x28 (Fashion-MNIST) and 8x8 (digits) images, exports
to ONNX with operators the room's checker allows, and trains in seconds on a CPU for
the small subsets the testbed uses. ``dp-cnn`` uses GroupNorm and no BatchNorm so Opacus
can compute per-sample gradients without changing it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from sealroom.errors import LabError

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class ModelSpec:
    build: Callable[[Shape, int], nn.Module]
    private: bool  # trained with DP-SGD
    description: str


def _flat_size(features: nn.Module, shape: Shape) -> int:
    with torch.no_grad():
        return int(features(torch.zeros(1, *shape)).numel())


def mlp(shape: Shape, classes: int) -> nn.Module:
    c, h, w = shape
    return nn.Sequential(
        nn.Flatten(), nn.Linear(c * h * w, 128), nn.ReLU(), nn.Linear(128, classes)
    )


def lenet(shape: Shape, classes: int) -> nn.Module:
    """LeNet-5 layout (two conv + pool stages, three dense layers), padded for 8x8 inputs."""
    features = nn.Sequential(
        nn.Conv2d(shape[0], 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
    )  # fmt: skip
    flat = _flat_size(features, shape)
    return nn.Sequential(
        features, nn.Linear(flat, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, classes),
    )  # fmt: skip


class BasicBlock(nn.Module):
    """ResNet's two-convolution residual block (He et al. 2016), 1x1 projection on change."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """A three-block ResNet (16-32-32 channels) with global average pooling."""

    def __init__(self, shape: Shape, classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(shape[0], 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        )
        self.blocks = nn.Sequential(
            BasicBlock(16, 16, 1), BasicBlock(16, 32, 2), BasicBlock(32, 32, 2)
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def dp_cnn(shape: Shape, classes: int) -> nn.Module:
    """A small tanh CNN with GroupNorm: layers Opacus computes per-sample gradients for."""
    features = nn.Sequential(
        nn.Conv2d(shape[0], 16, 3, padding=1), nn.GroupNorm(4, 16), nn.Tanh(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.GroupNorm(4, 32), nn.Tanh(), nn.MaxPool2d(2),
        nn.Flatten(),
    )  # fmt: skip
    return nn.Sequential(features, nn.Linear(_flat_size(features, shape), classes))


MODELS: dict[str, ModelSpec] = {
    "mlp": ModelSpec(mlp, False, "two dense layers (128 hidden units)"),
    "lenet": ModelSpec(lenet, False, "LeNet-5 style CNN"),
    "resnet": ModelSpec(SmallResNet, False, "small ResNet, three basic blocks"),
    "dp-cnn": ModelSpec(dp_cnn, True, "GroupNorm CNN trained with DP-SGD (Opacus)"),
}


def model_spec(arch: str) -> ModelSpec:
    spec = MODELS.get(arch)
    if spec is None:
        raise LabError(f"arch {str(arch)[:40]!r} is not a model (known: {', '.join(MODELS)})")
    return spec
