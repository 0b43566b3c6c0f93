"""DPOptimizers whose Gaussian noise comes from a NoiseSource (one draw for all parameters)."""

from __future__ import annotations

from opacus.optimizers import DPOptimizer, DPOptimizerFastGradientClipping
from opacus.optimizers.optimizer import _check_processed_flag, _mark_as_processed
from torch import nn

from sealroom.privacy.fused import FusedDPOptimizer
from sealroom.privacy.noise import NoiseSource


class _NoiseFromSource:
    """Replaces Opacus' ``add_noise``: one draw for all parameters from a NoiseSource."""

    noise_source: NoiseSource
    params: list[nn.Parameter]
    noise_multiplier: float
    max_grad_norm: float

    def add_noise(self) -> None:
        sums = [p.summed_grad for p in self.params]  # type: ignore[attr-defined]
        for summed in sums:
            _check_processed_flag(summed)
        flat = self.noise_source.normal(
            sum(s.numel() for s in sums), self.noise_multiplier * self.max_grad_norm
        )
        offset = 0
        for p, summed in zip(self.params, sums, strict=True):
            count = summed.numel()
            noise = flat[offset : offset + count].view_as(summed).to(summed.device, summed.dtype)
            offset += count
            p.grad = (summed + noise).view_as(p)
            _mark_as_processed(summed)


class SourcedDPOptimizer(_NoiseFromSource, DPOptimizer):
    """DPOptimizer whose noise comes from a NoiseSource."""


class SourcedGhostDPOptimizer(_NoiseFromSource, DPOptimizerFastGradientClipping):
    """Ghost-clipping DPOptimizer whose noise comes from a NoiseSource."""


class SourcedFusedDPOptimizer(_NoiseFromSource, FusedDPOptimizer):
    """Fused-clipping DPOptimizer whose noise comes from a NoiseSource."""
