"""Fused per-sample clipping: norms and the clipped sum inside one backward pass.

Opacus' ``hooks`` mode stores every per-sample gradient in a zero-filled buffer, then
reads them all again to clip and sum. This mode (the "book-keeping" idea of Bu et al.,
2023, "Differentially private optimization on large model at small cost") keeps only
what each layer needs:

* ``Linear`` on (batch, features): the per-sample gradient is the outer product
  ``g_i a_iᵀ``, so its norm is ``‖g_i‖·‖a_i‖`` and the clipped sum is one matrix product
  ``(c ⊙ g)ᵀ a`` — no per-sample tensor at all. On (batch, steps, features) the norm
  comes from the two steps×steps Gram matrices when that is cheaper than the gradient.
* ``Conv2d``: the per-sample gradient from one batched product of the input patches and
  the output gradient (what Opacus computes too), into buffers reused from step to step.
* Autograd's own parameter gradients, unclipped sums that DP-SGD throws away, are never
  computed: the hooked parameters stop requiring grad while the clipper is attached.

Norms are exact to float32 rounding at any scale: each layer's per-sample norms are
taken in float32 and any that is zero, tiny (its squares may have underflowed) or not
finite is taken again in float64; squares and their sums are float64 (``‖g‖²·‖a‖²`` of
two float32 norms neither underflows nor overflows there), and the Gram-matrix form,
whose terms cancel, runs in float64 and is clamped at zero. A record whose norm is still
not finite (an inf or NaN in its activations or gradients) gets clip factor 0 and its
rows are zeroed, so it cannot poison the sum. A hooked parameter used outside its own
layer is refused (:mod:`sealroom.privacy.reuse`): that share of its gradient would
escape the hooks.

After ``backward``, :meth:`FusedClipper.clip_and_sum` turns the per-sample norms into
clip factors ``min(1, C / (‖g_i‖ + 1e-6))`` — Opacus' formula — and writes each
parameter's clipped sum to ``p.summed_grad``, where Opacus' ``DPOptimizer`` adds noise,
scales and steps as in every other mode. Layers it does not know are refused by name
when the clipper is built, so a model never trains half-clipped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from opacus.optimizers import DPOptimizer
from torch import Tensor, nn

from sealroom.errors import PrivacyError
from sealroom.privacy.reuse import ReuseGuard

_SUPPORTED = (nn.Linear, nn.Conv2d)


@dataclass
class _Captured:
    """One layer's share of a step: how to form its clipped sum once the factors are known."""

    squared_norms: Tensor  # (batch,) float64: the layer's part of each sample's squared norm
    # clip factors (float32, 0 for a dropped record), dropped records or None -> one sum
    # per parameter
    clipped_sum: Callable[[Tensor, Tensor | None], list[Tensor]]


