"""The DP-MNIST story: budget reserved before any key, charged after, aggregate outputs only."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import QuietNarrator, plaintext_markers, scan_for_plaintext

from sealroom.ledger import Ledger
from sealroom.privacy.budget import BudgetBook
from sealroom.room.story import Story, load_scenario
from sealroom.workspace import Workspace


@pytest.mark.slow
def test_dp_story_charges_the_budget_and_releases_aggregates_only(tmp_path: Path) -> None:
    result = Story(load_scenario("dp-mnist"), tmp_path, QuietNarrator(), epochs=1).play()
    record = result.receipt.record
    ws = Workspace.find(result.home)
    with Ledger.open(ws) as ledger:
        kinds = [e.kind for e in ledger.entries()]
    assert kinds.index("budget.reserved") < kinds.index("key.released")
    assert kinds.index("budget.charged") < kinds.index("run.completed")
    assert record.privacy is not None and 0 < record.privacy["epsilon_spent"] <= 3.0
    names = {o.name for o in record.outputs}
    assert "privacy_report.json" in names and "confusion_matrix.png" not in names
    with BudgetBook(ws) as book:
        (budget,) = book.summary("mnist")
    assert budget.spent == pytest.approx(record.privacy["epsilon_spent"])
    markers = plaintext_markers(tmp_path / "provider-hospital" / "mnist")
    assert scan_for_plaintext([ws.home, tmp_path / "consumer-lab"], markers) == []
