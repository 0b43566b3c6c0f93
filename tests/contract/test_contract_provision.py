"""Only the model owner's signed statements provision, rotate and retire a served model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sealroom.contract import propose_contract, sign_contract
from sealroom.contract.provision import (
    DOMAIN,
    ModelState,
    ModelStatement,
    ProvisionError,
    current_model,
    make_statement,
    provision_model,
    record_statement,
    verify_statement,
)
from sealroom.contract.signed import SignedContract
from sealroom.contract.store import load_contract
from sealroom.contract.workflow import revoke_contract
from sealroom.crypto.identity import Party, create_party
from sealroom.errors import ContractError
from sealroom.ledger import Ledger
from sealroom.workspace import Workspace

EXAMPLE = Path(__file__).parent / "data" / "inference-contract.yaml"
CONTRACT = "mnist-serve"
MODEL = "sha256:" + "1" * 64  # the example's model.package_digest
NEW_MODEL = "sha256:" + "5" * 64
NEWER_MODEL = "sha256:" + "6" * 64
MODEL_KINDS = ("model.provisioned", "model.rotated", "model.retired")


@pytest.fixture
def parties(workspace: Workspace) -> dict[str, Party]:
    return {
        "lab": create_party(workspace, "lab", "consumer"),
        "operator": create_party(workspace, "operator", "operator"),
        "clinic": create_party(workspace, "clinic", "consumer"),
    }


@pytest.fixture
def signed(workspace: Workspace, parties: dict[str, Party]) -> SignedContract:
    propose_contract(workspace, EXAMPLE, "lab")
    return sign_contract(workspace, CONTRACT, "operator")


def _state(ws: Workspace, skipped: list[str] | None = None) -> ModelState:
    with Ledger.open(ws) as ledger:
        return current_model(ledger, load_contract(ws, CONTRACT), skipped)


def _model_entries(ws: Workspace) -> int:
    with Ledger.open(ws) as ledger:
        return sum(len(ledger.entries(kind)) for kind in MODEL_KINDS)


def _record(ws: Workspace, statement: ModelStatement) -> None:
    with Ledger.open(ws) as ledger:
        record_statement(ledger, load_contract(ws, CONTRACT), statement)


def test_the_owner_provisions_rotates_and_retires(
    workspace: Workspace, signed: SignedContract
) -> None:
    assert _state(workspace) == ModelState()
    statement, state, receipt = provision_model(workspace, CONTRACT, "lab", "provision")
    assert (state.digest, state.retired, state.seq) == (MODEL, False, receipt.seq)
    assert receipt.kind == "model.provisioned"
    verify_statement(statement, signed.contract)

    rotated, state, _ = provision_model(workspace, CONTRACT, "lab", "rotate", NEW_MODEL)
    assert rotated.previous_digest == MODEL
    assert state.serving == NEW_MODEL

    _, state, receipt = provision_model(workspace, CONTRACT, "lab", "retire")
    assert state.retired and state.serving is None and state.digest == NEW_MODEL
    replayed = _state(workspace)
    assert (replayed.digest, replayed.retired, replayed.seq) == (NEW_MODEL, True, receipt.seq)


def test_the_ledger_entry_is_the_signed_statement(
    workspace: Workspace, signed: SignedContract
) -> None:
    statement, _, _ = provision_model(workspace, CONTRACT, "lab", "provision")
    with Ledger.open(workspace) as ledger:
        [entry] = ledger.entries("model.provisioned")
    assert entry.payload == statement.model_dump(mode="json")
    assert entry.payload["signature"] and entry.payload["signer"] == "lab"
    assert statement.signed_bytes().startswith(DOMAIN)


@pytest.mark.parametrize("action", ["provision", "rotate", "retire"])
def test_a_non_owner_is_refused_and_nothing_is_recorded(
    workspace: Workspace, signed: SignedContract, action: str
) -> None:
    if action != "provision":
        provision_model(workspace, CONTRACT, "lab", "provision")
    before = _model_entries(workspace)
    with pytest.raises(
        ProvisionError,
        match=r"^refused: operator is not the model owner of contract mnist-serve \(owner: lab\)$",
    ):
        provision_model(workspace, CONTRACT, "operator", action, NEW_MODEL)  # type: ignore[arg-type]
    assert _model_entries(workspace) == before


def test_a_statement_signed_by_another_key_is_refused(
    workspace: Workspace, signed: SignedContract, parties: dict[str, Party]
) -> None:
    """The operator claims to be lab but signs with its own key."""
    forged = make_statement(
        signed.contract, "provision", MODEL, None, "lab", parties["operator"].sign
    )
    with pytest.raises(ProvisionError, match="does not verify with the key contract mnist-serve"):
        _record(workspace, forged)
    assert _model_entries(workspace) == 0


def test_a_statement_for_another_contract_is_refused(
    workspace: Workspace, signed: SignedContract, parties: dict[str, Party]
) -> None:
    other = signed.contract.model_copy(update={"id": "other-serve"})
    statement = make_statement(other, "provision", MODEL, None, "lab", parties["lab"].sign)
    with pytest.raises(ProvisionError, match="is for contract other-serve, not mnist-serve"):
        _record(workspace, statement)
    assert _model_entries(workspace) == 0


def test_a_stale_rotation_is_refused(
    workspace: Workspace, signed: SignedContract, parties: dict[str, Party]
) -> None:
    provision_model(workspace, CONTRACT, "lab", "provision")
    provision_model(workspace, CONTRACT, "lab", "rotate", NEW_MODEL)
    stale = make_statement(
        signed.contract, "rotate", NEWER_MODEL, MODEL, "lab", parties["lab"].sign
    )
    with pytest.raises(ProvisionError, match="stale statement"):
        _record(workspace, stale)
    assert _model_entries(workspace) == 2
    assert _state(workspace).serving == NEW_MODEL


def test_nothing_follows_a_retire(workspace: Workspace, signed: SignedContract) -> None:
    provision_model(workspace, CONTRACT, "lab", "provision")
    provision_model(workspace, CONTRACT, "lab", "retire")
    for action, digest in [("rotate", NEW_MODEL), ("retire", None), ("provision", None)]:
        with pytest.raises(ProvisionError, match=r"retired|already provisioned"):
            provision_model(workspace, CONTRACT, "lab", action, digest)  # type: ignore[arg-type]
    assert _model_entries(workspace) == 2


def test_the_same_statement_twice_is_a_replay(
    workspace: Workspace, signed: SignedContract, parties: dict[str, Party]
) -> None:
    provision_model(workspace, CONTRACT, "lab", "provision")
    rotate = make_statement(signed.contract, "rotate", NEW_MODEL, MODEL, "lab", parties["lab"].sign)
    _record(workspace, rotate)
    back = make_statement(signed.contract, "rotate", MODEL, NEW_MODEL, "lab", parties["lab"].sign)
    _record(workspace, back)
    # Replaying the first rotation would move the model to NEW_MODEL again: refused.
    with pytest.raises(ProvisionError, match="already recorded"):
        _record(workspace, rotate)
    assert _state(workspace).serving == MODEL


def test_provision_names_the_contract_model(workspace: Workspace, signed: SignedContract) -> None:
    with pytest.raises(ProvisionError, match="but contract mnist-serve names model"):
        provision_model(workspace, CONTRACT, "lab", "provision", NEW_MODEL)
    provision_model(workspace, CONTRACT, "lab", "provision")
    with pytest.raises(ProvisionError, match="already provisioned"):
        provision_model(workspace, CONTRACT, "lab", "provision")


def test_rotate_and_retire_need_a_provisioned_model(
    workspace: Workspace, signed: SignedContract
) -> None:
    for action, digest in [("rotate", NEW_MODEL), ("retire", None)]:
        with pytest.raises(ProvisionError, match="never provisioned"):
            provision_model(workspace, CONTRACT, "lab", action, digest)  # type: ignore[arg-type]


def test_a_statement_from_the_future_is_refused(
    workspace: Workspace, signed: SignedContract, parties: dict[str, Party]
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    statement = make_statement(
        signed.contract, "provision", MODEL, None, "lab", parties["lab"].sign, later
    )
    with pytest.raises(ProvisionError, match="issued in the future"):
        _record(workspace, statement)


def test_a_forged_ledger_entry_is_ignored(
    workspace: Workspace, signed: SignedContract, parties: dict[str, Party]
) -> None:
    """The operator holds the ledger key: it appends a retire and a rotation of its own."""
    provision_model(workspace, CONTRACT, "lab", "provision")
    forged = make_statement(signed.contract, "retire", MODEL, None, "lab", parties["operator"].sign)
    own = make_statement(
        signed.contract, "rotate", NEW_MODEL, MODEL, "operator", parties["operator"].sign
    )
    with Ledger.open(workspace) as ledger:
        ledger.append("model.retired", forged.model_dump(mode="json"))
        ledger.append("model.rotated", own.model_dump(mode="json"))
        ledger.append("model.rotated", {"contract_id": CONTRACT, "package_digest": NEW_MODEL})
    skipped: list[str] = []
    state = _state(workspace, skipped)
    assert (state.serving, state.retired) == (MODEL, False)
    assert len(skipped) == 3
    assert "does not verify" in skipped[0] and "not the model owner" in skipped[1]


def test_a_genuine_statement_replayed_into_the_ledger_is_ignored(
    workspace: Workspace, signed: SignedContract
) -> None:
    """The operator copies the owner's first rotation back into the ledger after a second."""
    provision_model(workspace, CONTRACT, "lab", "provision")
    first, _, _ = provision_model(workspace, CONTRACT, "lab", "rotate", NEW_MODEL)
    provision_model(workspace, CONTRACT, "lab", "rotate", NEWER_MODEL)
    with Ledger.open(workspace) as ledger:
        ledger.append("model.rotated", first.model_dump(mode="json"))
        # ... and a genuine statement filed under another kind.
        ledger.append("model.retired", first.model_dump(mode="json"))
    skipped: list[str] = []
    assert _state(workspace, skipped).serving == NEWER_MODEL
    assert len(skipped) == 2


