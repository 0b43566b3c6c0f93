"""Loss components and the composite loss a config's expression builds from them.

Each component is an ``nn.Module`` registered in ``LOSSES``. Its ``terms`` method returns
per-element values: ``"loss"`` plus the auxiliary values it declares in ``aux_names``
(e.g. ``pt``, the probability of the true class, from ``cross_entropy``). A loss
expression names a component by its key in the config (``ce``), an auxiliary value
as ``<key>_<aux>`` (``ce_pt``) or, when only one component exports it, simply as
``pt``, and declared variables (``alpha``, ``gamma``). So the focal loss can be
written ``alpha * (1 - pt)**gamma * ce`` without any code in the config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss, DiceLoss
from torch import Tensor, nn

from sealroom.errors import ConfigError, TrainingError
from sealroom.pipeline.expression import CompiledExpression, parse_expression
from sealroom.pipeline.registry import Registry
from sealroom.pipeline.schema import LossConfig


class LossComponent(nn.Module):
    """A loss term with per-element values; ``forward`` gives its scalar mean."""

    aux_names: ClassVar[tuple[str, ...]] = ()

    def terms(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        """``{"loss": ..., **aux}``, unreduced where the loss is element-wise."""
        raise NotImplementedError

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        return self.terms(output, target)["loss"].mean()


LOSSES: Registry[type[LossComponent]] = Registry("loss")


def _class_target(output: Tensor, target: Tensor) -> Tensor:
    """Class indices: a ``[N,1,...]`` label map becomes ``[N,...]``; floats become int64."""
    if target.dim() == output.dim() and target.shape[1] == 1:
        target = target.squeeze(1)
    return target.long()


def _like(output: Tensor, target: Tensor) -> Tensor:
    """A float target shaped like the output (``[N]`` labels for an ``[N,1]`` output)."""
    target = target.to(output.dtype)
    if target.shape != output.shape and target.numel() == output.numel():
        target = target.reshape(output.shape)
    return target


def _tensor(values: list[float] | float | None) -> Tensor | None:
    return None if values is None else torch.as_tensor(values, dtype=torch.float32)


@LOSSES.register("cross_entropy")
class CrossEntropy(LossComponent):
    """Cross entropy on logits ``[N,C,...]``; ``pt``: softmax probability of the true class."""

    aux_names = ("pt",)
    weight: Tensor | None

    def __init__(
        self,
        weight: list[float] | None = None,
        label_smoothing: float = 0.0,
        ignore_index: int = -100,
    ) -> None:
        super().__init__()
        self.register_buffer("weight", _tensor(weight))
        self.label_smoothing = float(label_smoothing)
        self.ignore_index = int(ignore_index)

    def terms(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        target = _class_target(output, target)
        loss = F.cross_entropy(
            output,
            target,
            weight=self.weight,
            reduction="none",
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
        )
        plain = F.cross_entropy(output, target, reduction="none", ignore_index=self.ignore_index)
        return {"loss": loss, "pt": torch.exp(-plain)}


@LOSSES.register("nll")
class NegativeLogLikelihood(LossComponent):
    """Negative log-likelihood on log-probabilities; ``pt`` as for cross entropy."""

    aux_names = ("pt",)
    weight: Tensor | None

    def __init__(self, weight: list[float] | None = None, ignore_index: int = -100) -> None:
        super().__init__()
        self.register_buffer("weight", _tensor(weight))
        self.ignore_index = int(ignore_index)

    def terms(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        target = _class_target(output, target)
        loss = F.nll_loss(
            output, target, weight=self.weight, reduction="none", ignore_index=self.ignore_index
        )
        plain = F.nll_loss(output, target, reduction="none", ignore_index=self.ignore_index)
        return {"loss": loss, "pt": torch.exp(-plain)}


@LOSSES.register("bce_with_logits")
class BinaryCrossEntropyWithLogits(LossComponent):
    """Binary cross entropy on logits; ``pt`` is the sigmoid probability of the true label."""

    aux_names = ("pt",)
    pos_weight: Tensor | None

    def __init__(self, pos_weight: float | None = None) -> None:
        super().__init__()
        self.register_buffer("pos_weight", _tensor(pos_weight))

    def terms(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        target = _like(output, target)
        loss = F.binary_cross_entropy_with_logits(
            output, target, pos_weight=self.pos_weight, reduction="none"
        )
        plain = F.binary_cross_entropy_with_logits(output, target, reduction="none")
        return {"loss": loss, "pt": torch.exp(-plain)}


@LOSSES.register("l1")
class L1(LossComponent):
    """Absolute error."""

    def terms(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        return {"loss": F.l1_loss(output, _like(output, target), reduction="none")}


@LOSSES.register("mse")
class MeanSquaredError(LossComponent):
    """Squared error."""

    def terms(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        return {"loss": F.mse_loss(output, _like(output, target), reduction="none")}


@LOSSES.register("smooth_l1")
class SmoothL1(LossComponent):
    """Huber-like error, quadratic below ``beta``."""

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = float(beta)

    def terms(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        loss = F.smooth_l1_loss(output, _like(output, target), reduction="none", beta=self.beta)
        return {"loss": loss}


@LOSSES.register("focal")
class Focal(LossComponent):
    """Focal loss (Lin et al. 2017): softmax over ``C > 1`` channels, sigmoid for one channel."""

    aux_names = ("pt",)

    def __init__(self, gamma: float = 2.0, alpha: float | None = None) -> None:
        super().__init__()
        if not 0 <= gamma <= 16:
            raise ValueError("gamma must be within [0, 16]")
        self.gamma = float(gamma)
        self.alpha = None if alpha is None else float(alpha)

    def terms(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        if output.dim() > 1 and output.shape[1] > 1:
            ce = F.cross_entropy(output, _class_target(output, target), reduction="none")
            weight: float | Tensor = 1.0 if self.alpha is None else self.alpha
        else:
            target = _like(output, target)
            ce = F.binary_cross_entropy_with_logits(output, target, reduction="none")
            alpha = 0.5 if self.alpha is None else self.alpha
            weight = 1.0 if self.alpha is None else alpha * target + (1 - alpha) * (1 - target)
        pt = torch.exp(-ce)
        return {"loss": weight * (1 - pt) ** self.gamma * ce, "pt": pt}


def _channel_target(output: Tensor, target: Tensor) -> Tensor:
    """MONAI wants ``[N,1,...]`` label maps or one-hot targets shaped like the output."""
    if target.dim() == output.dim() - 1:
        target = target.unsqueeze(1)
    return target.to(output.dtype)


@LOSSES.register("dice")
class Dice(LossComponent):
    """MONAI's Dice loss (a scalar term): set ``sigmoid`` or ``softmax`` for logits."""

    def __init__(
        self,
        sigmoid: bool = False,
        softmax: bool = False,
        to_onehot_y: bool = False,
        include_background: bool = True,
        squared_pred: bool = False,
        jaccard: bool = False,
        batch: bool = False,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
    ) -> None:
        super().__init__()
        self.loss = DiceLoss(
            include_background=include_background,
            to_onehot_y=to_onehot_y,
            sigmoid=sigmoid,
            softmax=softmax,
            squared_pred=squared_pred,
            jaccard=jaccard,
            batch=batch,
            smooth_nr=smooth_nr,
            smooth_dr=smooth_dr,
        )

    def terms(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        return {"loss": self.loss(output, _channel_target(output, target))}


@LOSSES.register("dice_ce")
class DiceCrossEntropy(LossComponent):
    """MONAI's Dice + cross-entropy loss (a scalar term)."""

    def __init__(
        self,
        sigmoid: bool = False,
        softmax: bool = False,
        to_onehot_y: bool = False,
        include_background: bool = True,
        lambda_dice: float = 1.0,
        lambda_ce: float = 1.0,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
    ) -> None:
        super().__init__()
        self.loss = DiceCELoss(
            include_background=include_background,
            to_onehot_y=to_onehot_y,
            sigmoid=sigmoid,
            softmax=softmax,
            lambda_dice=lambda_dice,
            lambda_ce=lambda_ce,
            smooth_nr=smooth_nr,
            smooth_dr=smooth_dr,
        )

    def terms(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        return {"loss": self.loss(output, _channel_target(output, target))}


# --------------------------------------------------------------------------- composite loss


@dataclass(frozen=True)
class LossName:
    """What an expression name stands for: a variable, a component's loss or an aux value."""

    component: str | None
    aux: str | None = None


def loss_namespace(cfg: LossConfig) -> dict[str, LossName]:
    """Every name an expression over ``cfg`` may use; unknown component names are ConfigError."""
    names: dict[str, LossName] = {v: LossName(None) for v in cfg.variables}
    exporters: dict[str, list[str]] = {}
    for key, component in cfg.components.items():
        cls = LOSSES.get(component.name, where=f"components.{key}.name")
        names[key] = LossName(key)
        for aux in cls.aux_names:
            names[f"{key}_{aux}"] = LossName(key, aux)
            exporters.setdefault(aux, []).append(key)
    for aux, keys in exporters.items():
        if len(keys) == 1 and aux not in names:
            names[aux] = LossName(keys[0], aux)
    return names


def compile_loss_expression(cfg: LossConfig) -> CompiledExpression:
    """Parse ``cfg.expression`` over its namespace; exponents may be constants or variables."""
    namespace = loss_namespace(cfg)
    expression = parse_expression(cfg.expression, namespace, exponent_names=cfg.variables)
    if not any(namespace[n].component for n in expression.names):
        raise ConfigError("expression: uses no loss component")
    for name in expression.exponent_names:
        if abs(cfg.variables[name]) > 16:
            raise ConfigError(f"variables.{name}: used as an exponent, must be within ±16")
    # A dry run on plain numbers catches constant division by zero and overflow now, not mid-run.
    expression.evaluate({n: cfg.variables.get(n, 0.5) for n in namespace})
    return expression


class CompositeLoss(nn.Module):
    """The loss a pipeline trains with: its expression over component terms, reduced to a mean."""

    def __init__(self, cfg: LossConfig) -> None:
        super().__init__()
        self.expression = compile_loss_expression(cfg)
        self.namespace = loss_namespace(cfg)
        self.variables = dict(cfg.variables)
        self.components = nn.ModuleDict()
        used = {self.namespace[n].component for n in self.expression.names}
        for key, component in cfg.components.items():
            if key not in used:
                continue
            cls = LOSSES.get(component.name, where=f"components.{key}.name")
            try:
                self.components[key] = cls(**dict(component.params))
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"components.{key}.params: {exc}") from None

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
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
        values: dict[str, Any] = dict(self.variables)
        for name in self.expression.names:
            ref = self.namespace[name]
            if ref.component is not None:
                values[name] = terms[ref.component][ref.aux or "loss"]
        tensors = [v for v in values.values() if isinstance(v, Tensor) and v.dim() > 0]
        if len({t.shape for t in tensors}) > 1:
            # Element-wise arithmetic across shapes would broadcast wrongly: average first.
            values = {k: v.mean() if isinstance(v, Tensor) else v for k, v in values.items()}
        try:
            result = self.expression.evaluate(values)
        except RuntimeError as exc:
            raise TrainingError(f"loss expression {self.expression.text!r}: {exc}") from None
        if not isinstance(result, Tensor):
            raise TrainingError(f"loss expression {self.expression.text!r} gave no tensor")
        return result.mean() if result.dim() > 0 else result


def build_loss(cfg: LossConfig) -> CompositeLoss:
    """The training loss for ``cfg``: ``loss(output, target)`` returns a scalar tensor."""
    return CompositeLoss(cfg)
