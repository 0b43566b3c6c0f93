"""Room session helpers: one-line failure reasons, and what a run reserves from the budget."""

from __future__ import annotations

import base64
from pathlib import Path

from sealroom.contract.schema import Contract
from sealroom.errors import PolicyDenied
from sealroom.pipeline.compose import compose
from sealroom.pipeline.schema import PrivacyConfig
from sealroom.room.privacy_hooks import reserve
from sealroom.room.session import failure_reason
from sealroom.workspace import Workspace

KEY = base64.b64encode(bytes(32)).decode()
MNIST = Path(__file__).resolve().parents[2] / "scenarios" / "mnist"


def test_sealroom_errors_are_reported_as_they_are() -> None:
    assert failure_reason(PolicyDenied("epochs 50 exceed the contract's limit 10")) == (
        "epochs 50 exceed the contract's limit 10"
    )


def test_foreign_errors_are_one_short_line_with_their_type() -> None:
    reason = failure_reason(ValueError("row\n" + "0.123 " * 500))
    assert reason.startswith("ValueError: row 0.123")
    assert "\n" not in reason and len(reason) < 240


def test_signals_say_so() -> None:
    assert (
        failure_reason(SystemExit("signal SIGTERM")) == "room stopped by a signal (signal SIGTERM)"
    )
    assert failure_reason(RuntimeError()) == "RuntimeError"


def test_private_run_on_data_without_budgets_reserves_nothing(workspace: Workspace) -> None:
    contract = Contract.model_validate(
        {
            "id": "c1",
            "purpose": "p",
            "parties": [
                {"name": "lab", "role": "consumer", "signing_key": KEY, "encryption_key": KEY}
            ],
            "consumer": "lab",
            "constraints": {
                "model_formats": ["onnx"],
                "optimizers": ["sgd"],
                "losses": ["cross_entropy"],
                "metrics": ["accuracy"],
                "max_epochs": 1,
                "released_outputs": ["model"],
            },
            "not_before": "2026-01-01T00:00:00Z",
            "expires": "2027-01-01T00:00:00Z",
        }
    )
    pipeline = compose(MNIST)
    private = pipeline.model_copy(update={"privacy": PrivacyConfig(epsilon=1.0, delta=1e-5)})
    assert reserve(workspace, "run-1", contract, pipeline) is False
    assert reserve(workspace, "run-1", contract, private) is False