def test_a_revoked_contract_provisions_nothing(
    workspace: Workspace, signed: SignedContract
) -> None:
    revoke_contract(workspace, CONTRACT, "operator")
    with pytest.raises(ContractError, match="revoked"):
        provision_model(workspace, CONTRACT, "lab", "provision")
    assert _model_entries(workspace) == 0


def test_a_training_contract_has_no_model_to_provision(
    workspace: Workspace, parties: dict[str, Party]
) -> None:
    from tests.kms.factories import store_contract

    train_parties = {name: p for name, p in parties.items() if name != "clinic"}
    train_parties["hospital"] = create_party(workspace, "hospital", "provider")
    store_contract(workspace, train_parties)
    with pytest.raises(ProvisionError, match="mnist-demo is not an inference contract"):
        provision_model(workspace, "mnist-demo", "lab", "provision")


def test_a_statement_for_another_version_of_the_contract_is_refused(
    workspace: Workspace, signed: SignedContract, parties: dict[str, Party]
) -> None:
    """Same id, other terms (e.g. a copy with an open client list): another digest."""
    other = signed.contract.model_copy(update={"purpose": "serve anyone"})
    statement = make_statement(other, "provision", MODEL, None, "lab", parties["lab"].sign)
    with pytest.raises(ProvisionError, match="another version of contract mnist-serve"):
        _record(workspace, statement)
    assert _model_entries(workspace) == 0


