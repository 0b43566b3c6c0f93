"""Inference receipts: batch signing, proofs verified offline, and each forgery refused."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from sealroom.crypto.hpke_context import RoomHpkeKey
from sealroom.crypto.signing import SigningKey
from sealroom.ledger import Ledger
from sealroom.serve.attestation import RoomAttestation, attest_room, new_instance_id
from sealroom.serve.receipts import (
    ANONYMOUS,
    COMMITMENT_KIND,
    RECEIPT_DOMAIN,
    BatchSigner,
    InferenceReceipt,
    InferenceReceiptError,
    ReceiptProof,
    _canonical_flat,
    check_receipt_proof,
    check_response,
    client_fingerprint,
    commitment_payload,
    outputs_sha256,
    receipt_leaf,
    verify_receipt_proof,
)
from sealroom.workspace import Workspace
from tests.serve.serve_harness import SoftwareTee

MEASUREMENT = "aa" * 32
MODEL = "sha256:" + "11" * 32
CONTRACT = "sha256:" + "33" * 32


class Room:
    """A serving room's receipt side: its keys, startup attestation and batch signer."""

    def __init__(self, tee: SoftwareTee | None = None, model: str = MODEL) -> None:
        self.tee = tee or SoftwareTee()
        self.key = SigningKey.generate()
        self.instance = new_instance_id()
        self.signer = BatchSigner(self.key, self.instance)
        self.attestation = attest_room(
            self.tee,
            nonce=os.urandom(32),
            hpke_public_key=RoomHpkeKey.generate().public_raw,
            room_key=self.key.public_b64,
            model_digest=model,
            contract_digest=CONTRACT,
            instance=self.instance,
        )
        self.sequence = 0

    def receipts(self, n: int, client: str = ANONYMOUS) -> list[InferenceReceipt]:
        out = []
        for _ in range(n):
            out.append(
                InferenceReceipt(
                    request_sha256=os.urandom(32).hex(),
                    response_sha256=outputs_sha256([self.sequence]),
                    model_digest=MODEL,
                    measurement=self.tee.measurement,
                    contract_id="serve-1",
                    contract_digest=CONTRACT,
                    client=client,
                    sequence=self.sequence,
                    issued_at=time.time(),
                    instance=self.instance,
                    insecure=True,
                )
            )
            self.sequence += 1
        return out

    def proofs(self, n: int) -> list[ReceiptProof]:
        receipts = self.receipts(n)
        return [
            ReceiptProof(
                receipt=receipts[i], index=i, proof=path, batch=batch, attestation=self.attestation
            )
            for i, path, batch in self.signer.sign(receipts)
        ]


def _replace(original: ReceiptProof, /, **update: Any) -> ReceiptProof:
    return ReceiptProof.model_validate({**original.model_dump(), **update})


def test_one_signature_per_batch_and_every_proof_verifies() -> None:
    room = Room()
    proofs = room.proofs(32)
    assert len({p.batch.signature for p in proofs}) == 1
    for proof in proofs:
        claims = verify_receipt_proof(proof)
        assert claims.measurement == MEASUREMENT
    again = ReceiptProof.model_validate_json(proofs[5].model_dump_json())
    assert again == proofs[5]
    verify_receipt_proof(again, trusted_signers={room.tee.key.public_b64})


def test_batches_continue_the_sequence() -> None:
    room = Room()
    room.proofs(3)
    second = room.proofs(2)
    assert second[0].batch.first_sequence == 3 and second[1].receipt.sequence == 4
    verify_receipt_proof(second[1])


def test_batch_signer_refuses_gaps_and_other_instances() -> None:
    room = Room()
    receipts = room.receipts(3)
    with pytest.raises(InferenceReceiptError, match="expected 1"):
        room.signer.sign([receipts[0], receipts[2]])
    with pytest.raises(InferenceReceiptError, match="expected"):
        BatchSigner(room.key, new_instance_id()).sign(receipts)
    with pytest.raises(InferenceReceiptError, match="at least one"):
        room.signer.sign([])


# --- forgeries ------------------------------------------------------------------------------


def test_flipped_sibling_in_the_proof_is_refused() -> None:
    proof = Room().proofs(8)[3]
    path = list(proof.proof)
    path[1] = ("0" if path[1][0] != "0" else "1") + path[1][1:]
    with pytest.raises(InferenceReceiptError, match="inclusion: receipt is not leaf 3"):
        verify_receipt_proof(_replace(proof, proof=path))


def test_wrong_index_is_refused() -> None:
    proof = Room().proofs(8)[3]
    with pytest.raises(
        InferenceReceiptError, match="inclusion: receipt sequence 3 is not at index 4"
    ):
        verify_receipt_proof(_replace(proof, index=4))


