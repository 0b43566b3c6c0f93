"""Card statistics: Laplace-noised label counts, each charged in the ledger, within a
per-dataset card budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sealroom.crypto.identity import Party
from sealroom.data.card_build import CardDraft, build_card
from sealroom.data.card_stats import (
    CARD_EPSILON_LIMIT,
    CHARGE_KIND,
    noisy_label_counts,
    release_statistics,
    with_statistics,
)
from sealroom.errors import BudgetExceeded
from sealroom.ledger import Ledger
from sealroom.workspace import Workspace
from tests.data.card_factories import draft, seal_digits, write_digits


def test_label_counts_are_charged_then_released_and_the_card_budget_holds(
    workspace: Workspace, tmp_path: Path
) -> None:
    folder = write_digits(tmp_path / "data", n=30)
    sealed = seal_digits(folder, Party.generate("hospital", "provider"), tmp_path / "p.sealed")
    card, loaded = build_card(
        CardDraft.model_validate(draft()), folder, sealed.manifest, sealed.digest
    )
    with Ledger.open(workspace) as ledger:
        [stat] = release_statistics(ledger, card, [("label_counts", "train", 0.6)], loaded)
        [entry] = ledger.entries(CHARGE_KIND)
        assert entry.payload["epsilon"] == 0.6 and entry.payload["dataset"] == "mnist"
        assert stat.charge == f"{CHARGE_KIND} entry {entry.seq} in the provider's ledger"
        assert len(stat.values) == 10 and all(v >= 0 for v in stat.values)
        # 0.6 spent of the dataset's ε 1.0 card budget: 0.5 more is refused, nothing charged.
        with pytest.raises(BudgetExceeded, match=f"card budget is ε {CARD_EPSILON_LIMIT:g}"):
            release_statistics(ledger, card, [("label_counts", "train", 0.5)], loaded)
        assert len(ledger.entries(CHARGE_KIND)) == 1
    carded = with_statistics(card, [stat])
    assert carded.statistics == [stat]


def test_counts_carry_noise() -> None:
    labels = np.repeat(np.arange(10), 100)
    noisy = [noisy_label_counts(labels, 10, epsilon=0.05) for _ in range(3)]
    assert all(n != [100.0] * 10 for n in noisy)  # scale 20: an exact hit is negligible
    assert noisy[0] != noisy[1]
    assert max(abs(v - 100) for v in noisy_label_counts(labels, 10, epsilon=50.0)) <= 1
