"""Room session helpers: failure categories, what a run reserves, who holds the keys."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from pydantic import ValidationError

from sealroom.contract.schema import Constraints, Contract, DatasetRef
from sealroom.errors import DataError, KeyReleaseDenied, PolicyDenied, PrivacyError
from sealroom.pipeline.compose import compose
from sealroom.pipeline.schema import PrivacyConfig
from sealroom.room.failures import failure_reason
from sealroom.room.privacy_hooks import budget_needed
from sealroom.room.session import key_custody

KEY = base64.b64encode(bytes(32)).decode()
MNIST = Path(__file__).resolve().parents[2] / "scenarios" / "mnist"


def test_before_any_key_sealroom_refusals_are_shown_as_they_are() -> None:
    refusal = PolicyDenied("epochs 50 exceed the contract's limit 10")
    assert failure_reason(refusal, "policy", keys_released=False) == str(refusal)


def test_after_a_key_only_the_category_and_the_class_name() -> None:
    leaky = DataError("record 17: value 831.0 is not a label")
    assert failure_reason(leaky, "train", True) == "data loading failed: DataError"
    model = IndexError("index 831 is out of bounds for dimension 0 with size 10")
    assert failure_reason(model, "train", True) == "training failed: IndexError raised by the model"
    assert failure_reason(KeyReleaseDenied("x"), "keys", True) == "key release denied"
    assert failure_reason(PrivacyError("ε 2.9"), "release", True) == (
        "releasing outputs failed: PrivacyError"
    )


def test_foreign_errors_before_any_key_say_no_message_either() -> None:
    reason = failure_reason(ValueError("row\n" + "0.123 " * 500), "policy", False)
    assert reason == "pipeline check failed: ValueError"


def test_signals_say_so() -> None:
    assert failure_reason(SystemExit("signal SIGTERM"), "train", True) == "room stopped by a signal"


def test_key_custody_says_plainly_who_holds_the_keys(tmp_path: Path) -> None:
    embedded = key_custody([_dataset(None), _dataset("http://127.0.0.1:8700")])
    assert "no protection from the operator" in embedded
    assert key_custody([_dataset("http://127.0.0.1:8700")]) == (
        "external key service(s): http://127.0.0.1:8700"
    )


def _dataset(url: str | None) -> DatasetRef:
    return DatasetRef(id="d", provider="h", package_digest="sha256:" + "a" * 64, key_service=url)


def test_private_run_on_data_without_budgets_reserves_nothing() -> None:
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
    assert budget_needed(contract, pipeline) is False
    assert budget_needed(contract, private) is False


def _constraints(**extra: object) -> dict[str, object]:
    return {
        "model_formats": ["onnx"],
        "optimizers": ["sgd"],
        "losses": ["cross_entropy"],
        "metrics": ["accuracy", "confusion_matrix"],
        "max_epochs": 1,
        "released_outputs": ["model", "metrics"],
        **extra,
    }


def test_public_metrics_must_be_metrics_the_contract_releases() -> None:
    assert Constraints.model_validate(_constraints(public_metrics=["accuracy"])).public_metrics
    with pytest.raises(ValidationError, match="public_metrics 'f1' is not one of"):
        Constraints.model_validate(_constraints(public_metrics=["accuracy", "f1"]))


def test_a_dataset_key_service_is_an_http_url() -> None:
    assert _dataset("https://kms.hospital.example:8700").key_service
    for bad in ("file:///etc/passwd", "127.0.0.1:8700", "http://a b"):
        with pytest.raises(ValidationError, match="key_service"):
            _dataset(bad)


def test_failure_details_are_refused_with_privacy_terms() -> None:
    document = Contract.model_validate(
        {
            "id": "c1",
            "purpose": "p",
            "parties": [
                {"name": "lab", "role": "consumer", "signing_key": KEY, "encryption_key": KEY}
            ],
            "consumer": "lab",
            "constraints": _constraints(failure_details=True),
            "not_before": "2026-01-01T00:00:00Z",
            "expires": "2027-01-01T00:00:00Z",
        }
    ).model_dump(mode="json")
    document["constraints"]["require_privacy"] = True
    with pytest.raises(ValidationError, match="failure_details cannot be set"):
        Contract.model_validate(document)
