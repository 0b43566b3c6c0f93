"""Every tampering of the ledger database is detected, naming the first bad sequence number."""

from __future__ import annotations

import base64
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealroom.crypto.signing import SigningKey
from sealroom.ledger import ChainBroken, Ledger
from sealroom.ledger.entries import compute_entry_hash, payload_digest, signed_message
from tests.crypto.respell import respelled

N = 6
KEY = SigningKey.generate()
COLUMNS = ("kind", "payload", "timestamp", "prev_hash", "entry_hash", "signature")

TAMPER = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def pristine() -> Iterator[Path]:
    """One honest ledger of N entries, fully checkpointed into a single file."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "ledger.db"
        with Ledger(db, KEY) as ledger:
            for i in range(N):
                ledger.append("run.started", {"run_id": f"run-{i}", "epsilon": 0.5 + i})
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        yield db


def tampered(pristine: Path, edit: Callable[[sqlite3.Connection], object]) -> ChainBroken:
    """Copy the honest ledger, apply ``edit`` directly in SQLite, return what verify() says."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "ledger.db"
        shutil.copy(pristine, db)
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("DROP TRIGGER entries_no_update")
        conn.execute("DROP TRIGGER entries_no_delete")
        edit(conn)
        conn.close()
        with Ledger(db, KEY) as ledger, pytest.raises(ChainBroken) as caught:
            ledger.verify()
    return caught.value


def row(conn: sqlite3.Connection, seq: int) -> tuple[str, ...]:
    found = conn.execute(
        "SELECT kind, payload, timestamp, prev_hash, entry_hash, signature FROM entries "
        "WHERE seq = ?",
        (seq,),
    ).fetchone()
    return tuple(found)


def put(conn: sqlite3.Connection, seq: int, values: tuple[str, ...]) -> None:
    conn.execute(
        "UPDATE entries SET kind=?, payload=?, timestamp=?, prev_hash=?, entry_hash=?, "
        "signature=? WHERE seq=?",
        (*values, seq),
    )


def test_honest_copy_verifies(pristine: Path) -> None:
    with Ledger(pristine, KEY) as ledger:
        assert ledger.verify() == N


@TAMPER
@given(
    seq=st.integers(1, N),
    column=st.sampled_from(COLUMNS),
    position=st.integers(0, 200),
    char=st.characters(min_codepoint=0x20, max_codepoint=0x7E),
)
def test_any_edited_byte_is_detected_at_its_entry(
    pristine: Path, seq: int, column: str, position: int, char: str
) -> None:
    def edit(conn: sqlite3.Connection) -> None:
        values = list(row(conn, seq))
        index = COLUMNS.index(column)
        text = values[index]
        at = position % len(text)
        new = char if text[at] != char else chr(ord(char) ^ 1)  # always a different byte
        values[index] = text[:at] + new + text[at + 1 :]
        put(conn, seq, tuple(values))

    caught = tampered(pristine, edit)
    # An edited entry_hash also breaks the link from the next entry, but this one fails first.
    assert caught.seq == seq


@pytest.mark.parametrize("seq", [1, N])
def test_a_respelled_signature_is_detected_at_its_entry(pristine: Path, seq: int) -> None:
    # same signature bytes, another base64 spelling: the stored row was still edited
    def edit(conn: sqlite3.Connection) -> None:
        values = list(row(conn, seq))
        values[-1] = respelled(values[-1])
        put(conn, seq, tuple(values))

    assert tampered(pristine, edit).seq == seq


@TAMPER
@given(seq=st.integers(1, N))
def test_a_deleted_entry_is_named(pristine: Path, seq: int) -> None:
    caught = tampered(pristine, lambda c: c.execute("DELETE FROM entries WHERE seq = ?", (seq,)))
    assert caught.seq == seq
    assert "missing" in str(caught)


@TAMPER
@given(pair=st.lists(st.integers(1, N), min_size=2, max_size=2, unique=True))
def test_two_swapped_entries_are_detected_at_the_first(pristine: Path, pair: list[int]) -> None:
    low, high = sorted(pair)

    def edit(conn: sqlite3.Connection) -> None:
        a, b = row(conn, low), row(conn, high)
        put(conn, low, b)
        put(conn, high, a)

    assert tampered(pristine, edit).seq == low


@TAMPER
@given(at=st.integers(1, N + 1), honest_hash=st.booleans())
def test_an_inserted_forged_entry_is_named(pristine: Path, at: int, honest_hash: bool) -> None:
    """A forger who links the row correctly and signs it with their own key is still caught."""
    forger = SigningKey.generate()

    def edit(conn: sqlite3.Connection) -> None:
        for seq in range(N, at - 1, -1):  # make room: shift later entries up by one
            conn.execute("UPDATE entries SET seq = seq + 1 WHERE seq = ?", (seq,))
        prev = row(conn, at - 1)[4] if at > 1 else "0" * 64
        payload = '{"run_id":"forged"}'
        stamp = "2026-01-01T00:00:00.000000Z"
        digest = payload_digest(payload)
        entry_hash = compute_entry_hash(at, "run.started", stamp, prev, digest)
        if not honest_hash:
            entry_hash = "f" * 64
        signature = base64.b64encode(forger.sign(signed_message(entry_hash))).decode()
        conn.execute(
            "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)",
            (at, "run.started", payload, stamp, prev, entry_hash, signature),
        )

    assert tampered(pristine, edit).seq == at


@TAMPER
@given(seq=st.integers(1, N), bit=st.integers(0, 511))
def test_a_changed_signature_is_detected(pristine: Path, seq: int, bit: int) -> None:
    def edit(conn: sqlite3.Connection) -> None:
        values = list(row(conn, seq))
        raw = bytearray(base64.b64decode(values[5]))
        raw[bit // 8] ^= 1 << (bit % 8)
        values[5] = base64.b64encode(bytes(raw)).decode()
        put(conn, seq, tuple(values))

    caught = tampered(pristine, edit)
    assert caught.seq == seq
    assert "signature" in str(caught)


def test_a_truncated_tail_with_a_rewound_head_is_caught_by_receipts(pristine: Path) -> None:
    """Rolling back both the last entry and the head without the ledger key leaves an unsigned
    head; the receipt the party holds shows it too."""
    with Ledger(pristine, KEY) as ledger:
        last = ledger.entries()[-1].receipt()

    def edit(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM entries WHERE seq = ?", (N,))
        prev = row(conn, N - 1)[4]
        conn.execute("UPDATE head SET seq = ?, entry_hash = ?", (N - 1, prev))

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "ledger.db"
        shutil.copy(pristine, db)
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("DROP TRIGGER entries_no_delete")
        edit(conn)
        conn.close()
        with Ledger(db, KEY) as ledger:
            with pytest.raises(ChainBroken, match="head is not signed by the ledger key"):
                ledger.verify()
            assert not ledger.contains(last)


@TAMPER
@given(seq=st.integers(0, N + 3).filter(lambda s: s != N))
def test_an_edited_head_is_detected(pristine: Path, seq: int) -> None:
    def edit(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE head SET seq = ?", (seq,))

    caught = tampered(pristine, edit)
    assert caught.seq == (seq + 1 if seq < N else N + 1)


def test_a_head_with_the_wrong_hash_is_detected(pristine: Path) -> None:
    caught = tampered(pristine, lambda c: c.execute("UPDATE head SET entry_hash = ?", ("0" * 64,)))
    assert caught.seq == N
