"""Layers a declarative model may stack, each a factory with explicit keyword parameters.

A declarative model (``format: declarative``) is a list of ``{type, params}``;
``type`` is looked up here and nowhere else. BatchNorm is offered for non-private
training, but differential privacy needs per-sample gradients, which batch
statistics mix across samples: use ``groupnorm`` or ``layernorm`` with ``privacy``.

This module imports torch only inside the factories, so ``pipeline compose`` can check
layer names and parameters against these signatures without loading torch; the modules
they build and the graph that runs them are in :mod:`.layers`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from sealroom.pipeline.registry import Registry

if TYPE_CHECKING:
    from torch import nn

LayerFactory = Callable[..., "nn.Module"]
Size = int | list[int]

LAYERS: Registry[LayerFactory] = Registry("layer")


def _size(value: Size) -> int | tuple[int, ...]:
    return value if isinstance(value, int) else tuple(int(v) for v in value)


@LAYERS.register("conv2d")
def conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: Size = 3,
    stride: Size = 1,
    padding: Size = 0,
    dilation: Size = 1,
    groups: int = 1,
    bias: bool = True,
) -> nn.Module:
    from torch import nn

    return nn.Conv2d(
        in_channels,
        out_channels,
        _size(kernel_size),  # type: ignore[arg-type]
        stride=_size(stride),  # type: ignore[arg-type]
        padding=_size(padding),  # type: ignore[arg-type]
        dilation=_size(dilation),  # type: ignore[arg-type]
        groups=groups,
        bias=bias,
    )


@LAYERS.register("conv1d")
def conv1d(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    stride: int = 1,
    padding: int = 0,
    bias: bool = True,
) -> nn.Module:
    from torch import nn

    return nn.Conv1d(
        in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias
    )


@LAYERS.register("conv_transpose2d")
def conv_transpose2d(
    in_channels: int,
    out_channels: int,
    kernel_size: Size = 2,
    stride: Size = 2,
    padding: Size = 0,
    bias: bool = True,
) -> nn.Module:
    from torch import nn

    return nn.ConvTranspose2d(
        in_channels,
        out_channels,
        _size(kernel_size),  # type: ignore[arg-type]
        stride=_size(stride),  # type: ignore[arg-type]
        padding=_size(padding),  # type: ignore[arg-type]
        bias=bias,
    )


@LAYERS.register("linear")
def linear(in_features: int, out_features: int, bias: bool = True) -> nn.Module:
    from torch import nn

    return nn.Linear(in_features, out_features, bias=bias)


@LAYERS.register("relu")
def relu() -> nn.Module:
    from torch import nn

    return nn.ReLU()


@LAYERS.register("leaky_relu")
def leaky_relu(negative_slope: float = 0.01) -> nn.Module:
    from torch import nn

    return nn.LeakyReLU(negative_slope)


@LAYERS.register("gelu")
def gelu(approximate: Literal["none", "tanh"] = "none") -> nn.Module:
    from torch import nn

    return nn.GELU(approximate=approximate)


@LAYERS.register("silu")
def silu() -> nn.Module:
    from torch import nn

    return nn.SiLU()


@LAYERS.register("elu")
def elu(alpha: float = 1.0) -> nn.Module:
    from torch import nn

    return nn.ELU(alpha)


@LAYERS.register("tanh")
def tanh() -> nn.Module:
    from torch import nn

    return nn.Tanh()


@LAYERS.register("sigmoid")
def sigmoid() -> nn.Module:
    from torch import nn

    return nn.Sigmoid()


@LAYERS.register("softmax")
def softmax(dim: int = 1) -> nn.Module:
    from torch import nn

    return nn.Softmax(dim=dim)


@LAYERS.register("log_softmax")
def log_softmax(dim: int = 1) -> nn.Module:
    from torch import nn

    return nn.LogSoftmax(dim=dim)


@LAYERS.register("maxpool2d")
def maxpool2d(kernel_size: Size = 2, stride: Size | None = None, padding: Size = 0) -> nn.Module:
    from torch import nn

    return nn.MaxPool2d(
        _size(kernel_size),
        stride=None if stride is None else _size(stride),
        padding=_size(padding),
    )


@LAYERS.register("avgpool2d")
def avgpool2d(kernel_size: Size = 2, stride: Size | None = None, padding: Size = 0) -> nn.Module:
    from torch import nn

    return nn.AvgPool2d(
        _size(kernel_size),  # type: ignore[arg-type]
        stride=None if stride is None else _size(stride),  # type: ignore[arg-type]
        padding=_size(padding),  # type: ignore[arg-type]
    )


@LAYERS.register("adaptive_avgpool2d")
def adaptive_avgpool2d(output_size: Size = 1) -> nn.Module:
    from torch import nn

    return nn.AdaptiveAvgPool2d(_size(output_size))


@LAYERS.register("flatten")
def flatten(start_dim: int = 1, end_dim: int = -1) -> nn.Module:
    from torch import nn

    return nn.Flatten(start_dim, end_dim)


@LAYERS.register("dropout")
def dropout(p: float = 0.5) -> nn.Module:
    from torch import nn

    return nn.Dropout(p)


@LAYERS.register("dropout2d")
def dropout2d(p: float = 0.5) -> nn.Module:
    from torch import nn

    return nn.Dropout2d(p)


@LAYERS.register("groupnorm")
def groupnorm(
    num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True
) -> nn.Module:
    from torch import nn

    return nn.GroupNorm(num_groups, num_channels, eps=eps, affine=affine)


@LAYERS.register("layernorm")
def layernorm(normalized_shape: Size, eps: float = 1e-5) -> nn.Module:
    from torch import nn

    return nn.LayerNorm(_size(normalized_shape), eps=eps)


@LAYERS.register("instancenorm2d")
def instancenorm2d(num_features: int, affine: bool = False) -> nn.Module:
    from torch import nn

    return nn.InstanceNorm2d(num_features, affine=affine)


@LAYERS.register("batchnorm1d")
def batchnorm1d(num_features: int, momentum: float = 0.1) -> nn.Module:
    from torch import nn

    return nn.BatchNorm1d(num_features, momentum=momentum)


@LAYERS.register("batchnorm2d")
def batchnorm2d(num_features: int, momentum: float = 0.1) -> nn.Module:
    from torch import nn

    return nn.BatchNorm2d(num_features, momentum=momentum)


@LAYERS.register("upsample")
def upsample(
    scale_factor: float = 2.0, mode: Literal["nearest", "bilinear"] = "nearest"
) -> nn.Module:
    from torch import nn

    return nn.Upsample(scale_factor=scale_factor, mode=mode)


@LAYERS.register("identity")
def identity() -> nn.Module:
    from torch import nn

    return nn.Identity()


@LAYERS.register("add")
def add() -> nn.Module:
    """Element-wise sum of its ``inputs`` (same shapes), e.g. a residual connection."""
    from sealroom.train.components.layers import Add

    return Add()


@LAYERS.register("multiply")
def multiply() -> nn.Module:
    """Element-wise product of its ``inputs`` (same shapes), e.g. a gate."""
    from sealroom.train.components.layers import Multiply

    return Multiply()


@LAYERS.register("concat")
def concat(dim: int = 1) -> nn.Module:
    """Its ``inputs`` joined along ``dim`` (channels by default), e.g. a U-Net skip."""
    from sealroom.train.components.layers import Concat

    return Concat(dim)
