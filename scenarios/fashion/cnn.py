"""Fashion-MNIST consumer step: a small CNN with BatchNorm and Dropout, exported to ONNX.

The export keeps the layers' training behaviour (BatchNorm's batch statistics and running
averages, Dropout), so the room trains this network as written, not a folded copy. Not for a
privacy contract: BatchNorm mixes the records of a batch (use GroupNorm there).

    python -m scenarios.fashion.cnn [--out scenarios/fashion/model/model.onnx] [--seed 0]
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from scenarios.mnist.save_model import export_cli

HERE = Path(__file__).resolve().parent
INPUT_SHAPE = (1, 28, 28)


class FashionCNN(nn.Module):
    """Two conv blocks with BatchNorm, Dropout before the head: about 60k parameters."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.25), nn.Linear(32 * 7 * 7, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def make_model(seed: int = 0) -> FashionCNN:
    torch.manual_seed(seed)
    return FashionCNN()


def main() -> None:
    export_cli(make_model, HERE / "model" / "model.onnx", __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
