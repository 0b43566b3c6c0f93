"""DP-MNIST consumer step: the DP-friendly CNN, exported to ONNX.

Lives beside the MNIST scenario's code so the DP-MNIST story (scenarios/dp-mnist) can run
it as ``python -m scenarios.mnist.dp_cnn --out DIR/model.onnx``.

The architecture is the end-to-end CNN of Papernot et al. (2021, "Tempered sigmoid
activations for deep learning with differential privacy") that Tramèr & Boneh (2021)
use as their baseline: tanh activations (bounded, so clipped gradients lose less),
no BatchNorm (batch statistics mix records and break per-example clipping), 26k
parameters. Reuses the MNIST scenario's ONNX export.

    python -m scenarios.mnist.dp_cnn [--out scenarios/dp-mnist/model/model.onnx]
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from scenarios.mnist.save_model import export_cli

SCENARIO = Path(__file__).resolve().parents[1] / "dp-mnist"


class DPCNN(nn.Module):
    """conv8x8/2 → tanh → maxpool2/1 → conv4x4/2 → tanh → maxpool2/1 → fc32 → tanh → fc10."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 8, stride=2, padding=3),
            nn.Tanh(),
            nn.MaxPool2d(2, 1),
            nn.Conv2d(16, 32, 4, stride=2),
            nn.Tanh(),
            nn.MaxPool2d(2, 1),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 4 * 4, 32), nn.Tanh(), nn.Linear(32, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def make_model(seed: int = 0) -> DPCNN:
    torch.manual_seed(seed)
    return DPCNN()


def main() -> None:
    export_cli(make_model, SCENARIO / "model" / "model.onnx", __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
