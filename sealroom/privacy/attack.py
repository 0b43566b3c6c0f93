"""An empirical check of the guarantee: a loss-threshold membership-inference attack.

The attacker scores each record by its negative loss under the trained model (Yeom et
al. 2018): training members tend to have lower loss. The attack AUC is 0.5 when members
and non-members are indistinguishable. AUC averages over all thresholds; what matters for
privacy is the attack's power at a low false-positive rate (Carlini et al. 2022, "Membership
inference attacks from first principles"), so :func:`tpr_at_fpr` reports the true-positive
rate at a fixed FPR (1 %, 0.1 %) with exact Clopper–Pearson intervals.

``membership_comparison`` trains the same pipeline twice — with DP-SGD in the pipeline's
(or the given) ``grad_sample_mode`` and without DP — and attacks both models. It trains a
non-private model, so it refuses to run unless the caller states the data are public; it
is for tests and benchmarks, never for the room.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import get_args

import numpy as np
import torch
from scipy.stats import binomtest
from torch import Tensor, nn

from sealroom.data import ArrayDataset, FileTree
from sealroom.errors import PrivacyError
from sealroom.pipeline.schema import Pipeline, PrivacyConfig
from sealroom.privacy.noise import NoiseSource
from sealroom.train.loop import Trainer
from sealroom.train.run import prepare_splits

DEFAULT_FPRS = (0.01, 0.001)


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) two-sided interval for a binomial proportion ``k / n``."""
    if n <= 0 or not 0 <= k <= n:
        raise PrivacyError(f"clopper_pearson: need 0 <= k <= n and n > 0 (got k={k}, n={n})")
    if not 0 < confidence < 1:
        raise PrivacyError(f"clopper_pearson: confidence {confidence} is not in (0, 1)")
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class RateAtFpr:
    """The attack's true-positive rate when its threshold allows at most ``fpr`` false positives.

    A record is called a member when its score is strictly above ``threshold``; the
    threshold is the ``(k+1)``-th highest non-member score with ``k = floor(fpr · n)``, so at
    most ``k`` non-members (fewer on ties) are called members.
    """

    fpr_target: float
    threshold: float
    true_positives: int
    members: int
    false_positives: int
    non_members: int
    tpr_ci: tuple[float, float]
    fpr_ci: tuple[float, float]

    @property
    def tpr(self) -> float:
        return self.true_positives / self.members

    @property
    def fpr(self) -> float:
        return self.false_positives / self.non_members


def tpr_at_fpr(
    member_scores: np.ndarray,
    non_member_scores: np.ndarray,
    fpr: float,
    confidence: float = 0.95,
) -> RateAtFpr:
    """TPR of "score above a threshold means member" at false-positive rate at most ``fpr``."""
    members = np.asarray(member_scores, dtype=np.float64)
    others = np.asarray(non_member_scores, dtype=np.float64)
    if members.ndim != 1 or others.ndim != 1 or not len(members) or not len(others):
        raise PrivacyError("tpr_at_fpr: member and non-member scores must be non-empty 1-d arrays")
    if not (np.isfinite(members).all() and np.isfinite(others).all()):
        raise PrivacyError("tpr_at_fpr: scores must be finite")
    if not 0 <= fpr < 1:
        raise PrivacyError(f"tpr_at_fpr: fpr {fpr} is not in [0, 1)")
    allowed = int(np.floor(fpr * len(others) + 1e-9))  # 1e-9: 0.001 * 10000 is 9.999…
    threshold = float(np.sort(others)[::-1][allowed])
    tp = int((members > threshold).sum())
    fp = int((others > threshold).sum())
    return RateAtFpr(
        fpr_target=fpr,
        threshold=threshold,
        true_positives=tp,
        members=len(members),
        false_positives=fp,
        non_members=len(others),
        tpr_ci=clopper_pearson(tp, len(members), confidence),
        fpr_ci=clopper_pearson(fp, len(others), confidence),
    )


@dataclass(frozen=True)
class AttackResult:
    """The loss-threshold attack on one model: AUC and TPR at each fixed FPR."""

    auc: float
    rates: tuple[RateAtFpr, ...]
    members: int
    non_members: int

    def at(self, fpr: float) -> RateAtFpr:
        for rate in self.rates:
            if rate.fpr_target == fpr:
                return rate
        raise PrivacyError(f"attack result: no rate at FPR {fpr} (have {self.fprs()})")

    def fprs(self) -> list[float]:
        return [rate.fpr_target for rate in self.rates]


def score_attack(
    member_scores: np.ndarray,
    non_member_scores: np.ndarray,
    fprs: tuple[float, ...] = DEFAULT_FPRS,
    confidence: float = 0.95,
) -> AttackResult:
    """AUC and TPR at each FPR for membership scores (higher means "member")."""
    return AttackResult(
        auc=roc_auc(member_scores, non_member_scores),
        rates=tuple(tpr_at_fpr(member_scores, non_member_scores, f, confidence) for f in fprs),
        members=len(member_scores),
        non_members=len(non_member_scores),
    )


@dataclass(frozen=True)
class MembershipResult:
    """The attack on the DP model and on the same model trained without DP."""

    private: AttackResult
    non_private: AttackResult
    epsilon: float
    grad_sample_mode: str
    accuracy_private: float | None = None
    accuracy_non_private: float | None = None

    @property
    def auc_private(self) -> float:
        return self.private.auc

    @property
    def auc_non_private(self) -> float:
        return self.non_private.auc

    @property
    def members(self) -> int:
        return self.private.members

    @property
    def non_members(self) -> int:
        return self.private.non_members