class FusedClipper:
    """Hooks on a model's Linear and Conv2d layers that clip per sample during backward."""

    def __init__(self, model: nn.Module) -> None:
        self.names = _supported_layers(model)
        self.layers = list(self.names)
        self._inputs: dict[nn.Module, tuple[Tensor, int]] = {}  # input, its version
        self._captured: dict[nn.Module, _Captured] = {}
        self._scratch = _Scratch()
        self._batch = 0
        self.dropped_last_step = 0  # records left out of the last step (norm not finite)
        self._handles = [layer.register_forward_hook(self._on_forward) for layer in self.layers]
        # Autograd's own parameter gradients would be unclipped sums, thrown away: the
        # hooked parameters stop requiring grad while the clipper is attached (the forward
        # hook keeps the graph connected) and the optimizer below still noises and steps
        # them (``FusedDPOptimizer.params``).
        # Each layer's own (weight, bias), kept here: outside the layer's forward its
        # attributes hold the reuse guard's stand-ins.
        self._params = {
            layer: [p for p in (layer.weight, layer.bias) if isinstance(p, Tensor)]
            for layer in self.layers
        }
        full_names = {id(p): name for name, p in model.named_parameters(remove_duplicate=False)}
        slots = {
            layer: [
                (attr, p, full_names.get(id(p), f"{self.names[layer]}.{attr}"))
                for attr, p in layer.named_parameters(recurse=False)
                if p.requires_grad
            ]
            for layer in self.layers
        }
        self.frozen = [p for params in slots.values() for _, p, _ in params]
        for p in self.frozen:
            p.requires_grad_(False)
        self._guard = ReuseGuard(slots)

    def close(self) -> None:
        """Remove the hooks and unfreeze the parameters (the released model is plain again)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._guard.remove()
        for p in self.frozen:
            p.requires_grad_(True)
        self.frozen = []

    def begin(self) -> None:
        """Forget anything from an earlier forward pass (evaluation, a failed step)."""
        self._inputs.clear()
        self._captured.clear()

    # ------------------------------------------------------------------ hooks

    def _on_forward(
        self, layer: nn.Module, inputs: tuple[Tensor, ...], output: Tensor
    ) -> Tensor | None:
        if not (torch.is_grad_enabled() and layer.training):
            return None  # evaluation: nothing to clip
        if layer in self._inputs:
            raise PrivacyError(
                f"DP-SGD (fused): layer {self.names[layer]} runs twice in one forward pass; "
                "use grad_sample_mode hooks for models that reuse a layer"
            )
        activations = inputs[0].detach()  # shares the version counter with inputs[0]
        self._inputs[layer] = (activations, activations._version)
        if not output.requires_grad:
            # Nothing upstream needs a gradient (the first layer): adding a zero leaf puts
            # the output in the graph. (Marking the output itself as requiring grad would
            # make it a leaf, which a following in-place ReLU may not modify.)
            output = output + torch.zeros((), device=output.device, requires_grad=True)
        output.register_hook(lambda grad: self._on_backward(layer, grad))
        return output

    def _on_backward(self, layer: nn.Module, grad: Tensor) -> None:
        activations, version = self._inputs.pop(layer)
        if activations._version != version:
            raise PrivacyError(
                f"DP-SGD (fused): the input of layer {self.names[layer]} was modified in place "
                "after the layer read it; use grad_sample_mode hooks for this model"
            )
        self._batch = grad.shape[0]
        if isinstance(layer, nn.Conv2d):
            self._captured[layer] = _conv2d(layer, activations, grad.detach(), self._scratch)
        else:
            assert isinstance(layer, nn.Linear)
            self._captured[layer] = _linear(layer, activations, grad.detach())

    # ------------------------------------------------------------------ the step

    def clip_and_sum(self, params: list[nn.Parameter], max_grad_norm: float) -> None:
        """Set ``p.summed_grad`` for every parameter: the sum of clipped per-sample gradients."""
        self._guard.check()
        if len(self._captured) != len(self.layers):
            missing = [self.names[layer] for layer in self.layers if layer not in self._captured]
            raise PrivacyError(
                f"DP-SGD (fused): no gradient reached layer(s) {', '.join(missing)}; "
                "every trainable layer must take part in the loss"
            )
        # The loss is a batch mean, so each sample's gradient is batch × its share in the
        # hooks' gradients: scale the norms, and the factors that weight the sums, by it.
        # float64 throughout: the squares cannot underflow or overflow there.
        shares = torch.stack([c.squared_norms for c in self._captured.values()])
        norms = shares.sum(0).sqrt() * self._batch
        finite = torch.isfinite(norms)
        factors = (max_grad_norm / (norms + 1e-6)).clamp(max=1.0) * self._batch
        # A record whose norm is not finite is left out (factor 0, its rows zeroed: 0·inf
        # would still be NaN in the sum).
        factors = torch.where(finite, factors, 0.0).to(torch.float32)
        dropped = None if bool(finite.all()) else ~finite
        self.dropped_last_step = 0 if dropped is None else int(dropped.sum())
        sums: dict[int, Tensor] = {}
        for layer, captured in self._captured.items():
            clipped = captured.clipped_sum(factors, dropped)
            for p, summed in zip(self._params[layer], clipped, strict=True):
                sums[id(p)] = summed.view_as(p)
        for real, stand_in in self._guard.pairs():  # model.parameters() gives stand-ins now
            if id(real) in sums:
                sums[id(stand_in)] = sums[id(real)]
        for p in params:
            p.summed_grad = sums[id(p)]  # type: ignore[attr-defined]
        self.begin()


# A float32 norm at least this large, and finite, lost nothing to underflowing squares
# (each lost square is < 2⁻¹²⁶, so n of them are a relative 1e-9 of it for n < 10⁹).
_TRUSTED_NORM = 1e-10


def _norms(per_sample: Tensor) -> Tensor:
    """Each row's L2 norm in float64, (batch, ...) -> (batch,), exact at any scale.

    Float32 first (fast); a row whose float32 norm is zero, tiny or not finite — squares
    that underflowed or overflowed — is taken again in float64, where the square of any
    float32 value is exact.
    """
    rows = per_sample.flatten(1)
    norms = torch.linalg.vector_norm(rows, dim=1).to(torch.float64)
    redo = ~(torch.isfinite(norms) & (norms >= _TRUSTED_NORM))
    if bool(redo.any()):
        again = rows[redo].to(torch.float64)
        norms[redo] = torch.linalg.vector_norm(again, dim=1)
    return norms


def _squared_norms(per_sample: Tensor) -> Tensor:
    """Each row's squared L2 norm in float64, (batch, ...) -> (batch,)."""
    return _norms(per_sample).square()


