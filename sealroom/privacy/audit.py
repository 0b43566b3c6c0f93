"""A one-run privacy audit: an empirical lower bound on ε from canaries in one training run.

Steinke, Nasr & Jagielski, "Privacy Auditing with One (1) Training Run", NeurIPS 2023
(arXiv:2305.08846). The auditor draws ``m`` canaries and includes each in the training
set independently with probability 1/2, from a seeded generator it keeps (the inclusion
vector ``S``). After one run it scores every canary, guesses IN for the ``k+`` highest
scores and OUT for the ``k-`` lowest (abstaining on the rest) and counts the ``v``
correct guesses out of ``r = k+ + k-``. If training is (ε, δ)-DP, the number of correct
guesses is dominated by Binomial(r, e^ε / (1 + e^ε)) up to a δ term (their main
theorem); :func:`p_value` is the p-value procedure they give for it (the probability of
``v`` or more correct guesses under that null) and :func:`epsilon_lower_bound` the
largest ε whose p-value is below ``1 − confidence``.

What it bounds: with the stated confidence, training is NOT (ε', δ)-DP for any
ε' < the bound. It is a lower bound; a bound far below the accountant's ε is expected
(input-space canaries and a loss score are weak attacks) and proves nothing about
privacy. It catches implementations that leak far more than they claim: a run whose
bound exceeds its accounted ε is broken.

``k+`` and ``k-`` must be fixed before looking at the scores; :func:`audit_scores_best`
tries several and pays for it with a Bonferroni correction.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom
from torch import nn

from sealroom.data import ArrayDataset, Splits
from sealroom.errors import PrivacyError
from sealroom.pipeline.schema import Pipeline
from sealroom.privacy.noise import NoiseSource

_BISECTION_STEPS = 40


def p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """P[≥ v of r guesses correct] for an (ε, δ)-DP run with m canaries (Steinke et al. 2023).

    ``β = P[Binomial(r, q) ≥ v]`` with ``q = e^ε / (1 + e^ε)``, plus ``2 m δ · α`` where
    ``α = max_{1≤i≤v} P[v − i ≤ Binomial(r, q) < v] / i`` (their procedure for δ > 0).
    """
    _check_counts(m, r, v)
    if epsilon < 0 or not math.isfinite(epsilon):
        raise PrivacyError(f"one-run audit: ε {epsilon} must be finite and >= 0")
    if not 0 <= delta <= 1:
        raise PrivacyError(f"one-run audit: δ {delta} is not in [0, 1]")
    q = 1.0 / (1.0 + math.exp(-epsilon))
    beta = float(binom.sf(v - 1, r, q))
    alpha = 0.0
    if v > 0 and delta > 0:
        below = binom.pmf(np.arange(v - 1, -1, -1), r, q)  # P[B = v-1], P[B = v-2], …, P[B = 0]
        alpha = float(np.max(np.cumsum(below) / np.arange(1, v + 1)))
    return min(beta + alpha * delta * 2 * m, 1.0)


def epsilon_lower_bound(m: int, r: int, v: int, delta: float, confidence: float = 0.95) -> float:
    """The largest ε whose p-value for ``v`` correct of ``r`` is below ``1 − confidence``.

    0.0 when even ε = 0 cannot be rejected (e.g. half the guesses correct).
    """
    _check_counts(m, r, v)
    if not 0 < confidence < 1:
        raise PrivacyError(f"one-run audit: confidence {confidence} is not in (0, 1)")
    level = 1.0 - confidence
    if p_value(m, r, v, 0.0, delta) >= level:
        return 0.0
    low, high = 0.0, 1.0  # p_value(low) < level <= p_value(high)
    while p_value(m, r, v, high, delta) < level:
        high *= 2
        if high > 1e4:  # p_value tends to 1 as ε grows; unreachable for r >= 1
            raise PrivacyError("one-run audit: no ε upper end found")
    for _ in range(_BISECTION_STEPS):
        mid = (low + high) / 2
        if p_value(m, r, v, mid, delta) < level:
            low = mid
        else:
            high = mid
    return low


def draw_inclusion(m: int, seed: int) -> np.ndarray:
    """``m`` canaries, each IN with probability 1/2 independently; the auditor keeps ``seed``."""
    if m < 1:
        raise PrivacyError(f"one-run audit: {m} canaries; need at least 1")
    return np.random.default_rng(seed).integers(0, 2, size=m).astype(bool)


def guesses(scores: np.ndarray, k_plus: int, k_minus: int) -> np.ndarray:
    """+1 (IN) for the ``k_plus`` highest scores, −1 (OUT) for the ``k_minus`` lowest, else 0."""
    scores = np.asarray(scores, dtype=np.float64)
    m = len(scores)
    if k_plus < 0 or k_minus < 0 or k_plus + k_minus > m:
        raise PrivacyError(
            f"one-run audit: k+ {k_plus} and k- {k_minus} must be >= 0 with k+ + k- <= m ({m})"
        )
    if not np.isfinite(scores).all():
        raise PrivacyError("one-run audit: canary scores must be finite")
    order = np.argsort(scores, kind="stable")
    out = np.zeros(m, dtype=np.int8)
    out[order[m - k_plus :]] = 1
    out[order[:k_minus]] = -1
    return out


@dataclass(frozen=True)
class AuditResult:
    """One audit: m canaries, r guesses, v correct, and the ε lower bound they give."""

    canaries: int
    included: int
    k_plus: int
    k_minus: int
    guesses: int
    correct: int
    delta: float
    confidence: float
    epsilon_lower_bound: float


def audit_scores(
    scores: np.ndarray,
    included: np.ndarray,
    *,
    k_plus: int,
    k_minus: int,
    delta: float,
    confidence: float = 0.95,
) -> AuditResult:
    """Guess from ``scores`` (higher means "was trained on"), count correct, bound ε."""
    included = np.asarray(included)
    if included.dtype != bool or included.shape != np.shape(scores):
        raise PrivacyError("one-run audit: inclusion must be a bool array, one entry per score")
    guess = guesses(scores, k_plus, k_minus)
    truth = np.where(included, 1, -1)
    r = int(np.count_nonzero(guess))
    v = int(np.count_nonzero(guess == truth))
    m = len(included)
    return AuditResult(
        canaries=m,
        included=int(included.sum()),
        k_plus=k_plus,
        k_minus=k_minus,
        guesses=r,
        correct=v,
        delta=delta,
        confidence=confidence,
        epsilon_lower_bound=epsilon_lower_bound(m, r, v, delta, confidence),
    )


def audit_scores_best(
    scores: np.ndarray,
    included: np.ndarray,
    ks: Sequence[tuple[int, int]],
    *,
    delta: float,
    confidence: float = 0.95,
) -> AuditResult:
    """The best of several (k+, k-) choices, each at confidence ``1 − (1 − confidence)/len(ks)``.

    The Bonferroni split keeps the reported bound valid at ``confidence`` although the
    choice was made after seeing the scores.
    """
    if not ks:
        raise PrivacyError("one-run audit: no (k+, k-) choices given")
    each = 1.0 - (1.0 - confidence) / len(ks)
    results = [
        audit_scores(scores, included, k_plus=kp, k_minus=km, delta=delta, confidence=each)
        for kp, km in ks
    ]
    best = max(results, key=lambda result: result.epsilon_lower_bound)
    return AuditResult(**{**best.__dict__, "confidence": confidence})


# --------------------------------------------------------------------------- canaries


@dataclass(frozen=True)
class CanarySet:
    """Canary records and the auditor's secret inclusion vector."""

    x: np.ndarray
    y: np.ndarray
    included: np.ndarray

    def __len__(self) -> int:
        return len(self.x)

    def dataset(self) -> ArrayDataset:
        return ArrayDataset(self.x, self.y, name="canaries")

    def members(self) -> ArrayDataset:
        return ArrayDataset(self.x[self.included], self.y[self.included], name="canaries-in")