def test_wrong_index_with_matching_sequence_is_refused() -> None:
    """Even if the sequence is moved along with the index, the path no longer fits."""
    proof = Room().proofs(8)[3]
    receipt = proof.receipt.model_copy(update={"sequence": 4})
    with pytest.raises(InferenceReceiptError, match="inclusion: receipt is not leaf 4"):
        verify_receipt_proof(_replace(proof, index=4, receipt=receipt.model_dump()))


def test_wrong_size_is_refused() -> None:
    proof = Room().proofs(7)[6]
    batch = proof.batch.model_copy(update={"size": 8})
    checks, _ = check_receipt_proof(_replace(proof, batch=batch.model_dump()))
    failed = {c.name for c in checks if not c.ok}
    assert failed == {"inclusion", "batch signature"}  # the signed size is part of the batch


def test_edited_receipt_is_refused() -> None:
    proof = Room().proofs(4)[2]
    for field, value in [
        ("response_sha256", "00" * 32),
        ("client", client_fingerprint(SigningKey.generate().public_b64)),
        ("issued_at", 1.0),
    ]:
        receipt = proof.receipt.model_copy(update={field: value})
        with pytest.raises(InferenceReceiptError, match="inclusion"):
            verify_receipt_proof(_replace(proof, receipt=receipt.model_dump()))


def test_batch_signed_by_a_key_the_attestation_does_not_bind_is_refused() -> None:
    room = Room()
    rogue = BatchSigner(SigningKey.generate(), room.instance)
    receipts = room.receipts(4)
    index, path, batch = rogue.sign(receipts)[1]
    proof = ReceiptProof(
        receipt=receipts[1], index=index, proof=path, batch=batch, attestation=room.attestation
    )
    with pytest.raises(
        InferenceReceiptError, match="attestation binding: the attestation binds room key"
    ):
        verify_receipt_proof(proof)


def test_batch_signature_must_verify() -> None:
    proof = Room().proofs(4)[0]
    other = Room().proofs(4)[0]
    batch = proof.batch.model_copy(update={"signature": other.batch.signature})
    with pytest.raises(
        InferenceReceiptError, match="batch signature: batch signature does not verify"
    ):
        verify_receipt_proof(_replace(proof, batch=batch.model_dump()))


def test_attestation_of_another_model_or_measurement_is_refused() -> None:
    proof = Room().proofs(2)[0]
    other_model = Room(model="sha256:" + "22" * 32)
    swapped = _replace(proof, attestation=other_model.attestation.model_dump())
    with pytest.raises(InferenceReceiptError, match="attestation binding"):
        verify_receipt_proof(swapped)
    # an attestation edited to claim the receipt's key no longer matches its evidence
    forged = other_model.attestation.model_copy(
        update={
            "room_key": proof.batch.room_key,
            "instance": proof.batch.instance,
            "model_digest": MODEL,
        }
    )
    with pytest.raises(InferenceReceiptError, match="does not bind"):
        verify_receipt_proof(_replace(proof, attestation=forged.model_dump()))


def test_receipt_claiming_another_measurement_than_its_evidence_is_refused() -> None:
    room = Room()
    receipts = [r.model_copy(update={"measurement": "bb" * 32}) for r in room.receipts(2)]
    index, path, batch = room.signer.sign(receipts)[0]
    proof = ReceiptProof(
        receipt=receipts[0], index=index, proof=path, batch=batch, attestation=room.attestation
    )
    with pytest.raises(InferenceReceiptError, match="binds measurement"):
        verify_receipt_proof(proof)


def test_receipt_hiding_insecure_evidence_is_refused() -> None:
    room = Room()
    receipts = [r.model_copy(update={"insecure": False}) for r in room.receipts(2)]
    index, path, batch = room.signer.sign(receipts)[0]
    proof = ReceiptProof(
        receipt=receipts[0], index=index, proof=path, batch=batch, attestation=room.attestation
    )
    with pytest.raises(InferenceReceiptError, match="hides that its room's evidence is insecure"):
        verify_receipt_proof(proof)


def test_untrusted_evidence_signer_is_refused_when_signers_are_pinned() -> None:
    proof = Room().proofs(2)[0]
    with pytest.raises(InferenceReceiptError, match=r"evidence: .*does not trust"):
        verify_receipt_proof(proof, trusted_signers={SigningKey.generate().public_b64})


def test_check_response_ties_receipt_to_request_and_outputs() -> None:
    proof = Room().proofs(1)[0]
    check_response(proof, proof.receipt.request_sha256, [0])
    with pytest.raises(InferenceReceiptError, match="another request"):
        check_response(proof, "00" * 32, [0])
    with pytest.raises(InferenceReceiptError, match="other outputs"):
        check_response(proof, proof.receipt.request_sha256, [1])