def _keep(t: Tensor, dropped: Tensor | None) -> Tensor:
    """``t`` with the dropped records' rows (dim 0) zeroed; ``t`` itself if none."""
    return t if dropped is None else t.masked_fill(dropped.view(-1, *[1] * (t.dim() - 1)), 0.0)


def _linear(layer: nn.Linear, a: Tensor, g: Tensor) -> _Captured:
    """Linear: ghost norms; per-sample gradients are never formed on 2-D inputs."""
    bias = layer.bias is not None
    if a.dim() == 2:
        # ‖g‖²·(‖a‖² + 1) from float64 norms: float32 squares of a tiny ‖g‖ underflow.
        g_sq = _squared_norms(g)
        squared = g_sq * (_squared_norms(a) + (1.0 if bias else 0.0))

        def summed_2d(c: Tensor, dropped: Tensor | None) -> list[Tensor]:
            scaled = _keep(g, dropped) * c[:, None]
            return [scaled.t() @ _keep(a, dropped)] + ([scaled.sum(0)] if bias else [])

        return _Captured(squared, summed_2d)
    a3, g3 = a.flatten(1, -2), g.flatten(1, -2)  # (batch, steps, features)
    steps = a3.shape[1]
    if steps * steps <= layer.weight.numel():
        # Σ_st (a_s·a_t)(g_s·g_t): its terms cancel, so float64, and clamped at zero (a
        # float32 sum rounded below zero and its square root was NaN).
        a64, g64 = a3.to(torch.float64), g3.to(torch.float64)
        gram = (a64 @ a64.transpose(1, 2)) * (g64 @ g64.transpose(1, 2))
        squared = gram.sum((1, 2)).clamp(min=0.0)
    else:
        squared = _squared_norms(torch.einsum("bto,bti->boi", g3, a3))
    if bias:
        squared = squared + _squared_norms(g3.sum(1))

    def summed_seq(c: Tensor, dropped: Tensor | None) -> list[Tensor]:
        scaled = (_keep(g3, dropped) * c[:, None, None]).flatten(0, 1)
        return [scaled.t() @ _keep(a3, dropped).flatten(0, 1)] + ([scaled.sum(0)] if bias else [])

    return _Captured(squared, summed_seq)


def _conv2d(layer: nn.Conv2d, x: Tensor, g: Tensor, scratch: _Scratch) -> _Captured:
    """Conv2d: per-sample weight gradients from one batched product over input patches."""
    g = g.flatten(2)  # (batch, out channels, positions)
    patches = _patches(layer, x, g.shape[2], scratch)
    weight = scratch.get((layer, "weight"), (len(g), g.shape[1], patches.shape[1]), g)
    torch.bmm(g, patches.transpose(1, 2), out=weight)  # (batch, out, in·k·k)
    per_sample = [weight.flatten(1)]
    if layer.bias is not None:
        per_sample.append(g.sum(2))
    squared = torch.stack([_squared_norms(t) for t in per_sample]).sum(0)

    def summed(c: Tensor, dropped: Tensor | None) -> list[Tensor]:
        return [c @ _keep(t, dropped) for t in per_sample]

    return _Captured(squared, summed)


