"""Statistics of the real records on a card: released only under differential privacy, charged.

A card is published before any contract exists, so the contract budgets of
:mod:`sealroom.privacy.budget` (per contract and dataset) cannot pay for it. Card statistics
are charged instead to a per-dataset *card budget* kept in the provider's ledger: each
release appends a ``card.statistic`` entry (dataset, package, statistic, ε, mechanism), and
a release that would take the dataset's card statistics past ``CARD_EPSILON_LIMIT`` is
refused. Label counts have L1 sensitivity 1 (adding or removing one record changes one count
by one), so Laplace noise of scale 1/ε gives ε-DP; rounding and clipping at 0 afterwards are
post-processing.
"""

from __future__ import annotations

import secrets

import numpy as np

from sealroom.data.dataset import ArrayDataset
from sealroom.errors import BudgetExceeded, DataError
from sealroom.ledger import Ledger
from sealroom.pipeline.card import DataCard, FittedStatistic

CHARGE_KIND = "card.statistic"
CARD_EPSILON_LIMIT = 1.0  # total ε of all card statistics of one dataset, ever
SLACK = 1e-9


def card_epsilon_spent(ledger: Ledger, dataset: str) -> float:
    """ε the dataset's card statistics have used so far (every package and card of it)."""
    return sum(float(e.payload["epsilon"]) for e in ledger.find(CHARGE_KIND, dataset=dataset))


def noisy_label_counts(labels: np.ndarray, classes: int, epsilon: float) -> list[float]:
    """Per-class counts + Laplace(1/ε) noise from a secret seed, rounded and clipped at 0."""
    counts = np.bincount(labels.astype(np.int64).ravel(), minlength=classes)[:classes]
    rng = np.random.default_rng(secrets.randbits(128))
    noisy = counts + rng.laplace(0.0, 1.0 / epsilon, size=classes)
    return [float(max(0, round(v))) for v in noisy]


def release_statistics(
    ledger: Ledger,
    card: DataCard,
    requests: list[tuple[str, str, float]],
    loaded: dict[str, ArrayDataset],
) -> list[FittedStatistic]:
    """Each ``(name, source, ε)`` released and charged (the charge is appended first)."""
    spent = card_epsilon_spent(ledger, card.dataset)
    asked = sum(eps for _, _, eps in requests)
    if spent + asked > CARD_EPSILON_LIMIT + SLACK:
        raise BudgetExceeded(
            f"dataset {card.dataset}: card statistics would use ε {spent + asked:g} in all "
            f"(ε {spent:g} already released, {asked:g} asked); the card budget is ε "
            f"{CARD_EPSILON_LIMIT:g} per dataset"
        )
    released: list[FittedStatistic] = []
    for name, source_name, epsilon in requests:
        source = card.source(source_name)
        target = source.target
        if target is None or target.kind != "class" or not target.classes:
            raise DataError(f"statistics.{name}: source {source_name} has no class target to count")
        receipt = ledger.append(
            CHARGE_KIND,
            {
                "dataset": card.dataset,
                "package_digest": card.package_digest,
                "statistic": name,
                "source": source_name,
                "mechanism": "laplace",
                "epsilon": epsilon,
                "delta": 0.0,
            },
        )
        values = noisy_label_counts(loaded[source_name].y, len(target.classes), epsilon)
        released.append(
            FittedStatistic(
                name=name,
                source=source_name,
                mechanism="laplace",
                epsilon=epsilon,
                delta=0.0,
                values=values,
                charge=f"{CHARGE_KIND} entry {receipt.seq} in the provider's ledger",
            )
        )
    return released


def with_statistics(card: DataCard, statistics: list[FittedStatistic]) -> DataCard:
    """The card with ``statistics`` added, validated again."""
    document = card.model_dump(mode="json")
    document["statistics"] = [s.model_dump(mode="json") for s in statistics]
    return DataCard.model_validate(document)
