"""Head pins: ``SEQ:HASH`` an auditor writes down so that a rolled-back ledger shows.

The hash chain proves entries were not edited, deleted in the middle or reordered, but whoever
holds the ledger key can truncate the tail and re-sign a head (or start an empty ledger with the
same key). Only something kept outside the ledger detects that: a pinned head, a run receipt, a
contract's registration receipt. Each names an entry (seq and entry hash) the ledger must hold.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from sealroom.errors import LedgerError

_PIN = re.compile(r"^([1-9][0-9]{0,17}):([0-9a-f]{64})$")


class HeadPin(NamedTuple):
    """An entry the ledger must hold: its sequence number and entry hash."""

    seq: int
    entry_hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.entry_hash}"


def parse_pin(text: str) -> HeadPin:
    """``SEQ:HASH`` (HASH: 64 lower-case hex digits) -> HeadPin; LedgerError naming the text."""
    match = _PIN.match(text.strip())
    if match is None:
        raise LedgerError(
            f"head pin {text!r} is not SEQ:HASH (a positive entry number, a colon and the "
            "64-hex-digit entry hash printed by `sealroom ledger head`)"
        )
    return HeadPin(int(match.group(1)), match.group(2))
