"""Room attestation for serving: each binding and policy check refuses its own attack."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sealroom.attest.evidence import Claims
from sealroom.attest.software import MAX_AGE, SoftwareAttester
from sealroom.contract.inference import ClientRef, InferenceTerms, InputSignature
from sealroom.contract.schema import Contract, ModelRef, PartyRef, RoomPolicy
from sealroom.contract.signed import SignedContract
from sealroom.crypto.hpke_context import RoomHpkeKey
from sealroom.crypto.signing import SigningKey, b64
from sealroom.errors import AttestationError
from sealroom.serve.attestation import (
    RoomAttestation,
    attest_room,
    new_instance_id,
    parse_nonce_hex,
    serving_report_data,
    verify_room_attestation,
)
from sealroom.workspace import Workspace
from tests.serve.serve_harness import SoftwareTee

MEASUREMENT = "aa" * 32
MODEL = "sha256:" + "11" * 32
OTHER_MODEL = "sha256:" + "22" * 32


def _key() -> str:
    return SigningKey.generate().public_b64


def make_contract(
    contract_id: str = "serve-1",
    *,
    allow_insecure: bool = True,
    measurements: list[str] | None = None,
) -> SignedContract:
    parties = [
        PartyRef(name="owner", role="provider", signing_key=_key(), encryption_key=_key()),
        PartyRef(name="buyer", role="consumer", signing_key=_key(), encryption_key=_key()),
    ]
    contract = Contract(
        id=contract_id,
        purpose="serve a classifier",
        parties=parties,
        model=ModelRef(owner="owner", package_digest=MODEL),
        consumer="buyer",
        room=RoomPolicy(
            measurements=[MEASUREMENT] if measurements is None else measurements,
            allow_insecure=allow_insecure,
        ),
        not_before=datetime(2026, 1, 1, tzinfo=UTC),
        expires=datetime(2030, 1, 1, tzinfo=UTC),
        inference=InferenceTerms(
            clients=[ClientRef(name="alice", signing_key=_key())],
            input=InputSignature(shape=[4]),
        ),
    )  # type: ignore[call-arg]  # constraints filled in for inference contracts
    return SignedContract(contract=contract)


def _attest(
    tee: Any, contract: SignedContract, nonce: bytes, model: str = MODEL, **over: Any
) -> RoomAttestation:
    args: dict[str, Any] = {
        "nonce": nonce,
        "hpke_public_key": RoomHpkeKey.generate().public_raw,
        "room_key": SigningKey.generate().public_b64,
        "model_digest": model,
        "contract_digest": contract.digest,
        "instance": new_instance_id(),
    }
    args.update(over)
    return attest_room(tee, **args)


def _verify(
    att: RoomAttestation, contract: SignedContract, nonce: bytes, tee: Any, **over: Any
) -> Claims:
    args: dict[str, Any] = {
        "nonce": nonce,
        "contract": contract,
        "model_digest": MODEL,
        "trusted_signers": {tee.key.public_b64},
    }
    args.update(over)
    return verify_room_attestation(att, **args)


def test_good_attestation_verifies_and_round_trips_json() -> None:
    contract, tee, nonce = make_contract(), SoftwareTee(), os.urandom(32)
    att = _attest(tee, contract, nonce)
    again = RoomAttestation.model_validate_json(att.model_dump_json())
    assert again == att
    claims = _verify(again, contract, nonce, tee)
    assert claims.measurement == MEASUREMENT and claims.insecure


def test_real_software_attester_works_with_its_workspace_key(workspace: Workspace) -> None:
    attester = SoftwareAttester(workspace, measurement=MEASUREMENT)
    contract, nonce = make_contract(), os.urandom(16)
    att = _attest(attester.attest, contract, nonce)
    claims = verify_room_attestation(
        att,
        nonce=nonce,
        contract=contract,
        model_digest=MODEL,
        trusted_signers={att.evidence.signer},
    )
    assert claims.tee_type == "software"


def test_replayed_nonce_is_refused() -> None:
    contract, tee = make_contract(), SoftwareTee()
    att = _attest(tee, contract, os.urandom(32))
    with pytest.raises(AttestationError, match="another nonce"):
        _verify(att, contract, os.urandom(32), tee)


def test_nonce_swapped_in_the_document_breaks_the_binding() -> None:
    contract, tee, fresh = make_contract(), SoftwareTee(), os.urandom(32)
    att = _attest(tee, contract, os.urandom(32)).model_copy(update={"nonce": fresh})
    with pytest.raises(AttestationError, match="does not bind"):
        _verify(att, contract, fresh, tee)


def test_stale_evidence_is_refused() -> None:
    contract, nonce = make_contract(), os.urandom(32)
    tee = SoftwareTee(issued_at=datetime.now(UTC) - MAX_AGE - timedelta(seconds=5))
    att = _attest(tee, contract, nonce)
    with pytest.raises(AttestationError, match="not fresh"):
        _verify(att, contract, nonce, tee)
    future = SoftwareTee(issued_at=datetime.now(UTC) + timedelta(hours=1))
    with pytest.raises(AttestationError, match="not fresh"):
        _verify(_attest(future, contract, nonce), contract, nonce, future)


def test_wrong_model_digest_is_refused() -> None:
    contract, tee, nonce = make_contract(), SoftwareTee(), os.urandom(32)
    att = _attest(tee, contract, nonce, model=OTHER_MODEL)
    with pytest.raises(AttestationError, match="for model sha256:2222"):
        _verify(att, contract, nonce, tee)


def test_model_digest_swapped_in_the_document_breaks_the_binding() -> None:
    contract, tee, nonce = make_contract(), SoftwareTee(), os.urandom(32)
    att = _attest(tee, contract, nonce, model=OTHER_MODEL).model_copy(
        update={"model_digest": MODEL}
    )
    with pytest.raises(AttestationError, match="does not bind"):
        _verify(att, contract, nonce, tee)


def test_wrong_contract_digest_is_refused() -> None:
    contract, other, tee, nonce = (
        make_contract(),
        make_contract("serve-2"),
        SoftwareTee(),
        os.urandom(32),
    )
    att = _attest(tee, other, nonce)
    with pytest.raises(AttestationError, match="for contract digest"):
        _verify(att, contract, nonce, tee)


@pytest.mark.parametrize("field", ["hpke_public_key", "room_key", "contract_digest"])
def test_swapped_key_or_contract_in_the_document_breaks_the_binding(field: str) -> None:
    contract, tee, nonce = make_contract(), SoftwareTee(), os.urandom(32)
    att = _attest(tee, contract, nonce)
    if field == "contract_digest":
        other = make_contract("serve-2")
        att = _attest(tee, other, nonce).model_copy(update={"contract_digest": contract.digest})
    else:
        att = att.model_copy(update={field: b64(os.urandom(32))})
    with pytest.raises(AttestationError, match="does not bind"):
        _verify(att, contract, nonce, tee)


def test_measurement_not_in_contract_is_refused() -> None:
    contract, nonce = make_contract(), os.urandom(32)
    tee = SoftwareTee(measurement="bb" * 32)
    with pytest.raises(AttestationError, match="not allowed by contract serve-1"):
        _verify(_attest(tee, contract, nonce), contract, nonce, tee)


def test_client_pinned_measurement_is_enforced_even_when_contract_lists_none() -> None:
    contract, tee, nonce = make_contract(measurements=[]), SoftwareTee(), os.urandom(32)
    att = _attest(tee, contract, nonce)
    _verify(att, contract, nonce, tee)  # the contract alone does not pin a measurement
    with pytest.raises(AttestationError, match="not one this client pins"):
        _verify(att, contract, nonce, tee, measurements={"cc" * 32})


def test_insecure_evidence_refused_unless_contract_allows_it() -> None:
    contract, tee, nonce = make_contract(allow_insecure=False), SoftwareTee(), os.urandom(32)
    with pytest.raises(AttestationError, match="does not allow insecure rooms"):
        _verify(_attest(tee, contract, nonce), contract, nonce, tee)


def test_debug_mode_tee_is_refused() -> None:
    contract, tee, nonce = make_contract(), SoftwareTee(debug=True), os.urandom(32)
    with pytest.raises(AttestationError, match="debug mode"):
        _verify(_attest(tee, contract, nonce), contract, nonce, tee)


def test_untrusted_evidence_signer_is_refused() -> None:
    contract, tee, nonce = make_contract(), SoftwareTee(), os.urandom(32)
    att = _attest(tee, contract, nonce)
    with pytest.raises(AttestationError, match="does not trust"):
        _verify(att, contract, nonce, tee, trusted_signers={SigningKey.generate().public_b64})


def test_forged_evidence_signature_is_refused() -> None:
    contract, tee, nonce = make_contract(), SoftwareTee(), os.urandom(32)
    att = _attest(tee, contract, nonce)
    forged = att.evidence.model_copy(update={"signature": bytes(64)})
    with pytest.raises(AttestationError, match="signature does not verify"):
        _verify(att.model_copy(update={"evidence": forged}), contract, nonce, tee)


def test_software_evidence_relabelled_as_hardware_is_refused_by_its_verifier() -> None:
    contract, tee, nonce = make_contract(), SoftwareTee(), os.urandom(32)
    att = _attest(tee, contract, nonce)
    hw = att.evidence.model_copy(update={"tee_type": "sev-snp"})
    with pytest.raises(AttestationError, match=r"SEV-SNP report is .* bytes, expected 1184"):
        _verify(att.model_copy(update={"evidence": hw}), contract, nonce, tee)


def test_report_data_is_domain_separated_and_length_prefixed() -> None:
    nonce, pk, room = os.urandom(16), os.urandom(32), SigningKey.generate().public_b64
    base = serving_report_data(nonce, pk, room, MODEL, "sha256:" + "00" * 32)
    assert len(base) == 64
    # moving a byte between adjacent fields changes the digest (no concatenation ambiguity)
    assert serving_report_data(nonce, pk, room, MODEL + "0", "sha256:" + "00" * 31 + "0") != base
    with pytest.raises(AttestationError, match="nonce has 8 bytes"):
        serving_report_data(os.urandom(8), pk, room, MODEL, MODEL)


def test_nonce_query_parameter_is_strict_hex() -> None:
    assert parse_nonce_hex("ab" * 16) == bytes.fromhex("ab" * 16)
    for bad in ("ab" * 15, "ab" * 65, "AB" * 16, "zz" * 16, "a" * 33):
        with pytest.raises(AttestationError, match="32 to 128"):
            parse_nonce_hex(bad)


def test_instance_id_shape() -> None:
    instance = new_instance_id(datetime(2026, 11, 26, 3, 4, 5, tzinfo=UTC))
    assert instance.startswith("srv-20261126T030405-") and len(instance) == 26
