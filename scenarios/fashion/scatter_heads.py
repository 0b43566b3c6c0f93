"""dp-fashion consumer step: the two ScatterNet heads of Tramèr & Boneh (2021), as ONNX.

Both read the `scattering` transform's features, ``[81, 7, 7]`` per image (J 2, L 8, the
transform's per-record GroupNorm with 27 groups already applied), so the models hold no
normalisation layer of their own and every trainable layer is a Conv2d or Linear that
fused DP clipping handles:

- ``linear``: Flatten → Linear(81·7·7 → 10), 39,700 parameters (T&B's ScatterNet + linear);
- ``cnn``: Conv3×3(81→16) → tanh → MaxPool2 → Conv3×3(16→32) → tanh → MaxPool2 →
  Flatten → Linear(32 → 32) → tanh → Linear(32 → 10): T&B's small tanh CNN on
  ScatterNet features (their Fashion-MNIST configuration, channels 16 and 32).

    python -m scenarios.fashion.scatter_heads [--head linear|cnn] [--out FILE] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from sealroom.train.export import export_onnx

SCENARIO = Path(__file__).resolve().parents[1] / "dp-fashion"
FEATURE_SHAPE = (81, 7, 7)


class ScatterLinear(nn.Module):
    """A linear classifier on the scattering features."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(81 * 7 * 7, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(x))


class ScatterCNN(nn.Module):
    """T&B's small tanh CNN on the 81×7×7 scattering features (no BatchNorm)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(81, 16, 3, padding=1),
            nn.Tanh(),
            nn.MaxPool2d(2),  # 7×7 → 3×3
            nn.Conv2d(16, 32, 3, padding=1),
            nn.Tanh(),
            nn.MaxPool2d(2),  # 3×3 → 1×1
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


HEADS: dict[str, type[nn.Module]] = {"linear": ScatterLinear, "cnn": ScatterCNN}


def make_head(head: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return HEADS[head]()


def head_onnx_bytes(head: str, seed: int = 0) -> bytes:
    """The head as ONNX (dynamic batch axis), checked with onnxruntime as the room does."""
    return export_onnx(make_head(head, seed), FEATURE_SHAPE).data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--head", choices=sorted(HEADS), default="linear")
    parser.add_argument("--out", type=Path, default=SCENARIO / "model" / "model.onnx")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(head_onnx_bytes(args.head, args.seed))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
