"""Refuse a hooked parameter used outside its own layer (fused clipping).

The fused clipper computes each layer's per-sample gradient from that layer's input and
output gradient, and freezes the layer's parameters for autograd. A consumer's forward
that also uses such a parameter elsewhere (``F.linear(x, self.fc.weight)``, a tied output
projection, ``self.fc.weight.t()``) would contribute a gradient share that no hook sees:
silently dropped. While the model's forward runs in training mode, a TorchFunctionMode
watches every torch call and refuses one that takes a hooked parameter outside the
layer that owns it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from sealroom.errors import PrivacyError


class ReuseGuard(TorchFunctionMode):
    """Active during a training forward pass of ``model``; knows which layer is running."""

    def __init__(self, model: nn.Module, layers: dict[nn.Module, str]) -> None:
        super().__init__()
        names = {id(p): name for name, p in model.named_parameters(remove_duplicate=False)}
        self.owner: dict[int, nn.Module] = {}
        self.param_names: dict[int, str] = {}
        for layer, layer_name in layers.items():
            for attr, p in layer.named_parameters(recurse=False):
                self.owner[id(p)] = layer
                self.param_names[id(p)] = names.get(id(p), f"{layer_name}.{attr}")
        self.current: nn.Module | None = None
        self.active = False
        self._handles = [
            model.register_forward_pre_hook(self._enter),
            model.register_forward_hook(self._exit, always_call=True),
        ]
        for layer in layers:
            self._handles.append(layer.register_forward_pre_hook(self._layer_in))
            self._handles.append(layer.register_forward_hook(self._layer_out, always_call=True))

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    # ------------------------------------------------------------------ hooks

    def _enter(self, module: nn.Module, args: Any) -> None:
        if self.active or not (torch.is_grad_enabled() and module.training):
            return
        self.current = None
        self.active = True
        self.__enter__()

    def _exit(self, module: nn.Module, args: Any, output: Any) -> None:
        if self.active:
            self.active = False
            self.current = None
            self.__exit__(None, None, None)

    def _layer_in(self, layer: nn.Module, args: Any) -> None:
        self.current = layer

    def _layer_out(self, layer: nn.Module, args: Any, output: Any) -> None:
        self.current = None

    # ------------------------------------------------------------------ the check

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        for value in _tensors(args, kwargs.values()):
            owner = self.owner.get(id(value))
            if owner is not None and owner is not self.current:
                name = self.param_names[id(value)]
                raise PrivacyError(
                    f"DP-SGD (fused): parameter {name} is used outside its layer "
                    f"({getattr(func, '__name__', func)}); its gradient there would escape "
                    "per-sample clipping; use the layer itself or grad_sample_mode hooks"
                )
        return func(*args, **kwargs)


def _tensors(*groups: Iterable[Any]) -> Iterable[Tensor]:
    """The tensors among call arguments, one level into lists, tuples and dicts."""
    for group in groups:
        for value in group:
            if isinstance(value, Tensor):
                yield value
            elif isinstance(value, list | tuple):
                yield from (v for v in value if isinstance(v, Tensor))
            elif isinstance(value, dict):
                yield from (v for v in value.values() if isinstance(v, Tensor))
