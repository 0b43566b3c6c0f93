"""The software attester: for machines without a TEE. INSECURE by construction.

It signs claims with a per-workspace Ed25519 key, so anyone who can read that key (or run
code as the room's user) can forge evidence. It exists so that the whole protocol runs on
any machine; every claim it issues says ``insecure: true`` and every log line says INSECURE.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from sealroom.attest.evidence import Claims, Evidence
from sealroom.attest.measure import measure_runtime
from sealroom.crypto.signing import SigningKey, unb64, verify_signature
from sealroom.errors import AttestationError, SignatureError
from sealroom.workspace import Workspace

log = logging.getLogger("sealroom.attest")

TEE_TYPE = "software"
KEY_FILE = "attestation.key"
INSECURE_LABEL = "INSECURE software attestation (no TEE): evidence can be forged on this host"
MAX_AGE = timedelta(minutes=10)
MAX_SKEW = timedelta(minutes=2)


TRUSTED_FILE = "trusted-attesters.json"


def attestation_key(ws: Workspace) -> SigningKey:
    """The workspace's attestation key (created on first use, 0600, race-safe)."""
    return SigningKey.load_or_create(ws.keys / KEY_FILE)


def trusted_attesters(ws: Workspace) -> set[str]:
    """Other hosts' software attestation public keys this workspace accepts evidence from.

    A provider that runs its own key service trusts the room host's key explicitly
    (``sealroom attest trust``); this is still INSECURE: that host can sign anything.
    """
    path = ws.keys / TRUSTED_FILE
    if not path.exists():
        return set()
    try:
        keys = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AttestationError(f"{path}: unreadable list of trusted attesters ({exc})") from None
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise AttestationError(f"{path}: must be a JSON list of base64 public keys")
    return set(keys)


def trust_attester(ws: Workspace, public_key_b64: str) -> None:
    """Accept software evidence signed by ``public_key_b64`` from now on (atomic write)."""
    from sealroom.files import write_atomic

    raw = unb64(public_key_b64, "attestation public key")
    if len(raw) != 32:
        raise AttestationError(f"attestation public key has {len(raw)} bytes, expected 32")
    keys = sorted(trusted_attesters(ws) | {public_key_b64})
    write_atomic(ws.keys / TRUSTED_FILE, (json.dumps(keys, indent=2) + "\n").encode("utf-8"))


class SoftwareAttester:
    """Signs (measurement, report data, time) with the workspace attestation key."""

    tee_type = TEE_TYPE

    def __init__(self, ws: Workspace, measurement: str | None = None) -> None:
        self._key = attestation_key(ws)
        self.measurement = measurement or measure_runtime()

    def attest(self, report_data: bytes) -> Evidence:
        claims = Claims(
            tee_type=TEE_TYPE,
            measurement=self.measurement,
            insecure=True,
            report_data=report_data,
            issued_at=datetime.now(UTC),
        )
        payload = claims.model_dump_json().encode("utf-8")
        log.warning("%s; measurement %s", INSECURE_LABEL, self.measurement)
        return Evidence(
            tee_type=TEE_TYPE,
            payload=payload,
            signature=self._key.sign(payload),
            signer=self._key.public_b64,
        )


class SoftwareVerifier:
    """Checks software evidence against this workspace's attestation key. Always insecure."""

    tee_type = TEE_TYPE

    def verify(
        self, evidence: Evidence, ws: Workspace | None, now: datetime | None = None
    ) -> Claims:
        if ws is None:
            raise AttestationError("software evidence is checked against a workspace's keys")
        trusted = {attestation_key(ws).public_b64, *trusted_attesters(ws)}
        if evidence.signer not in trusted:
            raise AttestationError(
                "software evidence is signed by a key that is neither this workspace's "
                "attestation key nor one it trusts (sealroom attest trust)"
            )
        signer = evidence.signer
        try:
            verify_signature(signer, evidence.signature, evidence.payload, "software attester")
        except SignatureError:
            raise AttestationError("software evidence signature does not verify") from None
        try:
            claims = Claims.model_validate_json(evidence.payload)
        except ValidationError as exc:
            raise AttestationError(f"software evidence claims are malformed: {exc}") from None
        if claims.tee_type != TEE_TYPE or not claims.insecure:
            raise AttestationError("software evidence must claim tee_type software and insecure")
        moment = now or datetime.now(UTC)
        if claims.issued_at > moment + MAX_SKEW or moment - claims.issued_at > MAX_AGE:
            raise AttestationError(
                f"software evidence issued at {claims.issued_at.isoformat()} is not fresh"
            )
        log.warning("verified %s; measurement %s", INSECURE_LABEL, claims.measurement)
        return claims
