"""Pins in the contract (pipeline_digest, max_runs) and the consumer's pipeline signature."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from sealroom.contract.canonical import canonical_bytes, contract_digest
from sealroom.contract.pipeline_signature import (
    MAX_SIGNATURE_FILE_BYTES,
    PipelineSignature,
    PipelineSignatureError,
    load_pipeline_signature,
    save_pipeline_signature,
    sign_pipeline,
    signature_path,
    verify_pipeline_signature,
)
from sealroom.contract.schema import Constraints, Contract
from sealroom.contract.signed import SignedContract
from sealroom.crypto.identity import Party
from tests.kms.factories import contract_data

OLD = Path(__file__).parent / "data" / "signed-before-pins.json"
# The digest the fixture's contract had when it was signed, before the pins existed.
OLD_DIGEST = "sha256:b0e12e0b81817c47a61ce33e296c2f9de632e4261d544cdd1d12b567d11f787b"
PIPELINE_A = "sha256:" + hashlib.sha256(b"pipeline A").hexdigest()
PIPELINE_B = "sha256:" + hashlib.sha256(b"pipeline B").hexdigest()


@pytest.fixture
def people() -> dict[str, Party]:
    return {
        n: Party.generate(n, r)  # type: ignore[arg-type]
        for n, r in [("hospital", "provider"), ("lab", "consumer"), ("operator", "operator")]
    }


def _contract(people: dict[str, Party], **overrides: object) -> Contract:
    identities = {n: p.identity for n, p in people.items()}
    return Contract.model_validate(contract_data(identities, **overrides))


def _with_constraints(contract: Contract, **changes: object) -> Contract:
    data = contract.model_dump(mode="json")
    data["constraints"].update(changes)
    return Contract.model_validate(data)


def test_a_contract_signed_before_the_pins_existed_still_verifies() -> None:
    signed = SignedContract.model_validate_json(OLD.read_text())
    signed.verify_signatures()
    assert signed.digest == OLD_DIGEST
    stored = json.loads(OLD.read_text())["contract"]
    assert canonical_bytes(signed.contract) == canonical_bytes(Contract.model_validate(stored))
    assert b"max_runs" not in canonical_bytes(signed.contract)
    assert b"pipeline_digest" not in canonical_bytes(signed.contract)


def test_pins_are_part_of_the_signed_bytes_when_set(people: dict[str, Party]) -> None:
    plain = _contract(people)
    pinned = _with_constraints(plain, pipeline_digest=PIPELINE_A, max_runs=2)
    assert pinned.constraints.pipeline_digest == PIPELINE_A
    assert pinned.constraints.max_runs == 2
    assert b'"max_runs":2' in canonical_bytes(pinned)
    assert PIPELINE_A.encode() in canonical_bytes(pinned)
    assert contract_digest(pinned) != contract_digest(plain)
    again = Contract.model_validate_json(pinned.model_dump_json())
    assert contract_digest(again) == contract_digest(pinned)


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_runs", 0), ("max_runs", -1), ("pipeline_digest", "sha256:abc"), ("pipeline_digest", "")],
)
def test_bad_pins_are_refused(field: str, value: object) -> None:
    base = contract_data()["constraints"]
    with pytest.raises(ValidationError, match=field):
        Constraints.model_validate({**base, field: value})


def test_the_consumer_signature_verifies(people: dict[str, Party]) -> None:
    contract = _contract(people)
    signature = sign_pipeline(contract, PIPELINE_A, people["lab"])
    assert signature.signer == "lab" and signature.contract_id == contract.id
    assert signature.contract_digest == contract_digest(contract)
    verify_pipeline_signature(signature, contract, PIPELINE_A)


def test_only_the_consumer_may_sign(people: dict[str, Party]) -> None:
    with pytest.raises(PipelineSignatureError, match="only its consumer 'lab'"):
        sign_pipeline(_contract(people), PIPELINE_A, people["operator"])


def _forged_by(people: dict[str, Party], contract: Contract, name: str) -> PipelineSignature:
    """A signature made by ``name`` with the message the consumer would have signed."""
    honest = sign_pipeline(contract, PIPELINE_A, people["lab"])
    from sealroom.contract.pipeline_signature import signed_message
    from sealroom.crypto.signing import b64

    message = signed_message(contract.id, contract_digest(contract), PIPELINE_A)
    return honest.model_copy(update={"signature": b64(people[name].sign(message))})


def test_refusals_name_what_is_wrong(people: dict[str, Party]) -> None:
    contract = _contract(people)
    other = _contract(people, id="another-contract")
    good = sign_pipeline(contract, PIPELINE_A, people["lab"])
    cases: list[tuple[PipelineSignature | None, str]] = [
        (None, "carries no signature from the consumer 'lab'"),
        (good.model_copy(update={"signer": "operator"}), "signed by 'operator', not by"),
        (sign_pipeline(other, PIPELINE_A, people["lab"]), "is for contract another-contract"),
        (
            good.model_copy(update={"contract_digest": contract_digest(other)}),
            "for another contract of that id",
        ),
        (sign_pipeline(contract, PIPELINE_B, people["lab"]), f"covers {PIPELINE_B}"),
        (_forged_by(people, contract, "operator"), "from 'lab' does not verify"),
        (good.model_copy(update={"signature": "not base64!"}), "does not verify"),
    ]
    for signature, reason in cases:
        with pytest.raises(PipelineSignatureError, match=reason):
            verify_pipeline_signature(signature, contract, PIPELINE_A)


def test_a_signature_under_one_contract_is_void_under_a_same_id_contract(
    people: dict[str, Party],
) -> None:
    contract = _contract(people)
    signature = sign_pipeline(contract, PIPELINE_A, people["lab"])
    changed = _with_constraints(contract, max_epochs=50)  # same id, other terms
    with pytest.raises(PipelineSignatureError, match="another contract of that id"):
        verify_pipeline_signature(signature, changed, PIPELINE_A)


def test_signature_files_round_trip(people: dict[str, Party], tmp_path: Path) -> None:
    contract = _contract(people)
    signature = sign_pipeline(contract, PIPELINE_A, people["lab"])
    path = signature_path(tmp_path / "pipeline.json")
    assert path.name == "pipeline.json.sig"
    save_pipeline_signature(path, signature)
    assert load_pipeline_signature(path) == signature


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\xff\xfe", "not a JSON pipeline signature"),
        (b"{", "not a JSON pipeline signature"),
        (b'{"signer": "lab"}', "contract_id: Field required"),
        (b" " * (MAX_SIGNATURE_FILE_BYTES + 1), "larger than"),
    ],
)
def test_bad_signature_files_are_one_line_errors(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "p.json.sig"
    path.write_bytes(content)
    with pytest.raises(PipelineSignatureError, match=reason) as refused:
        load_pipeline_signature(path)
    assert str(path) in str(refused.value) and "\n" not in str(refused.value)


def test_a_missing_signature_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(PipelineSignatureError, match="cannot read the pipeline signature"):
        load_pipeline_signature(tmp_path / "absent.sig")
