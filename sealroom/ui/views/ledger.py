"""The ledger page: entries newest first, the chain's verification, the first bad entry.

Entries from the first bad one on are untrusted: an edit, deletion or forged head there
means nothing recorded after it can be relied on either.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

from pydantic import BaseModel

from sealroom.ledger import Entry
from sealroom.ledger.ledger import KIND_PATTERN
from sealroom.ui.views.ledger_state import (
    API_WAIT_S,
    BadQuery,
    ChainCheck,
    chain_check,
    open_ledger,
)
from sealroom.workspace import Workspace

PAGE_SIZE = 100
MAX_LIMIT = 1000
Trust = Literal["verified", "bad", "untrusted", "unverified"]


class LedgerRow(BaseModel):
    """One entry in the list; ``missing``: a deleted entry the chain expects here."""

    seq: int
    kind: str
    timestamp: str
    entry_hash: str
    trust: Trust
    missing: bool = False
    payload: dict[str, Any] | None = None


class LedgerPage(BaseModel):
    check: ChainCheck
    entries: list[LedgerRow]
    kind: str | None
    kinds: dict[str, int]
    total: int
    offset: int
    limit: int
    page: int
    pages: int
    first_bad_page: int | None  # the page (of this listing) holding the first bad entry


class LedgerEntry(BaseModel):
    """One entry in full; ``problem``: why the entry on its own does not verify."""

    seq: int
    kind: str
    timestamp: str
    prev_hash: str
    entry_hash: str
    signature: str
    payload: dict[str, Any]
    payload_json: str
    trust: Trust
    problem: str | None
    check: ChainCheck


def trust_of(seq: int, check: ChainCheck) -> Trust:
    if check.verified is None:
        return "unverified"
    if check.first_bad is None or seq < check.first_bad:
        return "verified"
    return "bad" if seq == check.first_bad else "untrusted"


def parse_kind(kind: str | None) -> str | None:
    if kind is None or kind == "":
        return None
    if len(kind) > 100 or not KIND_PATTERN.match(kind):
        raise BadQuery("kind must be a ledger entry kind such as run.completed")
    return kind


def _row(entry: Entry, check: ChainCheck, payload: bool) -> LedgerRow:
    return LedgerRow(
        seq=entry.seq,
        kind=entry.kind,
        timestamp=entry.timestamp,
        entry_hash=entry.entry_hash,
        trust=trust_of(entry.seq, check),
        payload=entry.payload if payload else None,
    )


def ledger_page(
    ws: Workspace,
    offset: int,
    limit: int,
    kind: str | None,
    payloads: bool = False,
    wait: float = API_WAIT_S,
) -> LedgerPage:
    """Entries ``offset`` .. ``offset + limit`` newest first; ``payloads`` for the API;
    ``wait``: how long to wait for the chain's verification (see chain_check)."""
    check = chain_check(ws, wait)
    with open_ledger(ws) as view:
        if view is None:
            return LedgerPage(
                check=check, entries=[], kind=kind, kinds={}, total=0, offset=offset,
                limit=limit, page=1, pages=1, first_bad_page=None,
            )  # fmt: skip
        total = view.count(kind)
        entries = [_row(e, check, payloads) for e in view.newest(offset, limit, kind)]
        kinds = view.kinds()
        first_bad_page = None
        if check.first_bad is not None:
            newer = view.count(kind, after=check.first_bad)
            first_bad_page = newer // limit + 1
            if kind is None:
                last = offset + limit >= total
                _mark_missing(entries, check.first_bad, offset == 0, last)
    return LedgerPage(
        check=check,
        entries=entries,
        kind=kind,
        kinds=kinds,
        total=total,
        offset=offset,
        limit=limit,
        page=offset // limit + 1,
        pages=max(1, math.ceil(total / limit)),
        first_bad_page=first_bad_page,
    )


def _mark_missing(entries: list[LedgerRow], bad: int, first_page: bool, last_page: bool) -> None:
    """A deleted first bad entry gets a row of its own where it belonged (unfiltered list:
    seqs there run without gaps, so a seq inside this page's range that is not here is gone)."""
    seqs = [e.seq for e in entries]
    if bad in seqs:
        return
    top, bottom = max(seqs, default=0), min(seqs, default=0)
    if not ((bottom < bad < top) or (first_page and bad > top) or (last_page and bad < bottom)):
        return
    at = sum(1 for s in seqs if s > bad)
    gone = LedgerRow(seq=bad, kind="(missing)", timestamp="", entry_hash="", trust="bad")
    entries.insert(at, gone.model_copy(update={"missing": True}))


def ledger_entry(ws: Workspace, seq: int, wait: float = API_WAIT_S) -> LedgerEntry | None:
    """One entry with its payload and whether it verifies on its own; None if absent."""
    check = chain_check(ws, wait)
    with open_ledger(ws) as view:
        entry = view.get(seq) if view is not None else None
        if view is None or entry is None:
            return None
        problem = view.row_problem(seq) if view.public_key_b64 else None
    return LedgerEntry(
        seq=entry.seq,
        kind=entry.kind,
        timestamp=entry.timestamp,
        prev_hash=entry.prev_hash,
        entry_hash=entry.entry_hash,
        signature=entry.signature,
        payload=entry.payload,
        payload_json=json.dumps(entry.payload, indent=2, sort_keys=True, ensure_ascii=False),
        trust=trust_of(entry.seq, check),
        problem=problem,
        check=check,
    )
