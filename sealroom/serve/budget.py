"""Per-client query budgets, charged from leases committed before they are spent.

A budget counts EXAMPLES answered per client fingerprint over the contract's life (a
model-extraction defence: the contract caps how much of the model any one client can
sample). A request for n examples is charged before it reaches the model and never
refunded (a timed-out or failed request still cost the room a decryption and a queue slot,
and a refund path is a way to query for free).

Crash safety: the room first commits "client C is charged up to X" to the ledger (through
the :class:`~sealroom.serve.commit.Committer`, which blocks until the operator recorded it)
and only then serves requests within X. A restart reloads the committed totals, so a crash
can over-charge a client by at most one unused lease and can never under-charge it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from sealroom.errors import SealroomError

DEFAULT_LEASE = 256  # examples per lease; at most this many are lost to a crash
LEASE_FRACTION = 20  # ... and at most 1/20 of the budget


def charged_totals(payloads: Iterable[Mapping[str, Any]], contract_id: str) -> dict[str, int]:
    """Totals to restart from: per client, the highest ``charged`` any committed
    ``inference.receipts`` payload of ``contract_id`` names (totals are cumulative, and
    several instances may have served the contract one after another)."""
    totals: dict[str, int] = {}
    for payload in payloads:
        if payload.get("contract_id") != contract_id:
            continue
        for client, total in (payload.get("charged") or {}).items():
            if isinstance(total, int) and not isinstance(total, bool) and total >= 0:
                totals[client] = max(total, totals.get(client, 0))
    return totals


class OverBudget(SealroomError):
    """The client's query budget cannot cover this request; nothing was charged."""


class LeaseSink(Protocol):
    """Where totals go: ``lease`` commits before returning, ``note`` rides with the next flush."""

    async def lease(self, client: str, total: int) -> None: ...

    def note(self, client: str, total: int) -> None: ...


class QueryBudget:
    """Examples charged per client; ``limit`` None counts without refusing (no leases)."""

    def __init__(
        self,
        limit: int | None,
        sink: LeaseSink,
        charged: Mapping[str, int] | None = None,
        lease_size: int | None = None,
    ) -> None:
        if limit is not None and limit < 1:
            raise ValueError("a query budget is at least 1 example")
        self.limit = limit
        self._sink = sink
        start = {client: int(total) for client, total in (charged or {}).items()}
        if any(total < 0 for total in start.values()):
            raise ValueError("charged totals are never negative")
        self._used: dict[str, int] = dict(start)  # charged to requests
        self._leased: dict[str, int] = dict(start)  # committed: may be served up to here
        if lease_size is None:
            lease_size = (
                DEFAULT_LEASE if limit is None else min(DEFAULT_LEASE, limit // LEASE_FRACTION)
            )
        self.lease_size = max(1, lease_size)
        self._lock = asyncio.Lock()  # one lease commit at a time

    def used(self, client: str) -> int:
        return self._used.get(client, 0)

    def leased(self, client: str) -> int:
        return self._leased.get(client, 0)

    async def charge(self, client: str, examples: int) -> None:
        """Charge ``examples`` to ``client`` or raise OverBudget / the sink's error."""
        if examples < 1:
            raise ValueError("a request charges at least one example")
        if self.limit is None:
            total = self.used(client) + examples
            self._used[client] = total
            self._sink.note(client, total)
            return
        if self._fits_lease(client, examples):
            self._used[client] = self.used(client) + examples
            return
        async with self._lock:
            if not self._fits_lease(client, examples):  # another request may have leased
                used = self.used(client)
                if used + examples > self.limit:
                    raise OverBudget(
                        f"query budget spent: {used} of {self.limit} examples charged, "
                        f"this request needs {examples}"
                    )
                lease = min(self.limit, used + max(examples, self.lease_size))
                await self._sink.lease(client, lease)  # committed before anything is served
                self._leased[client] = lease
            self._used[client] = self.used(client) + examples

    def _fits_lease(self, client: str, examples: int) -> bool:
        total = self.used(client) + examples
        return total <= self.leased(client) and (self.limit is None or total <= self.limit)