def mislabeled_canaries(pool: ArrayDataset, m: int, num_classes: int, seed: int) -> CanarySet:
    """``m`` records drawn from ``pool`` (data not otherwise trained on) with a wrong label.

    A wrong label makes a canary hard to fit unless it is trained on, so its loss tells
    IN from OUT. Each label is shifted by a uniform 1..num_classes-1, never to itself.
    """
    if m > len(pool):
        raise PrivacyError(f"one-run audit: {m} canaries but the pool holds {len(pool)} records")
    if num_classes < 2:
        raise PrivacyError("one-run audit: mislabeled canaries need at least 2 classes")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(pool), size=m, replace=False))
    shift = rng.integers(1, num_classes, size=m)
    labels = ((pool.y[pick].astype(np.int64) + shift) % num_classes).astype(pool.y.dtype)
    included = draw_inclusion(m, int(rng.integers(0, 2**63 - 1)))
    return CanarySet(np.ascontiguousarray(pool.x[pick]), labels, included)


def noise_canaries(m: int, sample_shape: tuple[int, ...], num_classes: int, seed: int) -> CanarySet:
    """``m`` uniform-noise inputs in [0, 1) with uniform random labels: out of distribution.

    No real record looks like them, so nothing but their own presence in training fits
    their labels: a stronger signal than mislabeled real records.
    """
    if m < 1 or num_classes < 2:
        raise PrivacyError("one-run audit: noise canaries need m >= 1 and at least 2 classes")
    rng = np.random.default_rng(seed)
    x = rng.random((m, *sample_shape), dtype=np.float32)
    y = rng.integers(0, num_classes, size=m).astype(np.int64)
    included = draw_inclusion(m, int(rng.integers(0, 2**63 - 1)))
    return CanarySet(x, y, included)