def test_client_fingerprint() -> None:
    key = SigningKey.generate()
    raw = base64.b64decode(key.public_b64)
    assert client_fingerprint(key.public_b64) == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert client_fingerprint(None) == ANONYMOUS


# --- ledger commitments ---------------------------------------------------------------------


def _committed(
    workspace: Workspace, proofs: list[ReceiptProof], **payload_over: Any
) -> tuple[ReceiptProof, str]:
    ledger = Ledger.open(workspace)
    proof = proofs[0]
    payload = commitment_payload(
        "serve-1", proof.batch.instance, proof.batch.room_key, [proof.batch]
    )
    payload.update(payload_over)
    receipt = ledger.append(COMMITMENT_KIND, payload)
    committed = _replace(proof, ledger=receipt.model_dump(), ledger_payload=payload)
    return committed, ledger.public_key_b64


def test_ledger_commitment_verifies(workspace: Workspace) -> None:
    proof, key = _committed(workspace, Room().proofs(3))
    verify_receipt_proof(proof, ledger_public_key=key)
    checks, _ = check_receipt_proof(proof, ledger_public_key=key)
    assert [c.name for c in checks][-1] == "ledger commitment" and all(c.ok for c in checks)


def test_ledger_payload_that_does_not_list_the_root_is_refused(workspace: Workspace) -> None:
    proofs = Room().proofs(3)
    other = Room().proofs(1)[0].batch
    listing = [{"root": other.root, "size": other.size, "first_sequence": other.first_sequence}]
    proof, key = _committed(workspace, proofs, batches=listing)
    with pytest.raises(InferenceReceiptError, match="does not list root"):
        verify_receipt_proof(proof, ledger_public_key=key)


def test_ledger_payload_swapped_after_signing_is_refused(workspace: Workspace) -> None:
    proofs = Room().proofs(3)
    honest, key = _committed(workspace, proofs, batches=[])
    payload = commitment_payload(
        "serve-1", proofs[0].batch.instance, proofs[0].batch.room_key, [proofs[0].batch]
    )
    forged = _replace(honest, ledger_payload=payload)
    with pytest.raises(InferenceReceiptError, match="payload does not match"):
        verify_receipt_proof(forged, ledger_public_key=key)


def test_ledger_receipt_under_another_key_or_kind_is_refused(workspace: Workspace) -> None:
    proof, key = _committed(workspace, Room().proofs(2))
    with pytest.raises(InferenceReceiptError, match="signature does not verify"):
        verify_receipt_proof(proof, ledger_public_key=SigningKey.generate().public_b64)
    with pytest.raises(InferenceReceiptError, match="without a trusted ledger key"):
        verify_receipt_proof(proof)
    ledger = Ledger.open(workspace)
    assert proof.ledger_payload is not None
    wrong_kind = ledger.append("inference.started", proof.ledger_payload)
    with pytest.raises(InferenceReceiptError, match=r"not inference\.receipts"):
        verify_receipt_proof(_replace(proof, ledger=wrong_kind.model_dump()), ledger_public_key=key)


def test_ledger_entry_of_another_room_is_refused(workspace: Workspace) -> None:
    proofs = Room().proofs(2)
    proof, key = _committed(workspace, proofs, room_key=SigningKey.generate().public_b64)
    with pytest.raises(InferenceReceiptError, match="does not list root"):
        verify_receipt_proof(proof, ledger_public_key=key)


def test_commitment_payload_holds_roots_and_no_usage() -> None:
    batch = Room().proofs(2)[0].batch
    payload = commitment_payload("c", batch.instance, batch.room_key, [batch])
    assert payload["batches"] == [{"root": batch.root, "size": 2, "first_sequence": 0}]
    assert set(payload) == {"contract_id", "instance", "room_key", "batches"}


def test_attestation_json_round_trip_inside_proof() -> None:
    proof = Room().proofs(1)[0]
    assert isinstance(proof.attestation, RoomAttestation)
    assert (
        ReceiptProof.model_validate_json(proof.model_dump_json()).attestation == proof.attestation
    )


# --- the fast canonical encoder is RFC 8785 ----------------------------------------------------

_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1e-4, 9.99e-5, 1e16, 1e21, 1.0, 1764126000.0, 1764126000.123456]),
    st.text(max_size=12),
    st.sampled_from(["a\nb", 'q"', "b\\s", "é", "\x7f", "srv-20261126T031659-92b16a"]),
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=8), _scalars, max_size=12))
def test_fast_canonical_encoding_equals_rfc8785(data: dict[str, Any]) -> None:
    assert _canonical_flat(data) == rfc8785.dumps(data)


def test_receipt_leaf_is_rfc8785_of_the_receipt() -> None:
    receipt = Room().receipts(1)[0]
    assert receipt_leaf(receipt) == RECEIPT_DOMAIN + rfc8785.dumps(receipt.model_dump(mode="json"))
