"""Commit receipt batches and charged totals to the ledger, in few entries.

Every model batch yields one signed Merkle root (:class:`SignedBatch`). The committer
gathers them and flushes ONE ``inference.receipts`` payload (roots and cumulative charged
totals) through ``sink`` at most every ``interval_s`` or every ``max_batches`` roots, and
at once when the budget needs a lease. ``sink`` is synchronous and may block (in the room
it is a channel call to the operator, who appends the entry to the ledger and returns its
receipt), so it always runs in a worker thread, one flush at a time.

If the sink fails the roots stay pending and the next flush retries them; beyond
``max_pending`` roots the service stops answering (:attr:`backlogged`): a room that cannot
commit its receipts fails closed instead of piling up promises it cannot keep.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from sealroom.errors import SealroomError
from sealroom.ledger.entries import Receipt
from sealroom.serve.receipts import SignedBatch, commitment_payload
from sealroom.serve.stats import ServeStats

Sink = Callable[[dict[str, Any]], Receipt | None]
KEEP_RECEIPTS = 100_000  # roots whose ledger receipt GET /v1/commitments/{root} can answer


class CommitFailed(SealroomError):
    """The ledger entry could not be written; fixed message (the sink's error is not echoed)."""


class Committer:
    """Pending roots and charged totals, flushed in batches; root -> ledger receipt, bounded."""

    def __init__(
        self,
        sink: Sink,
        *,
        contract_id: str,
        instance: str,
        room_key: str,
        charged: Mapping[str, int] | None = None,
        interval_s: float = 0.5,
        max_batches: int = 256,
        max_pending: int = 256 * 64,
        keep: int = KEEP_RECEIPTS,
        stats: ServeStats | None = None,
    ) -> None:
        self._sink = sink
        self.contract_id = contract_id
        self.instance = instance
        self.room_key = room_key
        self.interval_s = interval_s
        self.max_batches = max_batches
        self.max_pending = max_pending
        self._keep = keep
        self._stats = stats or ServeStats()
        self._lock = threading.Lock()  # pending roots: the batch worker adds them
        self._pending: list[SignedBatch] = []
        self._charged: dict[str, int] = dict(charged or {})
        self._committed_charged: dict[str, int] = dict(self._charged)
        # root -> (ledger receipt, payload of that entry); one payload shared by its roots
        self._receipts: OrderedDict[str, tuple[Receipt, dict[str, Any]]] = OrderedDict()
        self._flush_lock: asyncio.Lock | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------- inputs

    def add(self, batch: SignedBatch) -> None:
        """Queue one signed root (any thread); a full flush wakes the flusher early."""
        with self._lock:
            self._pending.append(batch)
            full = len(self._pending) >= self.max_batches
        if full and self._loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):  # loop closed: close() flushes
                self._loop.call_soon_threadsafe(self._wake.set)

    def note(self, client: str, total: int) -> None:
        """A charged total that rides with the next flush (unlimited budgets)."""
        with self._lock:
            self._charged[client] = max(total, self._charged.get(client, 0))

    async def lease(self, client: str, total: int) -> None:
        """Commit ``client`` charged up to ``total`` now; returns only once it is recorded."""
        self.note(client, total)
        await self.flush(force=True)

    # ----------------------------------------------------------------- state

    @property
    def backlogged(self) -> bool:
        with self._lock:
            return len(self._pending) >= self.max_pending

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def charged(self) -> dict[str, int]:
        with self._lock:
            return dict(self._charged)

    def receipt_for(self, root_hex: str) -> tuple[Receipt, dict[str, Any]] | None:
        with self._lock:
            return self._receipts.get(root_hex)

    # ----------------------------------------------------------------- flushing

    def start(self) -> None:
        """Start the periodic flusher on the running loop (idempotent)."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._flush_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="sealroom-committer")

    async def close(self) -> None:
        """Stop the flusher and flush what is pending (errors counted, not raised)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        except CommitFailed:
            self._stats.commit_failed()

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()
            try:
                await self.flush()
            except CommitFailed:
                self._stats.commit_failed()

    async def flush(self, force: bool = False) -> None:
        """Write pending roots and changed totals, ``max_batches`` roots per entry.

        Shielded: a cancelled caller (a client gone, the flusher stopping) leaves the write
        to finish, so a root is never written twice or dropped half-way.
        """
        await asyncio.shield(self._flush(force))

    async def _flush(self, force: bool) -> None:
        if self._flush_lock is None:
            self._flush_lock = asyncio.Lock()
        async with self._flush_lock:
            while True:
                with self._lock:
                    batches = self._pending[: self.max_batches]
                    charged = dict(self._charged)
                changed = charged != self._committed_charged
                if not batches and not changed and not force:
                    return
                payload = commitment_payload(
                    self.contract_id, self.instance, self.room_key, batches, charged
                )
                try:
                    receipt = await asyncio.to_thread(self._sink, payload)
                except Exception:
                    raise CommitFailed(
                        "could not commit inference receipts to the ledger"
                    ) from None
                force = False
                with self._lock:
                    del self._pending[: len(batches)]
                    self._committed_charged = charged
                    if receipt is not None:
                        for batch in batches:
                            self._receipts[batch.root] = (receipt, payload)
                        while len(self._receipts) > self._keep:
                            self._receipts.popitem(last=False)
                    more = bool(self._pending) and len(self._pending) >= self.max_batches
                if not more:
                    return