def per_example_losses(model: nn.Module, x: Tensor, y: Tensor, batch: int = 1024) -> np.ndarray:
    """Cross-entropy of each record under ``model`` (eval mode, no gradients)."""
    training = model.training
    model.eval()
    losses = []
    with torch.inference_mode():
        for start in range(0, len(x), batch):
            out = model(x[start : start + batch])
            target = y[start : start + batch].long().reshape(len(out))
            losses.append(nn.functional.cross_entropy(out, target, reduction="none").cpu())
    model.train(training)
    return torch.cat(losses).double().numpy()


def roc_auc(member_scores: np.ndarray, non_member_scores: np.ndarray) -> float:
    """Probability that a random member scores above a random non-member (ties count half)."""
    scores = np.concatenate([member_scores, non_member_scores])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(average, counts)
    m, n = len(member_scores), len(non_member_scores)
    return float((ranks[:m].sum() - m * (m + 1) / 2.0) / (m * n))


def dataset_losses(model: nn.Module, data: ArrayDataset) -> np.ndarray:
    """Cross-entropy of each record of ``data`` under ``model``."""
    device = next(model.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(data.x)).to(device)
    y = torch.from_numpy(np.ascontiguousarray(data.y)).to(device)
    return per_example_losses(model, x, y)


def loss_threshold_attack(
    model: nn.Module,
    members: ArrayDataset,
    non_members: ArrayDataset,
    fprs: tuple[float, ...] = DEFAULT_FPRS,
) -> AttackResult:
    """The loss-threshold attack on ``model``: score = −loss; AUC and TPR at each FPR."""
    return score_attack(-dataset_losses(model, members), -dataset_losses(model, non_members), fprs)


def calibrated_loss_attack(
    model: nn.Module,
    reference: nn.Module,
    members: ArrayDataset,
    non_members: ArrayDataset,
    fprs: tuple[float, ...] = DEFAULT_FPRS,
) -> AttackResult:
    """The loss attack calibrated by a reference model trained on other data.

    Score = reference loss − target loss (Watson et al. 2022, "On the importance of
    difficulty calibration in membership inference attacks"): an easy record has low loss
    under both models, so it no longer looks like a member; much stronger at low FPR.
    """

    def scores(data: ArrayDataset) -> np.ndarray:
        return dataset_losses(reference, data) - dataset_losses(model, data)

    return score_attack(scores(members), scores(non_members), fprs)


def loss_threshold_auc(model: nn.Module, members: ArrayDataset, non_members: ArrayDataset) -> float:
    """Attack AUC of the loss-threshold attack on ``model``."""
    return roc_auc(-dataset_losses(model, members), -dataset_losses(model, non_members))


def membership_comparison(
    pipeline: Pipeline,
    public_trees: Mapping[str, FileTree],
    model_tree: FileTree,
    *,
    public: bool,
    noise: NoiseSource | None = None,
    max_samples: int | None = None,
    grad_sample_mode: str | None = None,
    fprs: tuple[float, ...] = DEFAULT_FPRS,
) -> MembershipResult:
    """Train ``pipeline`` with and without DP on public data; attack both models.

    Members are the training split; non-members the validation and test splits, cut to
    the same count so the AUC is balanced. ``grad_sample_mode`` overrides the pipeline's
    (whose default is ``hooks``: the reason this check once covered only that mode).
    """
    from sealroom.privacy.trainer import DPTrainer
    from sealroom.train.models import build_model

    if not public:
        raise PrivacyError(
            "membership comparison trains a non-private model: run it on public data only"
        )
    if pipeline.privacy is None:
        raise PrivacyError("membership comparison: the pipeline has no privacy section")
    if grad_sample_mode is not None:
        modes = get_args(PrivacyConfig.model_fields["grad_sample_mode"].annotation)
        if grad_sample_mode not in modes:
            raise PrivacyError(
                f"membership comparison: grad_sample_mode {grad_sample_mode!r} is not one of "
                f"{', '.join(modes)}"
            )
        privacy = pipeline.privacy.model_copy(update={"grad_sample_mode": grad_sample_mode})
        pipeline = pipeline.model_copy(update={"privacy": privacy})
    assert pipeline.privacy is not None
    splits = prepare_splits(pipeline, public_trees, max_samples)
    held_out = ArrayDataset(
        np.concatenate([splits.val.x, splits.test.x]),
        np.concatenate([splits.val.y, splits.test.y]),
        name="held-out",
    )
    count = min(len(splits.train), len(held_out))
    members = splits.train.subset(np.arange(count))
    non_members = held_out.subset(np.arange(count))

    torch.manual_seed(pipeline.train.seed)
    dp = DPTrainer(pipeline, build_model(pipeline.model, model_tree), splits, noise=noise)
    dp.fit()
    plain_pipeline = pipeline.model_copy(update={"privacy": None})
    torch.manual_seed(pipeline.train.seed)
    plain = Trainer(plain_pipeline, build_model(pipeline.model, model_tree), splits)
    plain.fit()
    return MembershipResult(
        private=loss_threshold_attack(dp.plain_model(), members, non_members, fprs),
        non_private=loss_threshold_attack(plain.plain_model(), members, non_members, fprs),
        epsilon=dp.spent_epsilon(),
        grad_sample_mode=pipeline.privacy.grad_sample_mode,
        accuracy_private=_accuracy(dp),
        accuracy_non_private=_accuracy(plain),
    )


def _accuracy(trainer: Trainer) -> float | None:
    split = "test" if len(trainer.splits.test) else "val"
    value = trainer.evaluate(split, ["accuracy"])["accuracy"]
    return float(value) if value is not None else None
