"""The two models the inference benchmark times, built offline and deterministically.

- ``mnist``: the MNIST scenario's CNN (scenarios/mnist/save_model.py), input ``[1, 28, 28]``:
  small, so a request's cost is mostly HTTP and crypto.
- ``resnet18``: torchvision's ResNet-18 (10 classes) adapted to 32×32 inputs the CIFAR way
  (3×3 stem, stride 1, no max-pool), input ``[3, 32, 32]``: compute dominates the request,
  which is where dynamic batching pays. Random weights from a fixed seed: we time it, we do
  not score it.

Both are exported with the repo's exporter (opset 17, dynamic batch axis, checked against
torch with onnxruntime) and pass the room's ONNX check (operator allow-list included).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sealroom.train.export import export_onnx
from sealroom.train.onnx_check import check_onnx


@dataclass(frozen=True)
class BenchModel:
    """An ONNX model and the shape of one example (no batch axis)."""

    name: str
    onnx: bytes
    shape: tuple[int, ...]


def mnist_cnn(seed: int = 0) -> BenchModel:
    from scenarios.mnist.save_model import INPUT_SHAPE, make_model, model_onnx_bytes

    return _checked(BenchModel("mnist-cnn", model_onnx_bytes(make_model(seed)), INPUT_SHAPE))


def resnet18_32(seed: int = 0) -> BenchModel:
    from torchvision.models import resnet18

    torch.manual_seed(seed)
    model = resnet18(num_classes=10)
    # 32×32 inputs: a 7×7 stride-2 stem and a max-pool would leave 1×1 maps by layer 3.
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    shape = (3, 32, 32)
    return _checked(BenchModel("resnet18-32", export_onnx(model.eval(), shape).data, shape))


MODELS = {"mnist": mnist_cnn, "resnet18": resnet18_32}


def _checked(model: BenchModel) -> BenchModel:
    check_onnx(model.onnx, model.name)  # the room refuses what this refuses
    return model
