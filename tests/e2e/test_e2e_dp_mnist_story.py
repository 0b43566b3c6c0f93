"""The DP-MNIST story (one epoch): DP-SGD in the room, the privacy report decrypted by the
lab, the budget charged and on the ledger; the budget then admits one more run, not two."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealroom.errors import SealroomError
from sealroom.ledger import Ledger
from sealroom.privacy.budget import BudgetBook
from sealroom.room.launcher import run_room
from sealroom.room.story import Story, StoryResult, load_scenario
from sealroom.workspace import Workspace
from tests.e2e.stories import QuietNarrator


@pytest.fixture(scope="module")
def dp_story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, StoryResult]]:
    base = tmp_path_factory.mktemp("dp-mnist-story")
    saved = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(tmp_path_factory.mktemp("dp-room-tmp"))
    try:
        yield base, Story(load_scenario("dp-mnist"), base, QuietNarrator(), epochs=1).play()
    finally:
        if saved is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved


@pytest.mark.slow
def test_dp_story_releases_a_private_model_and_charges_the_budget(
    dp_story: tuple[Path, StoryResult],
) -> None:
    _, result = dp_story
    names = {p.name for p in result.outputs.iterdir()}
    assert {"trained_model.onnx", "privacy_report.json", "metrics.json"} <= names
    assert "confusion_matrix.png" not in names
    report = json.loads((result.outputs / "privacy_report.json").read_bytes())
    assert report["epsilon_spent"] <= report["epsilon_target"] == 3.0
    assert report["n_train"] == 1437 and report["rng"].startswith("ChaCha20")
    ws = Workspace.find(result.home)
    with BudgetBook(ws) as book:
        [budget] = book.summary("mnist")
    assert budget.spent == pytest.approx(report["epsilon_spent"]) and budget.reserved == 0.0
    with Ledger.open(ws) as ledger:
        kinds = [e.kind for e in ledger.entries() if e.kind.startswith("budget.")]
        reserved = ledger.find("budget.reserved")[0].seq
        first_key = min(e.seq for e in ledger.entries("key.released"))
        consumed = ledger.entries("budget.consumed")
        [reservation] = ledger.entries("budget.reserved")[:1]
    # The first key released to the run consumed its reservation (issue 13: bound to the run).
    assert kinds[:3] == ["budget.reserved", "budget.consumed", "budget.charged"]
    assert consumed[0].payload["run_id"] == reservation.payload["run_id"]
    assert reserved < first_key  # budget reserved before any key left the key service


@pytest.mark.slow
def test_dp_story_budget_admits_one_more_run_then_refuses(
    dp_story: tuple[Path, StoryResult],
) -> None:
    base, result = dp_story
    ws = Workspace.find(result.home)
    pipeline = base / "consumer-lab" / "pipeline.json"
    run_room(ws, "dp-mnist-demo", pipeline)  # spends about 3 of the remaining 5
    with pytest.raises(SealroomError, match=r"only .* of the total 8 remains"):
        run_room(ws, "dp-mnist-demo", pipeline)
    with BudgetBook(ws) as book:
        [budget] = book.summary("mnist")
    assert budget.spent <= 8.0 and budget.reserved == 0.0
    assert len(budget.runs) == 2  # the refused run never held a reservation


@pytest.mark.slow
def test_dp_story_without_the_pinned_declaration_gets_no_key(
    dp_story: tuple[Path, StoryResult],
) -> None:
    base, result = dp_story
    ws = Workspace.find(result.home)
    folder = ws.home / "declarations"
    hidden = base / "declarations-elsewhere"
    folder.rename(hidden)
    try:
        with Ledger.open(ws) as ledger:
            keys_before = len(ledger.find("key.released"))
        with pytest.raises(SealroomError, match="was not given to the room"):
            run_room(ws, "dp-mnist-demo", base / "consumer-lab" / "pipeline.json")
        with Ledger.open(ws) as ledger:
            assert len(ledger.find("key.released")) == keys_before
            assert ledger.find("run.failed")[-1].payload["stage"] == "policy"
    finally:
        hidden.rename(folder)
