"""What a client checks before sealing anything to a serving room.

The room's evidence carries ``report_data = SHA-512(domain || lp(nonce) || lp(HPKE public
key) || lp(room signing key) || lp(model digest) || lp(contract digest))`` (``lp``: 4-byte
big-endian length prefix), so one evidence names exactly one request key, one receipt-signing
key, one model and one contract, for one client nonce. A client that verifies it (and pins
the measurement) knows that only that room opens its requests and signs its receipts.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import struct
from collections.abc import Callable, Collection
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sealroom.attest.evidence import Claims, Evidence
from sealroom.attest.policy import HardwarePolicy, check_hardware_policy
from sealroom.attest.software import MAX_AGE, MAX_SKEW
from sealroom.contract.signed import SignedContract
from sealroom.crypto.signing import b64, raw_public_key, unb64
from sealroom.errors import AttestationError, SignatureError
from sealroom.room.runkey import evidence_claims

REPORT_DOMAIN = b"sealroom.serve.attestation.v1\0"
MIN_NONCE = 16
MAX_NONCE = 64
DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
INSTANCE_PATTERN = r"^srv-\d{8}T\d{6}-[0-9a-f]{6}$"
SOFTWARE = "software"


def _lp(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _raw32(value: str, what: str) -> bytes:
    try:
        raw = unb64(value, what)
    except SignatureError as exc:
        raise AttestationError(str(exc)) from None
    if len(raw) != 32:
        raise AttestationError(f"{what} has {len(raw)} bytes, expected 32")
    return raw


def serving_report_data(
    nonce: bytes,
    hpke_public_key: bytes,
    room_key: str,
    model_digest: str,
    contract_digest: str,
) -> bytes:
    """The 64 bytes a serving room's evidence binds (see the module docstring)."""
    if not MIN_NONCE <= len(nonce) <= MAX_NONCE:
        raise AttestationError(
            f"attestation nonce has {len(nonce)} bytes; {MIN_NONCE} to {MAX_NONCE} allowed"
        )
    if len(hpke_public_key) != 32:
        raise AttestationError(f"HPKE public key has {len(hpke_public_key)} bytes, expected 32")
    return hashlib.sha512(
        REPORT_DOMAIN
        + _lp(nonce)
        + _lp(hpke_public_key)
        + _lp(_raw32(room_key, "room key"))
        + _lp(model_digest.encode("utf-8"))
        + _lp(contract_digest.encode("utf-8"))
    ).digest()


def new_instance_id(now: datetime | None = None) -> str:
    """A serving instance id, ``srv-YYYYmmddTHHMMSS-hex6``: names one room process."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"srv-{moment:%Y%m%dT%H%M%S}-{os.urandom(3).hex()}"


class RoomAttestation(BaseModel):
    """Evidence plus everything it binds: what ``GET /v1/attestation`` returns."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, ser_json_bytes="base64", val_json_bytes="base64"
    )

    evidence: Evidence
    nonce: bytes = Field(min_length=MIN_NONCE, max_length=MAX_NONCE)
    hpke_public_key: str  # base64 raw X25519
    room_key: str  # base64 raw Ed25519: signs receipt batches
    model_digest: str = Field(pattern=DIGEST_PATTERN)
    contract_digest: str = Field(pattern=DIGEST_PATTERN)
    instance: str = Field(pattern=INSTANCE_PATTERN)

    _keys = field_validator("hpke_public_key", "room_key")(raw_public_key)

    @property
    def hpke_public_raw(self) -> bytes:
        return unb64(self.hpke_public_key, "HPKE public key")

    def report_data(self) -> bytes:
        return serving_report_data(
            self.nonce,
            self.hpke_public_raw,
            self.room_key,
            self.model_digest,
            self.contract_digest,
        )


def attest_room(
    attest: Callable[[bytes], Evidence],
    *,
    nonce: bytes,
    hpke_public_key: bytes,
    room_key: str,
    model_digest: str,
    contract_digest: str,
    instance: str,
) -> RoomAttestation:
    """Fresh evidence for ``nonce`` from ``attest`` (an attester, or the desk via the channel)."""
    report = serving_report_data(nonce, hpke_public_key, room_key, model_digest, contract_digest)
    return RoomAttestation(
        evidence=attest(report),
        nonce=nonce,
        hpke_public_key=b64(hpke_public_key),
        room_key=room_key,
        model_digest=model_digest,
        contract_digest=contract_digest,
        instance=instance,
    )


