"""verify_links: the chain by its hashes and the signed head, one signature in all. Every
change to an entry's content is caught (the entries' own signatures are not its business)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from sealroom.crypto.signing import SigningKey
from sealroom.ledger import ChainBroken, Ledger
from sealroom.ledger.entries import compute_entry_hash, payload_digest

N = 5
KEY = SigningKey.generate()


def _ledger(tmp_path: Path) -> Path:
    db = tmp_path / "ledger.db"
    with Ledger(db, KEY) as ledger:
        for i in range(N):
            ledger.append("inference.receipts", {"contract_id": "c", "n": i})
    return db


def _edit(db: Path, change: Callable[[sqlite3.Connection], object]) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TRIGGER entries_no_update")
    conn.execute("DROP TRIGGER entries_no_delete")
    change(conn)
    conn.close()


def _links(db: Path) -> int:
    with Ledger(db, KEY) as ledger:
        return ledger.verify_links()


def test_an_honest_ledger_links_as_it_verifies(tmp_path: Path) -> None:
    db = _ledger(tmp_path)
    with Ledger(db, KEY) as ledger:
        assert ledger.verify_links() == ledger.verify() == N
    assert _links(tmp_path / "empty.db") == 0


@pytest.mark.parametrize("seq", range(1, N + 1))
def test_an_edited_payload_is_named(tmp_path: Path, seq: int) -> None:
    db = _ledger(tmp_path)
    _edit(db, lambda c: c.execute("UPDATE entries SET payload = '{}' WHERE seq = ?", (seq,)))
    with pytest.raises(ChainBroken) as caught:
        _links(db)
    assert caught.value.seq == seq


@pytest.mark.parametrize("seq", range(1, N + 1))
def test_an_edit_with_its_hash_recomputed_breaks_the_next_link(tmp_path: Path, seq: int) -> None:
    db = _ledger(tmp_path)

    def forge(conn: sqlite3.Connection) -> None:
        kind, ts, prev = conn.execute(
            "SELECT kind, timestamp, prev_hash FROM entries WHERE seq = ?", (seq,)
        ).fetchone()
        text = '{"contract_id":"c","n":99}'
        new = compute_entry_hash(seq, kind, ts, prev, payload_digest(text))
        conn.execute(
            "UPDATE entries SET payload = ?, entry_hash = ? WHERE seq = ?", (text, new, seq)
        )

    _edit(db, forge)
    with pytest.raises(ChainBroken) as caught:
        _links(db)
    assert caught.value.seq in (seq, seq + 1)  # the next entry's link, or the signed head


def test_a_deleted_entry_and_a_rewound_head_are_caught(tmp_path: Path) -> None:
    db = _ledger(tmp_path)
    _edit(db, lambda c: c.execute("DELETE FROM entries WHERE seq = 2"))
    with pytest.raises(ChainBroken, match="missing"):
        _links(db)
    (tmp_path / "again").mkdir()
    db = _ledger(tmp_path / "again")
    prev = []

    def rewind(conn: sqlite3.Connection) -> None:
        prev.append(conn.execute("SELECT prev_hash FROM entries WHERE seq = ?", (N,)).fetchone())
        conn.execute("DELETE FROM entries WHERE seq = ?", (N,))
        conn.execute("UPDATE head SET seq = ?, entry_hash = ?", (N - 1, prev[0][0]))

    _edit(db, rewind)
    with pytest.raises(ChainBroken, match="head is not signed"):
        _links(db)
