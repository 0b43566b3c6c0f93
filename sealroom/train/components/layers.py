"""Declarative models: the registered layers (:mod:`.layer_factories`) built and wired.

A layer with ``inputs`` reads earlier layers' outputs (by ``id``) instead of the
previous one, which makes a small graph; only merge layers (``add``, ``concat``,
``multiply``) take more than one input.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from sealroom.errors import ConfigError
from sealroom.pipeline.registry import check_params
from sealroom.pipeline.schema import LayerSpec
from sealroom.train.components.layer_factories import LAYERS, LayerFactory, Size

__all__ = ["LAYERS", "LayerFactory", "LayerGraph", "Size", "build_declarative", "build_layer"]


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
