"""Canonical bytes of a contract (RFC 8785 JSON): the exact bytes every party signs."""

from __future__ import annotations

import hashlib

import rfc8785

from sealroom.contract.schema import Contract


def canonical_bytes(contract: Contract) -> bytes:
    """RFC 8785 canonical JSON of the contract; the same on every machine.

    Fields added after contracts were first signed are left out while unset (see
    ``schema._Strict._added_fields``), so older contracts keep their bytes and signatures.
    """
    return rfc8785.dumps(contract.model_dump(mode="json"))


def contract_digest(contract: Contract) -> str:
    """``sha256:<hex>`` of the canonical bytes; names the contract in ledger entries."""
    return "sha256:" + hashlib.sha256(canonical_bytes(contract)).hexdigest()