def evidence_claims_of(
    att: RoomAttestation, trusted_signers: set[str] | None, now: datetime | None = None
) -> Claims:
    """Signature check of the evidence (no freshness for software evidence), offline.

    ``trusted_signers``: the software attestation keys accepted; None accepts any signer
    whose signature is self-consistent (INSECURE either way: software evidence can be forged
    by whoever runs the host). Hardware evidence is verified by its TEE verifier against the
    vendor roots shipped in the package, as of ``now``.
    """
    evidence = att.evidence
    if (
        evidence.tee_type == SOFTWARE
        and trusted_signers is not None
        and evidence.signer not in trusted_signers
    ):
        raise AttestationError(
            "software evidence is signed by a key this client does not trust "
            f"({evidence.signer[:12]}…)"
        )
    return evidence_claims(evidence, now)


def check_binding(att: RoomAttestation, claims: Claims) -> None:
    """AttestationError unless the evidence's report data binds every field of ``att``."""
    if not hmac.compare_digest(claims.report_data, att.report_data()):
        raise AttestationError(
            "evidence report data does not bind this HPKE key, room key, model, contract and nonce"
        )


def check_room_policy(
    claims: Claims,
    signed: SignedContract,
    measurements: Collection[str] | None = None,
    hardware: HardwarePolicy | None = None,
) -> None:
    """The contract's room policy (as release.rego reads it) plus the client's own pins.

    A client that pins measurements also holds hardware claims to the hardware terms:
    ``hardware`` when given, else the default ones (VMPL 0, TDX status UpToDate, ...)."""
    room = signed.contract.room
    if room.measurements and claims.measurement not in room.measurements:
        raise AttestationError(
            f"room measurement {claims.measurement[:16]}… is not allowed by contract {signed.id}"
        )
    if measurements is not None and claims.measurement not in measurements:
        raise AttestationError(
            f"room measurement {claims.measurement[:16]}… is not one this client pins"
        )
    if claims.insecure and not room.allow_insecure:
        raise AttestationError(
            f"room evidence is insecure ({claims.tee_type}) and contract {signed.id} does not "
            "allow insecure rooms"
        )
    if claims.debug:
        raise AttestationError("the room's TEE runs in debug mode: the host can read its memory")
    if room.tee_types and claims.tee_type not in room.tee_types:
        raise AttestationError(f"TEE type {claims.tee_type} is not allowed by contract {signed.id}")
    if claims.insecure:
        return
    if hardware is None and measurements:
        hardware = HardwarePolicy(measurements=list(measurements))
    if hardware is not None:
        check_hardware_policy(claims, hardware)


def verify_room_attestation(
    att: RoomAttestation,
    *,
    nonce: bytes,
    contract: SignedContract,
    model_digest: str,
    trusted_signers: set[str] | None,
    now: datetime | None = None,
    measurements: Collection[str] | None = None,
) -> Claims:
    """Every check a client makes before trusting a room; AttestationError names the first
    that fails: nonce, contract, model, evidence signer and signature, freshness, binding,
    measurement, insecure, TEE type."""
    if not hmac.compare_digest(att.nonce, nonce):
        raise AttestationError("attestation answers another nonce (replayed or not ours)")
    if att.contract_digest != contract.digest:
        raise AttestationError(
            f"attestation is for contract digest {att.contract_digest}, expected "
            f"{contract.digest} ({contract.id})"
        )
    if att.model_digest != model_digest:
        raise AttestationError(
            f"attestation is for model {att.model_digest}, expected {model_digest}"
        )
    moment = now or datetime.now(UTC)
    claims = evidence_claims_of(att, trusted_signers, moment)
    if claims.issued_at > moment + MAX_SKEW or moment - claims.issued_at > MAX_AGE:
        raise AttestationError(
            f"room evidence issued at {claims.issued_at.isoformat()} is not fresh "
            f"(max age {int(MAX_AGE.total_seconds())} s)"
        )
    check_binding(att, claims)
    check_room_policy(claims, contract, measurements)
    return claims


def parse_nonce_hex(text: str) -> bytes:
    """The ``nonce`` query parameter: 32 to 128 lowercase hex digits (16 to 64 bytes)."""
    if not re.fullmatch(r"(?:[0-9a-f]{2}){16,64}", text):
        raise AttestationError("nonce must be 32 to 128 lowercase hex digits")
    return bytes.fromhex(text)
