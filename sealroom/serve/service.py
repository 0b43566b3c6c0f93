"""The inference request path, in the order a request is checked.

open (HPKE) -> contract digest -> freshness window -> client listed + signature -> replay
set -> input shape/dtype -> receipt backlog -> query budget (charged before inference) ->
dynamic batch (model, output policy, one receipt per request, one signed root per batch)
-> response sealed under the request's own HPKE context.

Every refusal is a :class:`ServeRefusal` with an HTTP status and a FIXED one-line message:
the error travels in clear (the operator and any relay see it), so it never echoes what
the sealed request held (client name, request id, shape, values). Nothing here logs.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sealroom.contract.inference import InferenceTerms
from sealroom.contract.signed import SignedContract
from sealroom.crypto.hpke_context import RoomHpkeKey
from sealroom.crypto.signing import SigningKey
from sealroom.errors import SealroomError
from sealroom.ledger.entries import Receipt
from sealroom.serve.attestation import RoomAttestation
from sealroom.serve.batching import BatchFailed, DynamicBatcher, QueueFull, RequestTimedOut
from sealroom.serve.budget import OverBudget, QueryBudget
from sealroom.serve.commit import CommitFailed, Committer, Sink
from sealroom.serve.engine import EngineFailure, InputMismatch, ModelEngine
from sealroom.serve.output_policy import apply_output_policy
from sealroom.serve.receipts import (
    BatchSigner,
    InferenceReceipt,
    ReceiptProof,
    client_fingerprint,
    outputs_sha256,
)
from sealroom.serve.stats import ServeStats
from sealroom.serve.wire import WireError, open_request, verify_client_signature

FRESHNESS_S = 60.0  # a request's issued_at must be within this of the room's clock
MAX_SEEN = 1_000_000  # request ids remembered (16 bytes each); full -> 503, never forget early
ANONYMOUS = "anonymous"
MAX_ATTESTING = 4  # GET /v1/attestation calls waiting on the operator at once; beyond: 503


class ServeRefusal(SealroomError):
    """A refused request: HTTP ``status`` and a fixed one-line message."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


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


@dataclass(frozen=True)
class ServingRoom:
    """What the room hands the service: its attested identity and keys."""

    instance: str  # serving instance id, "srv-YYYYmmddTHHMMSS-hex6"
    room_key: SigningKey  # the attested Ed25519 key: signs one Merkle root per batch
    hpke_key: RoomHpkeKey  # the attested HPKE key: requests are sealed to it
    measurement: str
    insecure: bool
    attestation: RoomAttestation  # the startup attestation (ledger: inference.started)


@dataclass(frozen=True)
class _Job:
    array: np.ndarray
    request_sha256: str
    client: str


@dataclass
class _Flight:
    announced: bool = True


@dataclass(frozen=True)
class _Answer:
    outputs: list[Any]
    proof: ReceiptProof


