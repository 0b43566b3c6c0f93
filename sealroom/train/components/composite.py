"""The composite loss: a config's expression evaluated over its components' terms.

Names in the expression: each component's key (its loss), ``<key>_<aux>`` for an
auxiliary value (``ce_pt``), the bare aux name (``pt``) when exactly one component
exports it, and the declared variables. Terms are evaluated element-wise when they
share a shape (so ``(1 - pt)**gamma * ce`` weighs each element); terms of different
shapes are first reduced to one value per sample, never broadcast against each other.
The result is reduced per sample, then by ``reduction`` — ``"mean"`` for training,
``"none"`` (``[N]``) for per-sample clipping such as Opacus' ghost clipping.
"""

from __future__ import annotations

import ast
from typing import Any, Literal, cast

from torch import Tensor, nn

from sealroom.errors import ConfigError, TrainingError
from sealroom.pipeline.schema import LossConfig
from sealroom.train.components.loss_specs import (
    LossName,
    compile_loss_expression,
    loss_namespace,
)
from sealroom.train.components.losses import LOSSES, LossComponent

__all__ = ["CompositeLoss", "LossName", "compile_loss_expression", "loss_namespace"]

Reduction = Literal["mean", "sum", "none"]


def _per_sample(value: Tensor) -> Tensor:
    return value.flatten(1).mean(1) if value.dim() > 1 else value


class CompositeLoss(nn.Module):
    """The loss a pipeline trains with; ``reduction`` may be set to ``"none"`` for ``[N]``."""

    def __init__(self, cfg: LossConfig, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.expression = compile_loss_expression(cfg)
        self.namespace = loss_namespace(cfg)
        self.variables = dict(cfg.variables)
        self.reduction: Reduction = reduction
        self.components = nn.ModuleDict()
        used = {self.namespace[n].component for n in self.expression.names}
        # The common case, an expression that is one component's loss, skips the tree walk.
        tree = self.expression.tree
        self.single: str | None = None
        if isinstance(tree, ast.Name) and self.namespace[tree.id].aux is None:
            self.single = self.namespace[tree.id].component
        for key, component in cfg.components.items():
            if key not in used:
                continue
            cls = LOSSES.get(component.name, where=f"components.{key}.name")
            try:
                self.components[key] = cls(**dict(component.params))
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"components.{key}.params: {exc}") from None

    def _terms(self, output: Tensor, target: Tensor) -> dict[str, dict[str, Tensor]]:
        terms: dict[str, dict[str, Tensor]] = {}
        for key, module in self.components.items():
            try:
                terms[key] = cast(LossComponent, module).terms(output, target)
            except (RuntimeError, ValueError, IndexError) as exc:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise TrainingError(
                    f"loss component {key!r} on output {tuple(output.shape)} and target "
                    f"{tuple(target.shape)}: {reason}"
                ) from None
        return terms

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        terms = self._terms(output, target)
        result = terms[self.single]["loss"] if self.single else self._evaluate(terms)
        per_sample = _per_sample(result)
        if self.reduction == "none":
            if per_sample.dim() == 0:
                raise TrainingError("loss has no per-sample values (a batch-level component?)")
            return per_sample
        return per_sample.sum() if self.reduction == "sum" else per_sample.mean()

    def _evaluate(self, terms: dict[str, dict[str, Tensor]]) -> Tensor:
        values: dict[str, Any] = dict(self.variables)
        for name in self.expression.names:
            ref = self.namespace[name]
            if ref.component is not None:
                values[name] = terms[ref.component][ref.aux or "loss"]
        tensors = [v for v in values.values() if isinstance(v, Tensor) and v.dim() > 0]
        if len({t.shape for t in tensors}) > 1:
            # Element-wise arithmetic across shapes would broadcast wrongly: one value per sample.
            values = {k: _per_sample(v) if isinstance(v, Tensor) else v for k, v in values.items()}
        try:
            result = self.expression.evaluate(values)
        except RuntimeError as exc:
            raise TrainingError(f"loss expression {self.expression.text!r}: {exc}") from None
        if not isinstance(result, Tensor):
            raise TrainingError(f"loss expression {self.expression.text!r} gave no tensor")
        return result
