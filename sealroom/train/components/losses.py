"""Loss components a config may name, and ``build_loss`` for a whole loss config.

Each component is an ``nn.Module`` registered in ``LOSSES``. Its ``terms`` method returns
unreduced values with the batch axis first: ``"loss"`` plus the auxiliary values it
declares in ``aux_names`` (e.g. ``pt``, the probability of the true class, from
``cross_entropy``). An expression can then combine them without code in the config:
the focal loss is ``alpha * (1 - pt)**gamma * ce`` (see :mod:`.composite`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss
from torch import Tensor, nn

from sealroom.pipeline.registry import Registry
from sealroom.pipeline.schema import LossConfig
from sealroom.train.components import loss_specs

if TYPE_CHECKING:
    from sealroom.train.components.composite import CompositeLoss


class LossComponent(nn.Module):
    """A loss term with per-element values; ``forward`` gives its scalar mean."""

    aux_names: ClassVar[tuple[str, ...]] = ()

    def terms(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        """``{"loss": ..., **aux}``, unreduced where the loss is element-wise."""
        raise NotImplementedError

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        return self.terms(output, target)["loss"].mean()


# Names, parameters and aux names are declared in loss_specs (torch-free, for compose).
LOSSES: Registry[type[LossComponent]] = Registry("loss", declared=loss_specs.LOSS_SPECS)


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
        plain = loss
        if self.weight is not None or self.label_smoothing:  # else pt follows from the loss itself
            plain = F.cross_entropy(
                output, target, reduction="none", ignore_index=self.ignore_index
            )
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
        plain = loss
        if self.weight is not None:
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
        loss_specs.focal(gamma, alpha)
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


def _per_sample(values: Tensor) -> Tensor:
    """Mean over every axis but the batch axis: ``[N, ...] -> [N]``."""
    return values.flatten(1).mean(1) if values.dim() > 1 else values


@LOSSES.register("dice")
class Dice(LossComponent):
    """MONAI's Dice loss, one value per sample: set ``sigmoid`` or ``softmax`` for logits."""

    def __init__(
        self,
        sigmoid: bool = False,
        softmax: bool = False,
        to_onehot_y: bool = False,
        include_background: bool = True,
        squared_pred: bool = False,
        jaccard: bool = False,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
    ) -> None:
        super().__init__()
        # reduction="none" keeps [N, C] so DP-SGD can clip each sample's gradient.
        self.loss = DiceLoss(
            include_background=include_background,
            to_onehot_y=to_onehot_y,
            sigmoid=sigmoid,
            softmax=softmax,
            squared_pred=squared_pred,
            jaccard=jaccard,
            smooth_nr=smooth_nr,
            smooth_dr=smooth_dr,
            reduction="none",
        )

    def terms(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        return {"loss": _per_sample(self.loss(output, _channel_target(output, target)))}


@LOSSES.register("dice_ce")
class DiceCrossEntropy(Dice):
    """Dice plus cross entropy per sample, as MONAI's DiceCELoss (BCE for one channel)."""

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
        super().__init__(
            sigmoid=sigmoid,
            softmax=softmax,
            to_onehot_y=to_onehot_y,
            include_background=include_background,
            smooth_nr=smooth_nr,
            smooth_dr=smooth_dr,
        )
        self.lambda_dice = float(lambda_dice)
        self.lambda_ce = float(lambda_ce)

    def terms(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        target = _channel_target(output, target)
        dice = _per_sample(self.loss(output, target))
        if output.shape[1] == 1:
            ce = F.binary_cross_entropy_with_logits(output, target, reduction="none")
        else:
            # MONAI's rule: a target with one channel holds labels, otherwise it is one-hot.
            labels = target[:, 0] if target.shape[1] == 1 else target.argmax(1)
            ce = F.cross_entropy(output, labels.long(), reduction="none")
        return {"loss": self.lambda_dice * dice + self.lambda_ce * _per_sample(ce)}


def build_loss(cfg: LossConfig) -> CompositeLoss:
    """The training loss for ``cfg``: ``loss(output, target)`` returns a scalar tensor."""
    from sealroom.train.components.composite import CompositeLoss

    return CompositeLoss(cfg)