class InferenceService:
    """One served model under one inference contract; ``infer`` is the whole request path."""

    def __init__(
        self,
        *,
        signed: SignedContract,
        model_digest: str,
        engine: ModelEngine,
        room: ServingRoom,
        sink: Sink,
        attest: Callable[[bytes], RoomAttestation],
        charged: Mapping[str, int] | None = None,
        clock: Callable[[], float] = time.time,
        freshness_s: float = FRESHNESS_S,
        lease_size: int | None = None,
        commit_interval_s: float = 0.5,
    ) -> None:
        terms = signed.contract.inference
        if terms is None:
            raise SealroomError(f"contract {signed.id} has no inference terms: nothing to serve")
        self.terms: InferenceTerms = terms
        self.signed = signed
        self.contract_id = signed.id
        self.contract_digest = signed.digest
        self.model_digest = model_digest
        self.engine = engine
        self.room = room
        # The sink and the attester both call the operator; in the room that is ONE pipe,
        # so calls are serialised here whatever thread they run in.
        self._operator = threading.Lock()
        self._attest = attest
        self._sink = sink
        self._attesting = 0  # attestations in flight (each waits on the operator)
        self._clock = clock
        self.stats = ServeStats()
        self.replays = ReplayGuard(freshness_s)
        self._keys = {c.name: c.signing_key for c in terms.clients}
        self._fingerprints = {c.name: client_fingerprint(c.signing_key) for c in terms.clients}
        self.committer = Committer(
            self._call_sink,
            contract_id=self.contract_id,
            instance=room.instance,
            room_key=room.room_key.public_b64,
            charged=charged,
            interval_s=commit_interval_s,
            stats=self.stats,
        )
        self.budget = QueryBudget(terms.query_budget, self.committer, charged, lease_size)
        limits = terms.limits
        self.batcher: DynamicBatcher[_Job, _Answer] = DynamicBatcher(
            self._process,
            max_batch_size=limits.max_batch_size,
            max_wait_ms=limits.max_wait_ms,
            queue_size=limits.queue_size,
            timeout_s=limits.request_timeout_s,
            stats=self.stats,
            adaptive=True,
        )
        self._signer = BatchSigner(room.room_key, room.instance)
        self._sequence = 0  # the batch worker alone advances it

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Start the batch worker and the committer on the running loop (idempotent)."""
        self.batcher.start()
        self.committer.start()

    async def stop(self) -> None:
        """Refuse what is queued, stop the worker, flush the last receipts."""
        await asyncio.to_thread(self.batcher.stop)
        await self.committer.close()

    # ----------------------------------------------------------------- endpoints

    async def attestation(self, nonce: bytes) -> RoomAttestation:
        """A fresh attestation for ``nonce`` (the attester may block: run off the loop)."""
        if self._attesting >= MAX_ATTESTING:
            raise ServeRefusal(503, "too many attestations in progress; retry later", 1)
        self._attesting += 1
        try:
            return await asyncio.to_thread(self._call_attest, nonce)
        except Exception:
            raise ServeRefusal(503, "the room cannot attest right now") from None
        finally:
            self._attesting -= 1

    def _call_attest(self, nonce: bytes) -> RoomAttestation:
        with self._operator:
            return self._attest(nonce)

    def _call_sink(self, payload: dict[str, Any]) -> Receipt | None:
        with self._operator:
            return self._sink(payload)

    def commitment(self, root_hex: str) -> tuple[Receipt, dict[str, Any]] | None:
        """The ledger receipt and payload of the entry that lists ``root_hex``, if kept."""
        return self.committer.receipt_for(root_hex)

    async def infer(self, body: bytes) -> bytes:
        """The sealed response to a sealed request, or ServeRefusal (status, fixed line)."""
        started = time.perf_counter()
        status = 500
        try:
            sealed = await self._infer(body, started)
            status = 200
            return sealed
        except ServeRefusal as refusal:
            status = refusal.status
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away (nginx's code): counted, not an error of ours
            raise
        finally:
            self.stats.request_done(status, time.perf_counter() - started)

    async def _infer(self, body: bytes, started: float) -> bytes:
        await self.start()
        self.batcher.announce()  # a batch being filled waits for this one (up to max_wait)
        flight = _Flight()
        try:
            return await self._serve(body, started, flight)
        finally:
            if flight.announced:  # refused before it reached the batcher
                self.batcher.withdraw()

    async def _serve(self, body: bytes, started: float, flight: _Flight) -> bytes:
        try:
            request, sealer = open_request(self.room.hpke_key, body)
        except WireError:
            raise ServeRefusal(
                400, "sealed request cannot be opened (malformed, tampered or not for this room)"
            ) from None
        request_sha256 = hashlib.sha256(body).hexdigest()
        opened = time.perf_counter()
        self.stats.stage("open", opened - started)
        client = self._check(request)
        n = int(request.array.shape[0]) if request.array.ndim else 0
        checked = time.perf_counter()
        self.stats.stage("checks", checked - opened)
        try:  # a lease waits on the operator: bound it like the rest of the request
            async with asyncio.timeout(self.terms.limits.request_timeout_s):
                await self._charge(client, n)
        except TimeoutError:
            raise ServeRefusal(504, "the query budget could not be charged in time") from None
        self.stats.stage("budget", time.perf_counter() - checked)
        answer = await self._batch(_Job(request.array, request_sha256, client), n, flight)
        sealing = time.perf_counter()
        plaintext = canonical_json(
            {
                "outputs": answer.outputs,
                "receipt": answer.proof.model_dump(
                    mode="json", exclude={"ledger", "ledger_payload"}
                ),
            }
        )
        sealed = sealer.seal(plaintext)
        done = time.perf_counter()
        self.stats.stage("seal", done - sealing)
        self.stats.stage("total", done - started)
        self.stats.served(n)
        return sealed

    def _check(self, request: Any) -> str:
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

    async def _charge(self, client: str, n: int) -> None:
        if self.committer.backlogged:
            raise ServeRefusal(503, "inference receipts are not being committed; retry later", 5)
        try:  # a full queue refuses before the budget is charged (best effort: no lock held)
            self.batcher.check_room(n)
        except QueueFull as exc:
            raise ServeRefusal(503, str(exc), exc.retry_after) from None
        try:
            await self.budget.charge(client, n)
        except OverBudget as exc:
            raise ServeRefusal(429, str(exc)) from None
        except CommitFailed:
            raise ServeRefusal(
                503, "the query budget lease could not be committed; retry later", 5
            ) from None

    async def _batch(self, job: _Job, n: int, flight: _Flight) -> _Answer:
        flight.announced = False  # submit withdraws the announcement as it queues the job
        try:
            return await self.batcher.submit(job, n, announced=True)
        except QueueFull as exc:
            raise ServeRefusal(503, str(exc), exc.retry_after) from None
        except RequestTimedOut as exc:
            raise ServeRefusal(504, str(exc)) from None
        except (BatchFailed, EngineFailure) as exc:
            raise ServeRefusal(500, str(exc)) from None
        except SealroomError:
            raise ServeRefusal(503, "the inference service is stopping") from None

    # ----------------------------------------------------------------- batch worker

    def _process(self, jobs: list[_Job]) -> list[_Answer | BaseException]:
        """Runs in the batch worker: model, output policy, receipts, ONE signature."""
        started = time.perf_counter()
        batch = np.concatenate([job.array for job in jobs])
        size = self.terms.limits.max_batch_size
        logits = np.concatenate(
            [self.engine.run(batch[i : i + size]) for i in range(0, len(batch), size)]
        )
        ran = time.perf_counter()
        results: list[_Answer | BaseException] = []
        answered: list[tuple[int, list[Any]]] = []
        offset = 0
        for position, job in enumerate(jobs):
            count = len(job.array)
            try:
                outputs = apply_output_policy(self.terms.output, logits[offset : offset + count])
                answered.append((position, outputs))
                results.append(EngineFailure("unanswered"))  # replaced below
            except EngineFailure as exc:
                results.append(exc)
            offset += count
        receipts = [self._receipt(jobs[position], outputs) for position, outputs in answered]
        if receipts:
            signed = self._signer.sign(receipts)
            self.committer.add(signed[0][2])
            for (position, outputs), receipt, (index, proof, signed_batch) in zip(
                answered, receipts, signed, strict=True
            ):
                results[position] = _Answer(
                    outputs,
                    ReceiptProof(
                        receipt=receipt,
                        index=index,
                        proof=proof,
                        batch=signed_batch,
                        attestation=self.room.attestation,
                        ledger=None,
                    ),
                )
        done = time.perf_counter()
        for _ in jobs:
            self.stats.stage("model", ran - started)
            self.stats.stage("receipt", done - ran)
        return results

    def _receipt(self, job: _Job, outputs: list[Any]) -> InferenceReceipt:
        receipt = InferenceReceipt(
            version=1,
            request_sha256=job.request_sha256,
            response_sha256=outputs_sha256(outputs),
            model_digest=self.model_digest,
            measurement=self.room.measurement,
            contract_id=self.contract_id,
            contract_digest=self.contract_digest,
            client=job.client,
            sequence=self._sequence,
            issued_at=self._clock(),
            instance=self.room.instance,
            insecure=self.room.insecure,
        )
        self._sequence += 1
        return receipt
