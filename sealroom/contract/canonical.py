"""Canonical bytes of a contract (RFC 8785 JSON): the exact bytes every party signs."""

from __future__ import annotations

import hashlib

import rfc8785

from sealroom.contract.schema import Contract

# Fields added after contracts were first signed: left out of the signed bytes while unset,
# so a contract signed before they existed keeps its bytes, digest and signatures.
OMITTED_WHEN_UNSET = frozenset({"ledger_public_key"})


def canonical_bytes(contract: Contract) -> bytes:
    """RFC 8785 canonical JSON of the contract; the same on every machine."""
    data = contract.model_dump(mode="json")
    for name in OMITTED_WHEN_UNSET:
        if data.get(name) is None:
            data.pop(name, None)
    return rfc8785.dumps(data)


def contract_digest(contract: Contract) -> str:
    """``sha256:<hex>`` of the canonical bytes; names the contract in ledger entries."""
    return "sha256:" + hashlib.sha256(canonical_bytes(contract)).hexdigest()
