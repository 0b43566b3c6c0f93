"""Consumer step: define the base CNN in PyTorch and export it to ONNX (``model/model.onnx``).

This runs on the consumer's machine, not in the room: the room only ever sees the
ONNX graph, which it converts with onnx2torch (no Python code from the consumer runs).
The export keeps training behaviour: a BatchNorm or Dropout written here is trained as
such in the room (docs/models.md says what survives the export and what is refused).

    python scenarios/mnist/save_model.py [--out scenarios/mnist/model/model.onnx] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from sealroom.files import write_atomic
from sealroom.train.export import ExportError, export_onnx

HERE = Path(__file__).resolve().parent
INPUT_SHAPE = (1, 28, 28)


class MnistCNN(nn.Module):
    """Two conv blocks and a small head: ~100k parameters, >0.95 on digits in a few epochs."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def model_onnx_bytes(model: nn.Module) -> bytes:
    """The model as ONNX with a dynamic batch axis, checked with onnxruntime (as the room does)."""
    return export_onnx(model, INPUT_SHAPE).data


def make_model(seed: int = 0) -> MnistCNN:
    torch.manual_seed(seed)
    return MnistCNN()


def export_cli(make: Callable[[int], nn.Module], default_out: Path, description: str) -> None:
    """``--out FILE --seed N``: build the model with ``make(seed)`` and write its ONNX bytes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        data = model_onnx_bytes(make(args.seed))
    except ExportError as exc:  # one line naming the layer, nothing written
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out, data)
    print(f"wrote {args.out}")


def main() -> None:
    export_cli(make_model, HERE / "model" / "model.onnx", __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
