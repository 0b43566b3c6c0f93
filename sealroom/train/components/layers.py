"""Layers a declarative model may stack, each a factory with explicit keyword parameters.

A declarative model (``format: declarative``) is a list of ``{type, params}``;
``type`` is looked up here and nowhere else. BatchNorm is offered for non-private
training, but differential privacy needs per-sample gradients, which batch
statistics mix across samples: use ``groupnorm`` or ``layernorm`` with ``privacy``.

A layer with ``inputs`` reads earlier layers' outputs (by ``id``) instead of the
previous one, which makes a small graph; only merge layers (``add``, ``concat``,
``multiply``) take more than one input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from sealroom.errors import ConfigError
from sealroom.pipeline.registry import Registry, check_params
from sealroom.pipeline.schema import LayerSpec

LayerFactory = Callable[..., nn.Module]
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
    return nn.Linear(in_features, out_features, bias=bias)


@LAYERS.register("relu")
def relu() -> nn.Module:
    return nn.ReLU()


@LAYERS.register("leaky_relu")
def leaky_relu(negative_slope: float = 0.01) -> nn.Module:
    return nn.LeakyReLU(negative_slope)


@LAYERS.register("gelu")
def gelu(approximate: Literal["none", "tanh"] = "none") -> nn.Module:
    return nn.GELU(approximate=approximate)


@LAYERS.register("silu")
def silu() -> nn.Module:
    return nn.SiLU()


@LAYERS.register("elu")
def elu(alpha: float = 1.0) -> nn.Module:
    return nn.ELU(alpha)


@LAYERS.register("tanh")
def tanh() -> nn.Module:
    return nn.Tanh()


@LAYERS.register("sigmoid")
def sigmoid() -> nn.Module:
    return nn.Sigmoid()


@LAYERS.register("softmax")
def softmax(dim: int = 1) -> nn.Module:
    return nn.Softmax(dim=dim)


@LAYERS.register("log_softmax")
def log_softmax(dim: int = 1) -> nn.Module:
    return nn.LogSoftmax(dim=dim)


@LAYERS.register("maxpool2d")
def maxpool2d(kernel_size: Size = 2, stride: Size | None = None, padding: Size = 0) -> nn.Module:
    return nn.MaxPool2d(
        _size(kernel_size),
        stride=None if stride is None else _size(stride),
        padding=_size(padding),
    )


@LAYERS.register("avgpool2d")
def avgpool2d(kernel_size: Size = 2, stride: Size | None = None, padding: Size = 0) -> nn.Module:
    return nn.AvgPool2d(
        _size(kernel_size),  # type: ignore[arg-type]
        stride=None if stride is None else _size(stride),  # type: ignore[arg-type]
        padding=_size(padding),  # type: ignore[arg-type]
    )


@LAYERS.register("adaptive_avgpool2d")
def adaptive_avgpool2d(output_size: Size = 1) -> nn.Module:
    return nn.AdaptiveAvgPool2d(_size(output_size))


@LAYERS.register("flatten")
def flatten(start_dim: int = 1, end_dim: int = -1) -> nn.Module:
    return nn.Flatten(start_dim, end_dim)


@LAYERS.register("dropout")
def dropout(p: float = 0.5) -> nn.Module:
    return nn.Dropout(p)


@LAYERS.register("dropout2d")
def dropout2d(p: float = 0.5) -> nn.Module:
    return nn.Dropout2d(p)


@LAYERS.register("groupnorm")
def groupnorm(
    num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True
) -> nn.Module:
    return nn.GroupNorm(num_groups, num_channels, eps=eps, affine=affine)


@LAYERS.register("layernorm")
def layernorm(normalized_shape: Size, eps: float = 1e-5) -> nn.Module:
    return nn.LayerNorm(_size(normalized_shape), eps=eps)


@LAYERS.register("instancenorm2d")
def instancenorm2d(num_features: int, affine: bool = False) -> nn.Module:
    return nn.InstanceNorm2d(num_features, affine=affine)


@LAYERS.register("batchnorm1d")
def batchnorm1d(num_features: int, momentum: float = 0.1) -> nn.Module:
    return nn.BatchNorm1d(num_features, momentum=momentum)


@LAYERS.register("batchnorm2d")
def batchnorm2d(num_features: int, momentum: float = 0.1) -> nn.Module:
    return nn.BatchNorm2d(num_features, momentum=momentum)


@LAYERS.register("upsample")
def upsample(
    scale_factor: float = 2.0, mode: Literal["nearest", "bilinear"] = "nearest"
) -> nn.Module:
    return nn.Upsample(scale_factor=scale_factor, mode=mode)


@LAYERS.register("identity")
def identity() -> nn.Module:
    return nn.Identity()


class Merge(nn.Module):
    """A parameter-free layer combining the outputs of two or more earlier layers."""


class Add(Merge):
    def forward(self, *xs: Tensor) -> Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Multiply(Merge):
    def forward(self, *xs: Tensor) -> Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


class Concat(Merge):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, *xs: Tensor) -> Tensor:
        return torch.cat(xs, dim=self.dim)


@LAYERS.register("add")
def add() -> nn.Module:
    """Element-wise sum of its ``inputs`` (same shapes), e.g. a residual connection."""
    return Add()


@LAYERS.register("multiply")
def multiply() -> nn.Module:
    """Element-wise product of its ``inputs`` (same shapes), e.g. a gate."""
    return Multiply()


@LAYERS.register("concat")
def concat(dim: int = 1) -> nn.Module:
    """Its ``inputs`` joined along ``dim`` (channels by default), e.g. a U-Net skip."""
    return Concat(dim)


def build_layer(spec: LayerSpec, where: str = "layer") -> nn.Module:
    """One registered layer; unknown types, parameters or bad values are ConfigError."""
    factory = LAYERS.get(spec.type, where=f"{where}.type")
    check_params(factory, spec.params, f"{where}.params")
    try:
        return factory(**spec.params)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"{where}.params: {exc}") from None


def build_sequential(specs: Sequence[LayerSpec], where: str = "model.layers") -> nn.Sequential:
    """A declarative model: the registered layers in order."""
    return nn.Sequential(*(build_layer(s, f"{where}[{i}]") for i, s in enumerate(specs)))


class LayerGraph(nn.Module):
    """Registered layers run in order, each reading the outputs its spec names.

    Submodules are named by position (``"0"``, ``"1"``, ...) as in ``nn.Sequential``,
    so safetensors weights have the same keys whether or not a model uses ``inputs``.
    Only outputs that a later layer names are kept; the last layer's output is returned.
    """

    def __init__(self, layers: Sequence[nn.Module], specs: Sequence[LayerSpec]) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            self.add_module(str(i), layer)
        named = {name for spec in specs for name in spec.inputs}
        self.plan = [
            (layer, tuple(spec.inputs), spec.id if spec.id in named else None)
            for layer, spec in zip(layers, specs, strict=True)
        ]
        self.types = [spec.type for spec in specs]

    def forward(self, x: Tensor) -> Tensor:
        values = {"input": x}
        out = x
        for i, (layer, sources, keep) in enumerate(self.plan):
            args = [values[name] for name in sources] if sources else [out]
            try:
                out = layer(*args)
            except Exception as exc:  # keep its type (e.g. out of memory); say which layer
                exc.add_note(f"model.layers[{i}] ({self.types[i]})")
                raise
            if keep is not None:
                values[keep] = out
        return out


def build_declarative(specs: Sequence[LayerSpec], where: str = "model.layers") -> nn.Module:
    """A declarative model: ``nn.Sequential`` for a plain stack, a :class:`LayerGraph` otherwise.

    The schema has already checked that ``inputs`` name earlier ids; here a merge layer
    must name at least two inputs and any other layer at most one.
    """
    if not any(spec.inputs for spec in specs):
        return build_sequential(specs, where)
    layers = []
    for i, spec in enumerate(specs):
        layer = build_layer(spec, f"{where}[{i}]")
        if isinstance(layer, Merge) and len(spec.inputs) < 2:
            raise ConfigError(
                f"{where}[{i}].inputs: {spec.type!r} merges layers; name at least two ids"
            )
        if not isinstance(layer, Merge) and len(spec.inputs) > 1:
            raise ConfigError(
                f"{where}[{i}].inputs: {spec.type!r} takes one input; "
                "combine several with add, concat or multiply"
            )
        layers.append(layer)
    return LayerGraph(layers, specs)
