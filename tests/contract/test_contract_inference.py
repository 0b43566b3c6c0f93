"""Inference contracts go through propose, sign, register, verify and revoke unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.contract import propose_contract, sign_contract, verify_contract
from sealroom.contract.canonical import contract_digest
from sealroom.contract.revocation import ContractRevoked
from sealroom.contract.schema import SERVING_ONLY, Contract
from sealroom.contract.workflow import revoke_contract
from sealroom.crypto.identity import Party, create_party
from sealroom.errors import ContractError
from sealroom.ledger import Ledger
from sealroom.policy.pipeline_check import check_pipeline
from sealroom.workspace import Workspace
from tests.kms.factories import make_pipeline

EXAMPLE = Path(__file__).parent / "data" / "inference-contract.yaml"
runner = CliRunner()


@pytest.fixture
def serving_parties(workspace: Workspace) -> dict[str, Party]:
    return {
        "lab": create_party(workspace, "lab", "consumer"),
        "operator": create_party(workspace, "operator", "operator"),
        "clinic": create_party(workspace, "clinic", "consumer"),
    }


def _draft(tmp_path: Path, **changes: Any) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    data.update(changes)
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_example_proposes_signs_registers_and_verifies(
    workspace: Workspace, serving_parties: dict[str, Party]
) -> None:
    signed = propose_contract(workspace, EXAMPLE, "lab")
    assert signed.missing_signers == ["operator"]
    signed = sign_contract(workspace, "mnist-serve", "operator")
    assert signed.receipt is not None
    verified = verify_contract(workspace, "mnist-serve")
    contract = verified.contract
    assert contract.inference is not None and contract.model is not None
    assert contract.model.owner == contract.consumer == "lab"
    assert contract.datasets == []
    assert contract.constraints.model_dump(exclude_defaults=True) == SERVING_ONLY
    # The client's key left out of the draft is the clinic's identity, frozen at propose.
    clinic = contract.inference.client("clinic")
    assert clinic.signing_key == serving_parties["clinic"].identity.signing_key
    assert contract.inference.client("auditor").signing_key.startswith("AAECAw")
    with Ledger.open(workspace) as ledger:
        [entry] = ledger.entries("contract.registered")
    assert entry.payload["contract_digest"] == contract_digest(contract) == verified.digest


def test_the_inference_terms_are_signed(
    workspace: Workspace, serving_parties: dict[str, Party]
) -> None:
    """Two drafts that differ only in the output policy have different digests."""
    first = propose_contract(workspace, EXAMPLE, "lab")
    other = Contract.model_validate(
        {
            **first.contract.model_dump(),
            "id": "other",
            "inference": {
                **first.contract.model_dump()["inference"],
                "output": {"kind": "probabilities"},
            },
        }
    )
    same = Contract.model_validate({**first.contract.model_dump(), "id": "other"})
    assert contract_digest(other) != contract_digest(same)


def test_revoked_inference_contract_no_longer_verifies(
    workspace: Workspace, serving_parties: dict[str, Party]
) -> None:
    propose_contract(workspace, EXAMPLE, "lab")
    sign_contract(workspace, "mnist-serve", "operator")
    revoke_contract(workspace, "mnist-serve", "operator", "client data leaked")
    with pytest.raises(ContractRevoked):
        verify_contract(workspace, "mnist-serve")


def test_a_training_pipeline_is_refused_under_an_inference_contract(
    workspace: Workspace, serving_parties: dict[str, Party]
) -> None:
    contract = propose_contract(workspace, EXAMPLE, "lab").contract
    decision = check_pipeline(contract, make_pipeline(privacy=None))
    assert not decision.allow
    assert "contract mnist-serve is an inference contract: no training run" in decision.violations


def test_a_training_contract_is_unaffected_by_the_rule(
    workspace: Workspace, serving_parties: dict[str, Party]
) -> None:
    from tests.kms.factories import make_contract

    decision = check_pipeline(make_contract(), make_pipeline())
    assert not any("inference contract" in v for v in decision.violations)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"shape": [0, 28]}, "inference.input.shape"),
        ({"dtype": "complex64"}, "inference.input.dtype"),
    ],
)
def test_a_schema_error_names_the_field_in_one_line(
    workspace: Workspace,
    serving_parties: dict[str, Party],
    tmp_path: Path,
    change: dict[str, Any],
    field: str,
) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["inference"]["input"].update(change)
    path = _draft(tmp_path, inference=data["inference"])
    result = runner.invoke(app, ["contract", "propose", str(path), "--as", "lab"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert field in lines[0] and str(path) in " ".join(result.stderr.split())


def test_open_and_clients_together_are_refused(
    workspace: Workspace, serving_parties: dict[str, Party], tmp_path: Path
) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["inference"]["open"] = True
    path = _draft(tmp_path, inference=data["inference"])
    with pytest.raises(ContractError, match="open contract lists no clients"):
        propose_contract(workspace, path, "lab")


def test_a_client_without_a_key_or_identity_is_refused(
    workspace: Workspace, serving_parties: dict[str, Party], tmp_path: Path
) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["inference"]["clients"].append({"name": "stranger"})
    path = _draft(tmp_path, inference=data["inference"])
    with pytest.raises(ContractError, match=r"inference\.clients\.2\.signing_key"):
        propose_contract(workspace, path, "lab")
