"""Whether an opened request is admitted, and whose budget it charges.

The checks between opening a sealed request and charging its budget, in order: contract
digest -> freshness window -> client listed + signature -> replay set -> input shape/dtype.
Every refusal is a :class:`ServeRefusal` with an HTTP status and a FIXED one-line message:
the error travels in clear (the operator and any relay see it), so it never echoes what
the sealed request held (client name, request id, shape, values).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

from sealroom.contract.inference import InferenceTerms
from sealroom.errors import SealroomError
from sealroom.serve.engine import InputMismatch, ModelEngine
from sealroom.serve.receipts import client_fingerprint
from sealroom.serve.wire import InferenceRequest, WireError, verify_client_signature

FRESHNESS_S = 60.0  # a request's issued_at must be within this of the room's clock
MAX_SEEN = 1_000_000  # request ids remembered (16 bytes each); full -> 503, never forget early
ANONYMOUS = "anonymous"


class ServeRefusal(SealroomError):
    """A refused request: HTTP ``status`` and a fixed one-line message."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class ReplayGuard:
    """Request ids seen within the freshness window; older ones are refused as stale anyway."""

    def __init__(self, window_s: float = FRESHNESS_S, max_entries: int = MAX_SEEN) -> None:
        self.window_s = window_s
        self.max_entries = max_entries
        self._seen: set[bytes] = set()
        self._expiry: list[tuple[float, bytes]] = []  # (issued_at, id), a min-heap

    def check_fresh(self, issued_at: float, now: float) -> None:
        if not math.isfinite(issued_at) or abs(now - issued_at) > self.window_s:
            raise ServeRefusal(
                400,
                f"request is stale: issued_at is not within {self.window_s:g} s of the room clock",
            )

    def remember(self, request_id: bytes, issued_at: float, now: float) -> None:
        """Refuse a request id seen before; else remember it until it would be stale."""
        while self._expiry and self._expiry[0][0] < now - self.window_s:
            self._seen.discard(heapq.heappop(self._expiry)[1])
        if request_id in self._seen:
            raise ServeRefusal(409, "request id was already used (replayed request)")
        if len(self._seen) >= self.max_entries:
            raise ServeRefusal(503, "too many recent requests to check for replays; retry later", 1)
        self._seen.add(request_id)
        heapq.heappush(self._expiry, (issued_at, request_id))


class Admission:
    """The checks of one contract's requests; ``admit`` returns the client's fingerprint."""

    def __init__(
        self,
        terms: InferenceTerms,
        contract_digest: str,
        engine: ModelEngine,
        clock: Callable[[], float],
        replays: ReplayGuard,
    ) -> None:
        self.terms = terms
        self.contract_digest = contract_digest
        self.engine = engine
        self.replays = replays
        self._clock = clock
        self._keys = {c.name: c.signing_key for c in terms.clients}
        self._fingerprints = {c.name: client_fingerprint(c.signing_key) for c in terms.clients}

    def admit(self, request: InferenceRequest) -> str:
        """Contract, freshness, client, replay and input checks; the client's fingerprint."""
        if request.contract_digest != self.contract_digest:
            raise ServeRefusal(409, "request is for another contract (contract digest differs)")
        now = self._clock()
        self.replays.check_fresh(request.issued_at, now)
        if self.terms.open:
            client = ANONYMOUS  # nobody is listed: anyone shares the one anonymous budget
        else:
            if request.client is None:
                raise ServeRefusal(
                    401, "this contract serves listed clients only; the request names none"
                )
            key = self._keys.get(request.client)
            if key is None:
                raise ServeRefusal(403, "client is not listed in the contract")
            try:
                verify_client_signature(request, key)
            except (WireError, SealroomError):
                raise ServeRefusal(401, "client signature does not verify") from None
            client = self._fingerprints[request.client]
        self.replays.remember(request.request_id, request.issued_at, now)
        try:
            self.engine.check_input(request.array, self.terms.limits.max_examples_per_request)
        except InputMismatch as exc:
            raise ServeRefusal(422, str(exc)) from None
        return client