def with_canaries(train: ArrayDataset, canaries: CanarySet) -> ArrayDataset:
    """The training set plus the canaries drawn IN (order is irrelevant under Poisson sampling)."""
    inside = canaries.members()
    return ArrayDataset(
        np.concatenate([train.x, inside.x.astype(train.x.dtype)]),
        np.concatenate([train.y, inside.y.astype(train.y.dtype)]),
        name=f"{train.name}+canaries",
    )


def loss_drop_scores(
    trained: nn.Module, initial: nn.Module | None, canaries: CanarySet
) -> np.ndarray:
    """Score per canary: its loss under the initial model minus under the trained one.

    Subtracting the initial loss (the auditor knows the seeded initial weights) removes
    each canary's own difficulty; without ``initial`` the score is the negative loss.
    """
    from sealroom.privacy.attack import dataset_losses

    data = canaries.dataset()
    scores = -dataset_losses(trained, data)
    if initial is not None:
        scores += dataset_losses(initial, data)
    return scores


def snapshot(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` before training, for :func:`loss_drop_scores`."""
    return copy.deepcopy(model).eval()


@dataclass(frozen=True)
class CanaryRun:
    """One training run with canaries and its audit."""

    audit: AuditResult
    epsilon: float | None  # the accountant's ε; None for a non-private run
    grad_sample_mode: str | None
    train_records: int
    seconds: float


def run_canary_audit(
    pipeline: Pipeline,
    model: nn.Module,
    train: ArrayDataset,
    canaries: CanarySet,
    *,
    ks: Sequence[tuple[int, int]],
    delta: float,
    confidence: float = 0.95,
    noise: NoiseSource | None = None,
) -> CanaryRun:
    """Train ``pipeline`` once on ``train`` plus the IN canaries, score all canaries, audit.

    DP-SGD (:class:`DPTrainer`) when the pipeline has a privacy section, else the plain
    trainer (the baseline that shows the audit can see a leak). For benchmarks and tests.
    """
    from sealroom.privacy.trainer import DPTrainer
    from sealroom.train.loop import Trainer

    data = with_canaries(train, canaries)
    empty = data.subset(np.arange(0))
    splits = Splits(data, empty, empty)
    initial = snapshot(model)
    started = time.perf_counter()
    trainer: Trainer
    if pipeline.privacy is not None:
        trainer = DPTrainer(pipeline, model, splits, noise=noise)
    else:
        trainer = Trainer(pipeline, model, splits)
    trainer.fit()
    seconds = time.perf_counter() - started
    scores = loss_drop_scores(trainer.plain_model(), initial, canaries)
    result = audit_scores_best(scores, canaries.included, ks, delta=delta, confidence=confidence)
    return CanaryRun(
        audit=result,
        epsilon=trainer.spent_epsilon() if isinstance(trainer, DPTrainer) else None,
        grad_sample_mode=pipeline.privacy.grad_sample_mode if pipeline.privacy else None,
        train_records=len(data),
        seconds=seconds,
    )


def _check_counts(m: int, r: int, v: int) -> None:
    if not 0 <= v <= r <= m:
        raise PrivacyError(
            f"one-run audit: need 0 <= correct <= guesses <= canaries, got {v}, {r}, {m}"
        )
