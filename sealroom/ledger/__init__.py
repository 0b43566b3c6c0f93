"""Append-only, hash-chained, signed ledger with receipts auditors verify offline."""

from sealroom.ledger.entries import Entry, Receipt
from sealroom.ledger.errors import ChainBroken, ReceiptInvalid
from sealroom.ledger.ledger import Ledger

__all__ = ["ChainBroken", "Entry", "Ledger", "Receipt", "ReceiptInvalid"]
