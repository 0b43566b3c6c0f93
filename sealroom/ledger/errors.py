"""Ledger refusals that carry the sequence number an auditor should look at."""

from __future__ import annotations

from sealroom.errors import LedgerError


class ChainBroken(LedgerError):
    """The hash chain does not verify; ``seq`` is the first bad sequence number."""

    def __init__(self, seq: int, reason: str) -> None:
        self.seq = seq
        self.reason = reason
        super().__init__(f"ledger entry {seq} {reason}")


class ReceiptInvalid(LedgerError):
    """A receipt does not verify against the ledger's public key or its payload."""


class NotInLedger(LedgerError):
    """The ledger does not hold an entry a receipt or pin speaks for (rolled back, replaced,
    forked, or simply another ledger)."""

    def __init__(self, seq: int, message: str) -> None:
        self.seq = seq
        super().__init__(message)
