"""Contract revocation: any party of a contract withdraws its consent, for good.

A revocation is a small document signed by one party, with the signing key the contract
pins for it, over a domain-separated message::

    "sealroom/contract-revocation/v1\\n" || RFC 8785 JSON of
        {contract_id, contract_digest, party, revoked_at, reason}

The prefix keeps a revocation signature from ever being mistaken for a contract signature
(which covers a contract's canonical bytes) or any other document a party signs. It lives
beside the contract (``contracts/<id>.revocations.json``) and in the ledger
(``contract.revoked``, whose payload is the document itself), travels as a file to other
workspaces, and :func:`check_not_revoked` (run by ``verify_contract``, hence by every key
service and the room) refuses a contract that either place says was revoked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import rfc8785
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sealroom.contract.canonical import contract_digest
from sealroom.contract.loading import describe_validation
from sealroom.contract.schema import DIGEST_PATTERN, ID_PATTERN, NAME_PATTERN, Contract
from sealroom.crypto.signing import b64, unb64, verify_signature
from sealroom.errors import ContractError, SignatureError
from sealroom.files import write_atomic
from sealroom.ledger import Ledger
from sealroom.workspace import Workspace

REVOKED = "contract.revoked"
DOMAIN = b"sealroom/contract-revocation/v1\n"
FILE_SUFFIX = ".revocations.json"


class ContractRevoked(ContractError):
    """A party of the contract revoked it: no key is released and no run starts under it."""


class RevocationError(ContractError):
    """A revocation document is malformed, for another contract, or not signed by a party."""


class Revocation(BaseModel):
    """One party's signed withdrawal of consent from one contract."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    contract_id: str = Field(pattern=ID_PATTERN)
    contract_digest: str = Field(pattern=DIGEST_PATTERN)
    party: str = Field(pattern=NAME_PATTERN)
    revoked_at: datetime
    reason: str | None = Field(default=None, max_length=500)
    signature: str = ""  # base64 Ed25519 over signed_bytes()

    def signed_bytes(self) -> bytes:
        """The exact bytes the party signs (domain prefix + canonical JSON, no signature)."""
        body = self.model_dump(mode="json", exclude={"signature"})
        return DOMAIN + rfc8785.dumps(body)

    @property
    def when(self) -> str:
        return self.revoked_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def verify_for(self, contract: Contract, where: str) -> None:
        """RevocationError unless this revokes ``contract`` and its party signed it."""
        if self.contract_id != contract.id:
            raise RevocationError(
                f"{where}: revokes contract {self.contract_id}, not {contract.id}"
            )
        if self.contract_digest != contract_digest(contract):
            raise RevocationError(
                f"{where}: revokes another version of contract {contract.id} "
                f"({self.contract_digest})"
            )
        try:
            listed = contract.party(self.party)
        except KeyError:
            raise RevocationError(
                f"{where}: signed as {self.party!r}, who is not a party of contract {contract.id}"
            ) from None
        try:
            signature = unb64(self.signature, f"revocation signature of {self.party!r}")
            verify_signature(listed.signing_key, signature, self.signed_bytes(), self.party)
        except SignatureError:
            raise RevocationError(
                f"{where}: the revocation signature of {self.party!r} does not verify with "
                f"the key contract {contract.id} pins for it"
            ) from None


def make_revocation(
    contract: Contract,
    party: str,
    sign: Callable[[bytes], bytes],
    reason: str | None,
    now: datetime,
) -> Revocation:
    """A revocation of ``contract`` by ``party``, signed with ``sign``."""
    unsigned = Revocation(
        contract_id=contract.id,
        contract_digest=contract_digest(contract),
        party=party,
        revoked_at=now.astimezone(UTC).replace(microsecond=0),
        reason=reason or None,
    )
    return unsigned.model_copy(update={"signature": b64(sign(unsigned.signed_bytes()))})


def parse_revocation(data: bytes, where: str) -> Revocation:
    """A revocation document from JSON bytes; one-line errors naming ``where``."""
    try:
        return Revocation.model_validate_json(data)
    except ValidationError as exc:
        raise RevocationError(describe_validation(where, exc)) from None


def revocations_path(ws: Workspace, contract_id: str) -> Path:
    return ws.contracts / f"{contract_id}{FILE_SUFFIX}"


def stored_revocations(ws: Workspace, contract: Contract) -> list[Revocation]:
    """The revocations kept beside the contract, each verified; a damaged file refuses."""
    path = revocations_path(ws, contract.id)
    if not path.exists():
        return []
    try:
        items = json.loads(path.read_bytes())
    except ValueError:
        items = None
    if not isinstance(items, list):
        raise RevocationError(f"{path}: not a list of revocations (fix or restore it)")
    found = []
    for i, item in enumerate(items):
        where = f"{path}[{i}]"
        revocation = parse_revocation(json.dumps(item).encode(), where)
        revocation.verify_for(contract, where)
        found.append(revocation)
    return found


def store_revocation(ws: Workspace, contract: Contract, revocation: Revocation) -> bool:
    """Keep ``revocation`` beside the contract; False when the same one is already there.

    Callers hold the contract's lock.
    """
    known = stored_revocations(ws, contract)
    if revocation in known:
        return False
    path = revocations_path(ws, contract.id)
    items = [r.model_dump(mode="json") for r in [*known, revocation]]
    write_atomic(path, (json.dumps(items, indent=2) + "\n").encode())
    return True


def ledger_revocations(ledger: Ledger, contract: Contract) -> list[Revocation]:
    """The ``contract.revoked`` entries for this contract, each re-verified."""
    found = []
    for entry in ledger.find(REVOKED, contract_id=contract.id):
        where = f"ledger entry {entry.seq}"
        revocation = parse_revocation(json.dumps(entry.payload).encode(), where)
        revocation.verify_for(contract, where)
        found.append(revocation)
    return found


def check_not_revoked(ws: Workspace, contract: Contract, ledger: Ledger) -> None:
    """ContractRevoked if the workspace or its ledger holds a revocation of ``contract``.

    Both are read so that deleting the file beside the contract revives nothing.
    """
    _refuse(contract, stored_revocations(ws, contract) + ledger_revocations(ledger, contract))


def check_stored_revocations(ws: Workspace, contract: Contract) -> None:
    """ContractRevoked if the workspace holds a revocation of ``contract`` (no ledger needed:
    offline verification, and signing a contract still being proposed)."""
    _refuse(contract, stored_revocations(ws, contract))


def _refuse(contract: Contract, known: list[Revocation]) -> None:
    if known:
        first = min(known, key=lambda r: r.revoked_at)
        because = f" ({first.reason})" if first.reason else ""
        raise ContractRevoked(
            f"contract {contract.id} was revoked by {first.party} at {first.when}{because}"
        )