def _patches(layer: nn.Conv2d, x: Tensor, positions: int, scratch: _Scratch) -> Tensor:
    """The input patch under each output position, (batch, in·k·k, positions).

    A strided view of the padded input, copied once into a reused buffer: faster here
    than ``F.unfold``, and a fresh buffer each step would cost as much in page faults.
    """
    assert not isinstance(layer.padding, str)  # refused in _supported_layers
    (ph, pw), (kh, kw) = layer.padding, layer.kernel_size
    (sh, sw), (dh, dw) = layer.stride, layer.dilation
    padded = F.pad(x, (pw, pw, ph, ph)) if ph or pw else x.contiguous()
    batch, channels, height, width = padded.shape
    out_h, out_w = (height - dh * (kh - 1) - 1) // sh + 1, (width - dw * (kw - 1) - 1) // sw + 1
    assert out_h * out_w == positions
    sb, sc, sy, sx = padded.stride()
    view = padded.as_strided(
        (batch, channels, kh, kw, out_h, out_w), (sb, sc, sy * dh, sx * dw, sy * sh, sx * sw)
    )
    patches = scratch.get((layer, "patches"), view.shape, x)
    patches.copy_(view)
    return patches.view(batch, channels * kh * kw, positions)


class _Scratch:
    """Buffers reused from step to step, grown by a quarter when a batch outgrows them.

    Poisson batches vary in size, so each buffer is flat and viewed to the shape asked.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[nn.Module, str], Tensor] = {}

    def get(
        self, key: tuple[nn.Module, str], shape: tuple[int, ...] | torch.Size, like: Tensor
    ) -> Tensor:
        """A tensor of ``shape`` with ``like``'s dtype and device; its contents are stale."""
        size = math.prod(shape)
        buffer = self._buffers.get(key)
        if (
            buffer is None
            or buffer.numel() < size
            or (buffer.dtype, buffer.device) != (like.dtype, like.device)
        ):
            buffer = torch.empty(size + size // 4, dtype=like.dtype, device=like.device)
            self._buffers[key] = buffer
        return buffer[:size].view(shape)


def _supported_layers(model: nn.Module) -> dict[nn.Module, str]:
    """The layers to hook, with their names; refuses a trainable parameter anywhere else.

    Exact types only: a subclass may compute something else in its ``forward``, and the
    per-sample formulas below hold only for ``nn.Linear`` and ``nn.Conv2d`` themselves.
    A parameter shared by two layers is refused too: its per-sample gradient is the sum
    of both layers' shares, which per-layer norms would understate.
    """
    layers: dict[nn.Module, str] = {}
    owner: dict[int, str] = {}
    for name, module in model.named_modules():
        name = name or "model"
        own = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if not own:
            continue
        if type(module) not in _SUPPORTED:
            raise PrivacyError(
                f"DP-SGD (fused): layer {name} ({type(module).__name__}) has trainable "
                "parameters but only Linear and Conv2d are supported; use grad_sample_mode hooks"
            )
        if isinstance(module, nn.Conv2d) and (
            module.groups != 1 or module.padding_mode != "zeros" or isinstance(module.padding, str)
        ):
            raise PrivacyError(
                f"DP-SGD (fused): layer {name} (Conv2d) uses groups, string padding or "
                "non-zero padding mode; use grad_sample_mode hooks"
            )
        for p in own:
            if id(p) in owner:
                raise PrivacyError(
                    f"DP-SGD (fused): layers {owner[id(p)]} and {name} share a parameter; "
                    "use grad_sample_mode hooks for tied weights"
                )
            owner[id(p)] = name
        layers[module] = name
    return layers


class FusedDPOptimizer(DPOptimizer):
    """DPOptimizer whose clipping is already done by a :class:`FusedClipper`.

    Opacus' ``pre_step`` reads ``p.grad_sample``; this one takes the clipped sums the
    clipper leaves in ``p.summed_grad`` and keeps the rest: noise, scaling, step hooks
    (the accountant). Gradient accumulation over several batches is not supported.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, clipper: FusedClipper, **kwargs: Any):
        self.clipper = clipper  # before Opacus' __init__, which already reads ``params``
        super().__init__(optimizer, **kwargs)

    @property
    def params(self) -> list[nn.Parameter]:
        """The trainable parameters, those the clipper froze for autograd included."""
        frozen = {id(w) for w in self.clipper.frozen}
        return [
            p
            for group in self.param_groups
            for p in group["params"]
            if p.requires_grad or id(p) in frozen
        ]

    @property
    def accumulated_iterations(self) -> int:
        return 1

    def pre_step(self, closure: Any = None) -> bool:
        self.clipper.clip_and_sum(self.params, self.max_grad_norm)
        if self._check_skip_next_step():
            self._is_last_step_skipped = True
            return False
        self.add_noise()
        self.scale_grad()
        if self.step_hook:
            self.step_hook(self)
        self._is_last_step_skipped = False
        return True