def test_the_owner_signs_in_its_own_workspace_and_the_operator_records(
    tmp_path: Path,
) -> None:
    """The key service runs in the operator's workspace; the owner's keys never go there."""
    import yaml

    from sealroom.contract import import_contract
    from sealroom.contract.provision import import_statement, sign_statement

    lab_ws = Workspace.create(tmp_path / "lab")
    op_ws = Workspace.create(tmp_path / "op")
    lab = create_party(lab_ws, "lab", "consumer").identity
    operator = create_party(op_ws, "operator", "operator").identity
    draft = yaml.safe_load(EXAMPLE.read_text())
    draft["parties"] = [
        {"name": p.name, "role": p.role, "signing_key": p.signing_key,
         "encryption_key": p.encryption_key}
        for p in (lab, operator)
    ]  # fmt: skip
    draft["inference"]["clients"] = draft["inference"]["clients"][1:]  # the raw-key client
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(draft))
    with Ledger.open(op_ws) as ledger:
        op_ledger = ledger.public_key_b64
    propose_contract(lab_ws, path, "lab", ledger_key=op_ledger)
    bundle = tmp_path / "bundle.json"
    bundle.write_text(load_contract(lab_ws, CONTRACT).model_dump_json())
    import_contract(op_ws, bundle)
    sign_contract(op_ws, CONTRACT, "operator")
    bundle.write_text(load_contract(op_ws, CONTRACT).model_dump_json())
    import_contract(lab_ws, bundle)

    def sign_and_record(name: str, *args: str | None) -> ModelState:
        statement = sign_statement(lab_ws, CONTRACT, "lab", *args)  # type: ignore[arg-type]
        file = tmp_path / name
        file.write_text(statement.model_dump_json())
        return import_statement(op_ws, file)[1]

    assert sign_and_record("p.json", "provision").serving == MODEL
    assert sign_and_record("r.json", "rotate", NEW_MODEL, MODEL).serving == NEW_MODEL
    with pytest.raises(ProvisionError, match="already recorded"):
        import_statement(op_ws, tmp_path / "r.json")
    with pytest.raises(ProvisionError, match="stale statement"):
        sign_and_record("s.json", "rotate", NEWER_MODEL, MODEL)
    with pytest.raises(ProvisionError, match="needs --package and --previous"):
        sign_statement(lab_ws, CONTRACT, "lab", "rotate", NEWER_MODEL)
    with pytest.raises(ProvisionError, match="refused: operator is not the model owner"):
        sign_statement(op_ws, CONTRACT, "operator", "retire", NEW_MODEL)
    assert _state(op_ws).serving == NEW_MODEL
