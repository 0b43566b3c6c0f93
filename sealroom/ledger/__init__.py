"""Append-only, hash-chained, signed ledger with receipts auditors verify offline."""

from sealroom.ledger.entries import Entry, Receipt
from sealroom.ledger.errors import ChainBroken, NotInLedger, ReceiptInvalid
from sealroom.ledger.ledger import Ledger, LedgerView
from sealroom.ledger.pins import HeadPin, parse_pin
from sealroom.ledger.verify import ChainStatus

__all__ = [
    "ChainBroken",
    "ChainStatus",
    "Entry",
    "HeadPin",
    "Ledger",
    "LedgerView",
    "NotInLedger",
    "Receipt",
    "ReceiptInvalid",
    "parse_pin",
]
