"""Issue 16 in the room: under privacy a BatchNorm the consumer wrote (kept in the ONNX by
the export) is refused before any dataset key is released."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from sealroom.contract.store import load_contract
from sealroom.errors import SealroomError
from sealroom.ledger import Ledger
from sealroom.room.story import Story, load_scenario
from sealroom.train.export import export_onnx
from sealroom.workspace import Workspace
from tests.e2e.stories import QuietNarrator


class WrittenWithBatchNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.BatchNorm2d(4), nn.Tanh())
        self.head = nn.Linear(4 * 13 * 13, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


@pytest.mark.slow  # the whole DP-MNIST story up to the room (~1 min on 2 busy cores)
def test_a_written_batchnorm_gets_no_dataset_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_cnn = Story._run_step

    def lab_saves_a_batchnorm_model(self: Story, argv: list[str], out: Path) -> None:
        if argv[0] != "scenarios.mnist.dp_cnn":
            save_cnn(self, argv, out)
            return
        out.mkdir(parents=True, exist_ok=True)
        data = export_onnx(WrittenWithBatchNorm(), (1, 28, 28)).data
        (out / "model.onnx").write_bytes(data)

    monkeypatch.setattr(Story, "_run_step", lab_saves_a_batchnorm_model)
    base = tmp_path / "story"
    with pytest.raises(SealroomError, match="PrivacyError"):
        Story(load_scenario("dp-mnist"), base, QuietNarrator(), epochs=1).play()

    ws = Workspace.find(base / "workspace")
    contract = load_contract(ws, "dp-mnist-demo").contract
    assert contract.model is not None
    with Ledger.open(ws) as ledger:
        released = [e.payload["package_digest"] for e in ledger.entries("key.released")]
        [failed] = ledger.entries("run.failed")
    assert released == [contract.model.package_digest]  # no dataset key
    # The ledger records the category only; the one-line message (layer, GroupNorm hint)
    # is the room's check_pipeline_model's: tests/privacy/test_privacy_batchnorm.py.
    assert "PrivacyError" in str(failed.payload["reason"])
