"""One SQLite database as sealroom uses it: WAL, a busy timeout, numbered migrations and
serialised transactions. The ledger, the key service and the budget book all sit on it.

Writes run under ``BEGIN IMMEDIATE``: a read-then-write (the ledger's head, a nonce, a
budget) happens under one write lock, so concurrent processes queue up instead of racing.
``PRAGMA user_version`` records the last migration applied; add one by appending to a
store's ``MIGRATIONS`` and never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sealroom.errors import SealroomError

BUSY_TIMEOUT_S = 60.0
Migrations = Sequence[Sequence[str]]
T = TypeVar("T")


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, migrations: Migrations) -> int:
    """Bring the schema up to date; safe when several processes open a new database at once."""
    if schema_version(conn) == len(migrations):
        return len(migrations)
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(conn)  # re-read under the write lock
        for number, statements in enumerate(migrations[current:], start=current + 1):
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number:d}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(migrations)


def when_unlocked(open_: Callable[[], T]) -> T:
    """Retry opening while another process holds the lock a new database's setup needs.

    Switching a fresh database to WAL takes an exclusive lock that SQLite does not wait
    for (no busy handler), so processes opening a new workspace at once see "locked".
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            return open_()
        except (sqlite3.OperationalError, SealroomError) as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class SqliteStore:
    """A connection shared by the threads of one process, one transaction at a time."""

    def __init__(
        self,
        path: Path,
        migrations: Migrations,
        error: type[SealroomError],
        what: str,
        private: bool = False,
        readonly: bool = False,
    ) -> None:
        self.path = path
        self._error = error
        self._what = what
        self._lock = threading.Lock()
        self.migrated_from = len(migrations)  # the schema version found on opening
        if readonly:
            self._conn = self._connect_readonly(migrations)
            return
        try:
            self._conn = when_unlocked(lambda: self._connect(migrations))
        except sqlite3.DatabaseError as exc:
            raise error(f"cannot open {what} {path}: {exc}") from None
        if private:
            path.chmod(0o600)

    def _connect(self, migrations: Migrations) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            self.migrated_from = schema_version(conn)
            migrate(conn, migrations)
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect_readonly(self, migrations: Migrations) -> sqlite3.Connection:
        """Open an existing database without writing to it (an auditor's copy): no migration,
        no journal switch, and no new file when the path is wrong."""
        if not self.path.is_file():
            raise self._error(f"no {self._what} at {self.path}")
        uri = "file:" + urllib.parse.quote(str(self.path.resolve())) + "?mode=ro"
        try:
            conn = sqlite3.connect(
                uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            version = schema_version(conn)
        except sqlite3.DatabaseError as exc:
            raise self._error(f"cannot open {self._what} {self.path}: {exc}") from None
        if not 0 < version <= len(migrations):
            conn.close()
            raise self._error(
                f"{self.path}: not a {self._what} this version of sealroom reads "
                f"(schema version {version})"
            )
        return conn

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` for read-then-write, ``DEFERRED`` for consistent reads."""
        if mode not in ("IMMEDIATE", "DEFERRED", "EXCLUSIVE"):
            raise ValueError(f"unknown transaction mode {mode!r}")
        with self._lock:
            try:
                self._conn.execute(f"BEGIN {mode}")
            except sqlite3.DatabaseError as exc:
                raise self._error(f"{self._what} {self.path} is unavailable: {exc}") from None
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
