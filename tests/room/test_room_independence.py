"""Issue 13 in the room: a private run opens the consumer's model first and checks that it
keeps records apart; a model that mixes the batch gets no dataset key at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealroom.contract.store import load_contract
from sealroom.errors import SealroomError
from sealroom.ledger import Ledger
from sealroom.room.story import Story, load_scenario
from sealroom.workspace import Workspace
from tests.e2e.stories import QuietNarrator
from tests.privacy.mixing_models import issue_graph


def test_a_model_that_mixes_records_gets_no_dataset_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DP-MNIST story with the issue's graph (Gemm → ReduceMean(axes=[0]) → Sub → Tanh
    → Gemm) as the lab's model: the room releases the model's key, refuses the model, and
    never asks for the hospital's key."""
    save_cnn = Story._run_step

    def lab_saves_a_mixing_model(self: Story, argv: list[str], out: Path) -> None:
        if argv[0] != "scenarios.mnist.dp_cnn":
            save_cnn(self, argv, out)
            return
        out.mkdir(parents=True, exist_ok=True)
        mixing = issue_graph(input_dims=(1, 28, 28), hidden=32, classes=10)
        (out / "model.onnx").write_bytes(mixing.SerializeToString())

    monkeypatch.setattr(Story, "_run_step", lab_saves_a_mixing_model)
    base = tmp_path / "story"
    with pytest.raises(SealroomError, match="PrivacyError"):
        Story(load_scenario("dp-mnist"), base, QuietNarrator(), epochs=1).play()

    ws = Workspace.find(base / "workspace")
    contract = load_contract(ws, "dp-mnist-demo").contract
    assert contract.model is not None
    dataset = contract.datasets[0].package_digest
    with Ledger.open(ws) as ledger:
        released = [e.payload["package_digest"] for e in ledger.entries("key.released")]
        [failed] = ledger.entries("run.failed")
    assert released == [contract.model.package_digest]  # the model's key only
    assert dataset not in released
    # The model's key checks the reservation but does not use it up: no record was seen,
    # so the whole reservation goes back.
    with Ledger.open(ws) as ledger:
        assert not ledger.entries("budget.consumed") and not ledger.entries("budget.charged")
        assert ledger.entries("budget.released")
    assert failed.payload["stage"] == "keys"
    assert "PrivacyError" in str(failed.payload["reason"])
