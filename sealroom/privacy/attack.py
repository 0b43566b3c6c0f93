"""An empirical check of the guarantee: a loss-threshold membership-inference attack.

The attacker scores each record by its negative loss under the trained model (Yeom et
al. 2018): training members tend to have lower loss. The attack AUC is 0.5 when members
and non-members are indistinguishable. ``membership_comparison`` trains the same pipeline
twice — with DP-SGD and without — and reports both AUCs. It trains a non-private model,
so it refuses to run unless the caller states the data are public; it is for tests and
benchmarks, never for the room.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from sealroom.data import ArrayDataset, FileTree
from sealroom.errors import PrivacyError
from sealroom.pipeline.schema import Pipeline
from sealroom.privacy.noise import NoiseSource
from sealroom.train.loop import Trainer
from sealroom.train.run import prepare_splits


@dataclass(frozen=True)
class MembershipResult:
    """Attack AUCs on the DP model and on the same model trained without DP."""

    auc_private: float
    auc_non_private: float
    epsilon: float
    members: int
    non_members: int
    accuracy_private: float | None = None
    accuracy_non_private: float | None = None


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


def loss_threshold_auc(model: nn.Module, members: ArrayDataset, non_members: ArrayDataset) -> float:
    """Attack AUC of the loss-threshold attack on ``model``."""
    device = next(model.parameters()).device

    def losses(data: ArrayDataset) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(data.x)).to(device)
        y = torch.from_numpy(np.ascontiguousarray(data.y)).to(device)
        return per_example_losses(model, x, y)

    return roc_auc(-losses(members), -losses(non_members))


def membership_comparison(
    pipeline: Pipeline,
    public_trees: Mapping[str, FileTree],
    model_tree: FileTree,
    *,
    public: bool,
    noise: NoiseSource | None = None,
    max_samples: int | None = None,
) -> MembershipResult:
    """Train ``pipeline`` with and without DP on public data; attack both models.

    Members are the training split; non-members the validation and test splits, cut to
    the same count so the AUC is balanced.
    """
    from sealroom.privacy.trainer import DPTrainer
    from sealroom.train.models import build_model

    if not public:
        raise PrivacyError(
            "membership comparison trains a non-private model: run it on public data only"
        )
    if pipeline.privacy is None:
        raise PrivacyError("membership comparison: the pipeline has no privacy section")
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
        auc_private=loss_threshold_auc(dp.plain_model(), members, non_members),
        auc_non_private=loss_threshold_auc(plain.plain_model(), members, non_members),
        epsilon=dp.spent_epsilon(),
        members=count,
        non_members=count,
        accuracy_private=_accuracy(dp),
        accuracy_non_private=_accuracy(plain),
    )


def _accuracy(trainer: Trainer) -> float | None:
    split = "test" if len(trainer.splits.test) else "val"
    value = trainer.evaluate(split, ["accuracy"])["accuracy"]
    return float(value) if value is not None else None
