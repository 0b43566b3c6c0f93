"""Refuse a hooked parameter used outside its own layer (fused clipping).

The fused clipper computes each layer's per-sample gradient from that layer's input and
output gradient, and freezes the layer's parameters for autograd. A consumer's forward
that also uses such a parameter elsewhere (``F.linear(x, self.fc.weight)``, a tied output
projection, ``self.fc.weight.t()``) would contribute a gradient share that no hook sees:
silently dropped.

So outside its own layer's forward, each hooked parameter's slot holds a stand-in: a
parameter that shares its storage (same values, same in-place updates) but requires
grad. The layer's forward pre-hook puts the real parameter back for the layer's own
call and its forward hook takes it out again. A gradient that reaches a stand-in came
from a use outside the layer; :meth:`ReuseGuard.check` (run before the clipped sums are
formed) refuses the step, naming the parameter. No per-op cost: two dict writes per
layer per forward.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from sealroom.errors import PrivacyError


class ReuseGuard:
    """Stand-ins for the hooked parameters outside their layers' own forward calls."""

    def __init__(self, slots: dict[nn.Module, list[tuple[str, nn.Parameter, str]]]) -> None:
        """``slots``: for each hooked layer, (attribute, real parameter, full name)."""
        self.used: list[str] = []
        self._slots: list[tuple[nn.Module, str, nn.Parameter, nn.Parameter]] = []
        self._handles = []
        for layer, params in slots.items():
            for attr, real, name in params:
                stand_in = nn.Parameter(real.detach(), requires_grad=True)
                stand_in.register_hook(self._recorder(name))
                self._slots.append((layer, attr, real, stand_in))
                layer._parameters[attr] = stand_in
            self._handles.append(layer.register_forward_pre_hook(self._real_in))
            # Not ``always_call``: such hooks cost ~5 ms per forward of the DP-MNIST CNN.
            # A layer that raises leaves its real parameter in place until its next
            # forward; the step has failed anyway.
            self._handles.append(layer.register_forward_hook(self._real_out))
        self._by_layer: dict[nn.Module, list[tuple[str, nn.Parameter, nn.Parameter]]] = {}
        for layer, attr, real, stand_in in self._slots:
            self._by_layer.setdefault(layer, []).append((attr, real, stand_in))

    def _recorder(self, name: str) -> Any:
        def record(grad: Tensor) -> None:
            if name not in self.used:
                self.used.append(name)

        return record

    def _real_in(self, layer: nn.Module, args: Any) -> None:
        for attr, real, _ in self._by_layer[layer]:
            layer._parameters[attr] = real

    def _real_out(self, layer: nn.Module, args: Any, output: Any) -> None:
        for attr, _, stand_in in self._by_layer[layer]:
            layer._parameters[attr] = stand_in

    def check(self) -> None:
        """PrivacyError if a gradient reached a hooked parameter outside its layer."""
        for _, _, _, stand_in in self._slots:
            stand_in.grad = None
        if self.used:
            names, self.used = ", ".join(self.used), []
            raise PrivacyError(
                f"DP-SGD (fused): parameter {names} is used outside its layer; that share of "
                "its gradient would escape per-sample clipping; use the layer itself, or "
                "grad_sample_mode hooks"
            )

    def pairs(self) -> list[tuple[nn.Parameter, nn.Parameter]]:
        """(real parameter, its stand-in) for each guarded slot."""
        return [(real, stand_in) for _, _, real, stand_in in self._slots]

    def remove(self) -> None:
        """Put the real parameters back for good and drop the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for layer, attr, real, _ in self._slots:
            layer._parameters[attr] = real
        self._slots.clear()
