"""The room's privacy flow: reserve, train with the hard stop, settle, release, refuse the next."""

from __future__ import annotations

import json

import pytest

from sealroom.data import MemoryTree
from sealroom.errors import BudgetExceeded
from sealroom.privacy.budget import BudgetBook
from sealroom.privacy.noise import SeededRandom
from sealroom.privacy.release import filter_outputs
from sealroom.privacy.trainer import DPTrainerFactory
from sealroom.train.run import run_pipeline
from sealroom.workspace import Workspace
from tests.privacy.helpers import make_contract, private_pipeline
from tests.train.tiny import idx_tree


def test_reserve_train_settle_release(workspace: Workspace) -> None:
    contract = make_contract(datasets={"blobs": (3.0, 1e-3, 5.0, 1e-2)})
    pipeline = private_pipeline({"epsilon": 3.0, "delta": 1e-3, "accountant": "rdp"})
    assert pipeline.privacy is not None
    factory = DPTrainerFactory(noise=SeededRandom(0))
    with BudgetBook(workspace) as book:
        book.reserve("run-1", contract, pipeline.privacy.epsilon, pipeline.privacy.delta)
        try:
            outcome = run_pipeline(
                pipeline, {"blobs": idx_tree()}, MemoryTree({}), trainer_factory=factory
            )
        finally:
            book.settle("run-1", factory.spent_epsilon())
        [state] = book.summary("blobs")
        report = json.loads(outcome.outputs["privacy_report.json"])
        assert state.spent == pytest.approx(report["epsilon_spent"]) and state.spent <= 3.0
        assert state.remaining == pytest.approx(5.0 - report["epsilon_spent"])
        with pytest.raises(BudgetExceeded, match="dataset blobs"):
            book.reserve("run-2", contract, 3.0, 1e-3)
    released = filter_outputs(outcome.outputs, contract.constraints, private=True)
    assert "privacy_report.json" in released and "confusion_matrix.png" not in released
    assert "confusion_matrix" not in json.loads(released["metrics.json"])["metrics"]
