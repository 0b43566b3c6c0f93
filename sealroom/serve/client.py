"""The client of an inference room: pin it, seal to it, check every answer; fail closed.

``InferenceClient`` pins the signed contract (its digest), the model (the contract's
package digest unless told otherwise) and the room measurements the contract allows, and
trusts only the attestation keys it is given. ``attest()`` sends a fresh random nonce and
checks the evidence binds it, the room's HPKE key, receipt key, model and contract.
``infer()`` seals each request to that HPKE key (the response opens only with this
request's key: a replayed or tampered response fails), and checks the receipt that comes
back: signed by the attested receipt key, naming the attested HPKE key, this request's and
this response's hashes, the pinned model and contract. Any mismatch raises ClientError
with one line; ``verification_document()`` lists each check made and its result.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np

from sealroom.contract.signed import SignedContract
from sealroom.crypto.signing import SigningKey, unb64
from sealroom.errors import SealroomError
from sealroom.room.failures import one_line

MAX_RESPONSE_BYTES = 64 << 20


class ClientError(SealroomError):
    """The room, its attestation, a response or a receipt failed a check; nothing trusted."""


@dataclass(frozen=True)
class InferenceResult:
    """What one request returned, after every check passed."""

    outputs: list[Any]
    proof: Any  # sealroom.serve.receipts.ReceiptProof (verified offline)
    latency_s: float


@dataclass
class _Document:
    lines: list[tuple[str, str]] = field(default_factory=list)

    def ok(self, check: str, result: str) -> None:
        self.lines.append((check, f"ok: {result}"))

    def note(self, check: str, result: str) -> None:
        self.lines.append((check, result))

    def fail(self, check: str, result: str) -> ClientError:
        self.lines.append((check, f"FAILED: {result}"))
        return ClientError(f"{check}: {result}")


class InferenceClient:
    """One client of one serving room; see the module docstring."""

    def __init__(
        self,
        url: str,
        signed_contract: SignedContract,
        *,
        trusted_attesters: set[str] | None,
        model_digest: str | None = None,
        identity: tuple[str, SigningKey] | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        contract = signed_contract.contract
        if contract.inference is None or contract.model is None:
            raise ClientError(f"contract {signed_contract.id} has no inference terms")
        self.url = url.rstrip("/")
        self.signed = signed_contract
        self.trusted = set(trusted_attesters) if trusted_attesters is not None else None
        self.model_digest = model_digest or contract.model.package_digest
        self.identity = identity
        self.clock = clock
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)
        self._doc = _Document()
        self.attestation: Any = None  # the RoomAttestation last verified
        self.claims: Any = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> InferenceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ attestation

    def attest(self) -> Any:
        """Fresh evidence for a fresh nonce, verified; returns the RoomAttestation."""
        from pydantic import ValidationError

        from sealroom.serve.attestation import RoomAttestation, verify_room_attestation

        nonce = secrets.token_bytes(32)
        response = self._get("/v1/attestation", params={"nonce": nonce.hex()})
        try:
            att = RoomAttestation.model_validate_json(response.content)
        except ValidationError:
            raise self._doc.fail("attestation", "the room's answer is not an attestation") from None
        now = datetime.fromtimestamp(self.clock(), UTC)
        try:
            claims = verify_room_attestation(
                att,
                nonce=nonce,
                contract=self.signed,
                model_digest=self.model_digest,
                trusted_signers=self.trusted,
                now=now,
            )
        except SealroomError as exc:
            raise self._doc.fail("attestation", one_line(str(exc))) from None
        doc = self._doc
        doc.ok("attestation signature", f"{claims.tee_type} evidence, signer trusted")
        doc.ok("freshness", f"issued {claims.issued_at.isoformat()} for our fresh nonce")
        doc.ok("measurement", f"{claims.measurement} allowed by contract {self.signed.id}")
        doc.ok("contract", f"{self.signed.id} digest {self.signed.digest}")
        doc.ok("model", f"pinned digest {self.model_digest}")
        doc.ok("room keys", f"HPKE {att.hpke_public_key}, receipts {att.room_key}")
        if claims.insecure:
            doc.ok("hardware", "INSECURE: software attestation proves nothing about the host")
        self.attestation, self.claims = att, claims
        return att

    # ------------------------------------------------------------------ inference

    def infer(self, array: np.ndarray) -> InferenceResult:
        """Seal ``array`` (batch first, or one example) to the attested room; check all."""
        from sealroom.crypto.signing import b64
        from sealroom.serve.wire import InferenceRequest, WireError, seal_request

        if self.attestation is None:
            self.attest()
        att = self.attestation
        terms = self.signed.contract.inference
        assert terms is not None
        batch = np.asarray(array)
        if list(batch.shape) == list(terms.input.shape):
            batch = batch[np.newaxis]
        name, key = self.identity if self.identity is not None else (None, None)
        request = InferenceRequest(
            request_id=secrets.token_bytes(16),
            issued_at=self.clock(),
            contract_digest=self.signed.digest,
            client=name,
            array=batch,
            signature=None,
        )
        started = time.perf_counter()
        body, response_key = seal_request(unb64(att.hpke_public_key, "HPKE key"), request, key)
        response = self._post("/v1/infer", body)
        try:
            plaintext = response_key.open(response.content)
        except WireError:
            raise self._doc.fail(
                "response", "does not open with this request's key (tampered or replayed)"
            ) from None
        latency = time.perf_counter() - started
        try:
            doc = json.loads(plaintext)
            outputs = doc["outputs"]
            proof_data = doc["receipt"]
        except (ValueError, KeyError, TypeError):
            raise self._doc.fail("response", "not the room's response document") from None
        proof = self.check_receipt(proof_data, body, outputs)
        self._doc.ok("response", f"opened with request {b64(request.request_id)}'s key")
        return InferenceResult(outputs=outputs, proof=proof, latency_s=latency)

    def check_receipt(self, data: Any, body: bytes, outputs: list[Any]) -> Any:
        """The response's receipt proof, verified offline and against what this client
        attested, sent and received; ClientError naming the first mismatch."""
        from pydantic import ValidationError

        from sealroom.serve.receipts import (
            ReceiptProof,
            client_fingerprint,
            outputs_sha256,
            verify_receipt_proof,
        )

        key = self.identity[1] if self.identity is not None else None
        fingerprint = client_fingerprint(key.public_b64 if key is not None else None)

        doc, att = self._doc, self.attestation
        try:
            proof = ReceiptProof.model_validate(data)
            verify_receipt_proof(proof, trusted_signers=self.trusted)
        except (ValidationError, SealroomError) as exc:
            text = "malformed" if isinstance(exc, ValidationError) else one_line(str(exc))
            raise doc.fail("receipt", text) from None
        receipt = proof.receipt
        expected = {
            "request hash": (receipt.request_sha256, hashlib.sha256(body).hexdigest()),
            "response hash": (receipt.response_sha256, outputs_sha256(outputs)),
            "receipt model": (receipt.model_digest, self.model_digest),
            "receipt contract": (
                (receipt.contract_id, receipt.contract_digest),
                (self.signed.id, self.signed.digest),
            ),
            "receipt client": (receipt.client, fingerprint),
            "receipt measurement": (receipt.measurement, self.claims.measurement),
            "receipt signer": (proof.batch.room_key, att.room_key),
            "HPKE key": (proof.attestation.hpke_public_key, att.hpke_public_key),
            "room instance": (
                (proof.attestation.room_key, proof.attestation.instance, receipt.instance),
                (att.room_key, att.instance, att.instance),
            ),
        }
        for check, (got, want) in expected.items():
            if got != want:
                raise doc.fail(
                    check, f"the receipt names {str(got)[:120]}, expected {str(want)[:120]}"
                )
        doc.ok(
            "receipt",
            f"sequence {receipt.sequence} in batch root {proof.batch.root[:16]}…, "
            "signed by the attested receipt key",
        )
        return proof

    def fetch_commitment(self, proof: Any, wait_s: float = 3.0) -> Any:
        """The proof with the ledger's receipt for its batch root (and that entry's payload),
        verified against the contract's pinned ledger key; None when the room has not
        committed the root within ``wait_s``."""
        from pydantic import ValidationError

        from sealroom.ledger import Receipt
        from sealroom.serve.receipts import verify_receipt_proof

        deadline = time.monotonic() + wait_s
        while True:
            try:
                response = self._http.get(f"/v1/commitments/{proof.batch.root}")
            except httpx.HTTPError:
                return None
            if response.status_code == 200:
                break
            if response.status_code != 404 or time.monotonic() > deadline:
                return None
            time.sleep(0.1)
        try:
            data = response.json()
            ledger = Receipt.model_validate(data["ledger"])
            full = proof.model_copy(
                update={"ledger": ledger, "ledger_payload": data["ledger_payload"]}
            )
            verify_receipt_proof(
                full,
                ledger_public_key=self.signed.contract.ledger_public_key,
                trusted_signers=self.trusted,
            )
        except (ValueError, KeyError, ValidationError, SealroomError) as exc:
            text = one_line(str(exc)) if isinstance(exc, SealroomError) else "malformed answer"
            raise self._doc.fail("ledger commitment", text) from None
        self._doc.ok("ledger commitment", f"root listed in ledger entry {ledger.seq}")
        return full

    def verification_document(self) -> list[tuple[str, str]]:
        """Each check made so far and its result, in order (printed by ``sealroom infer``)."""
        return list(self._doc.lines)

    # ------------------------------------------------------------------ HTTP

    def _get(self, path: str, params: dict[str, str]) -> httpx.Response:
        return self._checked(self._http.build_request("GET", path, params=params), path)

    def _post(self, path: str, body: bytes) -> httpx.Response:
        headers = {"content-type": "application/octet-stream"}
        request = self._http.build_request("POST", path, content=body, headers=headers)
        return self._checked(request, path)

    def _checked(self, request: httpx.Request, path: str) -> httpx.Response:
        """The answer, read up to MAX_RESPONSE_BYTES (a room cannot make the client hold
        more); ClientError with one line when unreachable, too large or refused."""
        try:
            response = self._http.send(request, stream=True)
            try:
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        raise ClientError(f"room at {self.url}: response to {path} is too large")
                    chunks.append(chunk)
            finally:
                response.close()
        except httpx.HTTPError as exc:
            raise ClientError(
                f"room at {self.url} unreachable or gone ({type(exc).__name__}) on {path}"
            ) from None
        headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in ("content-length", "content-encoding", "transfer-encoding")
        }
        answer = httpx.Response(
            response.status_code, headers=headers, content=b"".join(chunks), request=request
        )
        if answer.status_code != 200:
            raise ClientError(f"room refused {path} ({answer.status_code}): {_error_text(answer)}")
        return answer


def _error_text(response: httpx.Response) -> str:
    try:
        data = response.json()
        text = data.get("error") if isinstance(data, dict) else None
    except ValueError:
        text = None
    return one_line(str(text or response.reason_phrase or "no reason given"), 200)
