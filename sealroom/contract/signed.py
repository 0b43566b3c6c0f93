"""A contract together with its parties' signatures and the ledger's registration receipt.

Signatures and receipt sit beside the contract, never inside the signed bytes: every party
signs exactly ``canonical_bytes(contract)``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sealroom.contract.canonical import canonical_bytes, contract_digest
from sealroom.contract.schema import Contract
from sealroom.crypto.signing import b64, unb64, verify_signature
from sealroom.errors import ContractError, SignatureError
from sealroom.ledger import Receipt
from sealroom.ledger.errors import ReceiptInvalid

REGISTERED = "contract.registered"


class SignedContract(BaseModel):
    """What the workspace stores for one contract id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    contract: Contract
    signatures: dict[str, str] = Field(default_factory=dict)  # party name -> base64 Ed25519
    receipt: Receipt | None = None

    @property
    def id(self) -> str:
        return self.contract.id

    @property
    def digest(self) -> str:
        return contract_digest(self.contract)

    @property
    def missing_signers(self) -> list[str]:
        return [p.name for p in self.contract.parties if p.name not in self.signatures]

    @property
    def complete(self) -> bool:
        return not self.missing_signers

    def with_signature(self, name: str, signature: bytes) -> SignedContract:
        signatures = {**self.signatures, name: b64(signature)}
        return self.model_copy(update={"signatures": signatures})

    def verify_signature_of(self, name: str) -> None:
        """ContractError unless ``name``'s signature verifies with the key the contract lists."""
        try:
            party = self.contract.party(name)
        except KeyError:
            raise ContractError(
                f"contract {self.id}: signature from {name!r}, who is not one of its parties"
            ) from None
        encoded = self.signatures.get(name)
        if encoded is None:
            raise ContractError(f"contract {self.id}: missing signature from {name!r}")
        try:
            signature = unb64(encoded, f"signature from {name!r}")
            verify_signature(party.signing_key, signature, canonical_bytes(self.contract), name)
        except SignatureError:
            raise ContractError(
                f"contract {self.id}: signature from {name!r} does not verify "
                "with the signing key the contract lists for it"
            ) from None

    def verify_signatures(self) -> None:
        """Every listed party signed, every signature verifies, nobody else signed."""
        for name in sorted(self.signatures):
            self.verify_signature_of(name)
        missing = self.missing_signers
        if missing:
            who = ", ".join(repr(m) for m in missing)
            plural = "s" if len(missing) > 1 else ""
            raise ContractError(f"contract {self.id}: missing signature{plural} from {who}")

    def check_in_force(self, now: datetime | None = None) -> None:
        """ContractError unless ``now`` lies in [not_before, expires)."""
        moment = (now or datetime.now(UTC)).astimezone(UTC)
        if moment < self.contract.not_before:
            raise ContractError(
                f"contract {self.id} is not in force before {_iso(self.contract.not_before)}"
            )
        check_not_expired(self.contract, moment)

    def registration_payload(self) -> dict[str, Any]:
        """The ledger payload of ``contract.registered``; recomputable from the contract alone."""
        return {
            "contract_id": self.id,
            "contract_digest": self.digest,
            "parties": [p.name for p in self.contract.parties],
            "not_before": self.contract.not_before.isoformat(),
            "expires": self.contract.expires.isoformat(),
        }

    def check_receipt(self, ledger_public_key_b64: str) -> Receipt:
        """Offline: the receipt is the ledger's signed record of registering this contract."""
        check_ledger_pin(self.contract, ledger_public_key_b64)
        if self.receipt is None:
            raise ContractError(f"contract {self.id} is not registered in the ledger")
        if self.receipt.kind != REGISTERED:
            raise ContractError(
                f"contract {self.id}: its receipt is for a {self.receipt.kind!r} entry, "
                f"not {REGISTERED!r}"
            )
        try:
            self.receipt.verify(ledger_public_key_b64)
            self.receipt.check_payload(self.registration_payload())
        except ReceiptInvalid as exc:
            raise ContractError(f"contract {self.id}: {exc}") from None
        return self.receipt

    def verify(self, ledger_public_key_b64: str, now: datetime | None = None) -> Receipt:
        """Everything an auditor can check without the ledger database: signatures, validity
        window at ``now`` and the registration receipt."""
        self.verify_signatures()
        self.check_in_force(now)
        return self.check_receipt(ledger_public_key_b64)


def check_ledger_pin(contract: Contract, ledger_public_key_b64: str) -> None:
    """ContractError when the contract pins a ledger other than the one given."""
    pinned = contract.ledger_public_key
    if pinned is not None and pinned != ledger_public_key_b64:
        raise ContractError(
            f"contract {contract.id} pins ledger key {pinned[:12]}…, not the ledger in use "
            f"({ledger_public_key_b64[:12]}…): it is registered and checked only by the ledger "
            "it names"
        )


def check_not_expired(contract: Contract, now: datetime) -> None:
    """ContractError once ``now`` reaches the contract's expiry (signing needs no more)."""
    if now >= contract.expires:
        raise ContractError(f"contract {contract.id} expired at {_iso(contract.expires)}")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
