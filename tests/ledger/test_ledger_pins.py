"""Head pins, the signed head, and read-only copies an auditor checks with the public key."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from sealroom.crypto.signing import SigningKey
from sealroom.errors import LedgerError
from sealroom.ledger import ChainBroken, HeadPin, Ledger, LedgerView, NotInLedger, parse_pin

KEY = SigningKey.generate()


def _ledger(path: Path, n: int = 4) -> list[HeadPin]:
    with Ledger(path, KEY) as ledger:
        receipts = [ledger.append("run.started", {"i": i}) for i in range(n)]
    return [HeadPin(r.seq, r.entry_hash) for r in receipts]


def test_pins_parse_and_print_round_trip() -> None:
    pin = HeadPin(7, "ab" * 32)
    assert parse_pin(str(pin)) == pin
    for bad in ("7", "0:" + "ab" * 32, "7:" + "AB" * 32, "7:" + "ab" * 31, "-1:" + "ab" * 32):
        with pytest.raises(LedgerError, match="is not SEQ:HASH"):
            parse_pin(bad)


def test_expect_head_accepts_a_longer_ledger_and_refuses_a_shorter_or_forked_one(
    tmp_path: Path,
) -> None:
    pins = _ledger(tmp_path / "ledger.db")
    with Ledger(tmp_path / "ledger.db", KEY) as ledger:
        assert ledger.verified_head() == pins[-1]
        assert ledger.verify(expect=pins[1]) == 4
        with pytest.raises(NotInLedger, match="ledger entry 5 is not in the ledger"):
            ledger.verify(expect=HeadPin(5, "00" * 32))
        with pytest.raises(NotInLedger, match=r"ledger entry 2 in the ledger at .* has hash"):
            ledger.verify(expect=HeadPin(2, pins[2].entry_hash))
        assert ledger.check_entry(pins[2]).payload == {"i": 2}


def test_check_entry_verifies_the_chain_up_to_the_entry(tmp_path: Path) -> None:
    pins = _ledger(tmp_path / "ledger.db")
    conn = sqlite3.connect(tmp_path / "ledger.db")
    conn.execute("DROP TRIGGER entries_no_update")
    conn.execute("UPDATE entries SET payload = '{\"i\":9}' WHERE seq = 1")
    conn.commit()
    conn.close()
    with Ledger(tmp_path / "ledger.db", KEY) as ledger, pytest.raises(ChainBroken) as caught:
        ledger.check_entry(pins[2])
    assert caught.value.seq == 1


def test_a_read_only_copy_is_checked_with_the_public_key_alone(tmp_path: Path) -> None:
    pins = _ledger(tmp_path / "ledger.db")
    copy = tmp_path / "copy.db"
    shutil.copy(tmp_path / "ledger.db", copy)
    before = copy.read_bytes()
    with LedgerView.open_copy(copy, KEY.public_b64) as view:
        assert view.verified_head() == pins[-1]
        assert view.check_entry(pins[0]).seq == 1
    assert copy.read_bytes() == before
    with (
        LedgerView.open_copy(copy, SigningKey.generate().public_b64) as view,
        pytest.raises(ChainBroken, match="has a signature that does not verify"),
    ):
        view.verify()
    with pytest.raises(LedgerError, match="no ledger database at"):
        LedgerView.open_copy(tmp_path / "absent.db", KEY.public_b64)
    assert not (tmp_path / "absent.db").exists()


def _make_legacy(db: Path) -> None:
    """What a ledger written before migration 3 looks like: an unsigned head, schema 2."""
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE head DROP COLUMN signature")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()


def test_a_legacy_head_is_signed_by_the_key_holder_that_upgrades_it(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    pins = _ledger(db)
    _make_legacy(db)
    copy = tmp_path / "legacy-copy.db"
    shutil.copy(db, copy)
    with (
        LedgerView.open_copy(copy, KEY.public_b64) as view,
        pytest.raises(ChainBroken, match="head is not signed"),
    ):
        view.verify()  # an old copy is read, and its unsigned head named
    with Ledger(db, KEY) as ledger:
        assert ledger.verified_head() == pins[-1]


def test_a_head_moved_back_without_the_key_is_caught(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    pins = _ledger(db)
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER entries_no_delete")
    conn.execute("DELETE FROM entries WHERE seq = 4")
    # Re-using an entry's signature as the head's does not work either (separate domains).
    signature = conn.execute("SELECT signature FROM entries WHERE seq = 3").fetchone()[0]
    conn.execute(
        "UPDATE head SET seq = 3, entry_hash = ?, signature = ?", (pins[2].entry_hash, signature)
    )
    conn.commit()
    conn.close()
    with Ledger(db, KEY) as ledger, pytest.raises(ChainBroken, match="head is not signed"):
        ledger.verify()
