"""The workspace's ledger as the dashboard reads it: read-only, with the public key only,
and the chain's verification cached until the database changes.

Walking the chain checks a signature per entry (about a millisecond each), too slow to
repeat on every page load of a long ledger; the result is kept per database and reused
while the files' sizes and modification times and the head are what they were.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel

from sealroom.errors import SealroomError
from sealroom.ledger import LedgerView
from sealroom.ledger.keys import read_ledger_public_key
from sealroom.ledger.repository import Row
from sealroom.ledger.verify import chain_status
from sealroom.workspace import Workspace


class BadQuery(SealroomError):
    """A query parameter the page cannot use (a page number that is not one): 400."""


class ChainCheck(BaseModel):
    """The chain's verification as a page shows it. ``verified`` None: it could not be
    checked (no ledger yet, or no public key to check it with)."""

    verified: bool | None
    entries: int
    pending: bool = False  # a walk of the chain is under way
    first_bad: int | None = None
    reason: str | None = None
    public_key: str | None = None


# Per database: the state last verified and what it found; the rows a passing walk covered
# (count and digest of their stored bytes); the walk under way, if any.
_cache: dict[Path, tuple[tuple[object, ...], ChainCheck]] = {}
_verified_prefix: dict[Path, tuple[int, str]] = {}
_running: dict[Path, tuple[tuple[object, ...], threading.Event]] = {}
_lock = threading.Lock()
PAGE_WAIT_S = 0.2  # a page waits this long for a walk, then says it is under way
API_WAIT_S = 60.0  # a script asking /api/... gets the answer


def ledger_key(ws: Workspace) -> str | None:
    """The ledger's public key (``keys/ledger.pub``); the private key is never read."""
    return read_ledger_public_key(ws.keys)


@contextmanager
def open_ledger(ws: Workspace) -> Iterator[LedgerView | None]:
    """The ledger, read-only, or None when there is none. Without a public key the entries
    still read (chain_check then says they are not verified)."""
    if not ws.ledger_db.is_file():
        yield None
        return
    view = LedgerView.open_copy(ws.ledger_db, ledger_key(ws) or "")
    try:
        yield view
    finally:
        view.close()


def _fingerprint(view: LedgerView) -> tuple[object, ...]:
    """What changes whenever a row, the head or the files change (WAL included)."""
    stats: list[object] = []
    for suffix in ("", "-wal"):
        path = Path(str(view.path) + suffix)
        try:
            st = path.stat()
            stats += [st.st_size, st.st_mtime_ns, st.st_ino]
        except FileNotFoundError:
            stats += [None, None, None]
    return (*stats, view.head(), view.public_key_b64)


def chain_check(ws: Workspace, wait: float = API_WAIT_S) -> ChainCheck:
    """Verify the whole chain, cached per database state. A walk runs in the background and
    this waits ``wait`` seconds for it; a walk still running then gives ``pending``."""
    if not ws.ledger_db.is_file():
        return ChainCheck(verified=None, entries=0, reason="no ledger yet")
    with open_ledger(ws) as view:
        if view is None or not view.public_key_b64:
            reason = (
                "the ledger's public key (keys/ledger.pub) is missing: run "
                "`sealroom ledger public-key` once to write it"
            )
            return ChainCheck(verified=None, entries=len(view or []), reason=reason)
        key, path, count = _fingerprint(view), view.path, len(view)
    with _lock:
        cached = _cache.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        running = _running.get(path)
        if running is None or running[0] != key:
            running = (key, threading.Event())
            _running[path] = running
            worker = threading.Thread(target=_walk, args=(ws, key, running[1]), daemon=True)
            worker.start()
    if running[1].wait(wait):
        with _lock:
            cached = _cache.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
    return ChainCheck(
        verified=None, pending=True, entries=count, reason="verifying the chain (under way)"
    )


def _digest(rows: list[Row]) -> str:
    text = json.dumps([list(r) for r in rows], separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _walk(ws: Workspace, key: tuple[object, ...], done: threading.Event) -> None:
    """Walk the chain once; rows a previous passing walk covered, byte for byte unchanged,
    have only their links walked again (an append re-checks only the new entries)."""
    try:
        with open_ledger(ws) as view:
            assert view is not None
            rows, head = view.snapshot()
            with _lock:
                known, digest = _verified_prefix.get(view.path, (0, ""))
            trusted = known if known <= len(rows) and _digest(rows[:known]) == digest else 0
            status = chain_status(rows, head, view.public_key_b64, trusted=trusted)
            check = ChainCheck(
                verified=status.verified,
                entries=status.entries,
                first_bad=status.first_bad,
                reason=status.reason,
                public_key=view.public_key_b64,
            )
            with _lock:
                _cache[view.path] = (key, check)
                if status.verified:
                    _verified_prefix[view.path] = (len(rows), _digest(rows))
    except (SealroomError, sqlite3.Error, OSError) as exc:  # the database went away
        with _lock:
            _cache[ws.ledger_db] = (key, ChainCheck(verified=False, entries=0, reason=str(exc)))
    finally:
        done.set()


def parse_int(value: str | None, name: str, default: int, low: int, high: int) -> int:
    """A query parameter as an int in [low, high]; BadQuery (one line) otherwise."""
    if value is None or value == "":
        return default
    text = value.strip()
    if not text.isdigit() or len(text) > 12:
        raise BadQuery(f"{name} must be a whole number from {low} to {high}")
    number = int(text)
    if not low <= number <= high:
        raise BadQuery(f"{name} must be a whole number from {low} to {high}")
    return number
