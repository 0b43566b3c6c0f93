"""Aggregate serving statistics for operators and the dashboard: counts and histograms only.

Nothing here is per request or per client: no request id, client name, input or output is
ever stored, so ``GET /v1/stats`` (behind the operator's token) cannot leak a query.
Stage histograms (``open``, ``checks``, ``budget``, ``queue``, ``model``, ``receipt``,
``seal``, ``total``; ``http`` in the app) let a benchmark break a request's time down.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from typing import Any

# Upper bounds in milliseconds; one more bucket counts everything slower.
LATENCY_BUCKETS_MS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
STAGES = ("http", "open", "checks", "budget", "queue", "model", "receipt", "seal", "total")


class Histogram:
    """Fixed buckets, a count and a sum (for the mean); not thread-safe on its own."""

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS_MS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0
        self.n = 0

    def add(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.n += 1

    def snapshot(self) -> dict[str, Any]:
        labels = [f"le_{b:g}" for b in self.bounds] + ["inf"]
        return {
            "count": self.n,
            "mean_ms": round(self.total / self.n, 4) if self.n else None,
            "buckets": dict(zip(labels, self.counts, strict=True)),
        }


class ServeStats:
    """Counters shared by the event loop, the batch worker and the handlers (one lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status: Counter[int] = Counter()
        self._examples = 0
        self._batches = 0
        self._batched_examples = 0
        self._batch_requests = 0
        self._latency = Histogram()
        self._stages = {stage: Histogram() for stage in STAGES}
        self._commit_failures = 0
        self._queue_depth = 0

    def request_done(self, status: int, seconds: float) -> None:
        with self._lock:
            self._status[status] += 1
            self._latency.add(seconds * 1000.0)

    def stage(self, name: str, seconds: float) -> None:
        with self._lock:
            self._stages[name].add(seconds * 1000.0)

    def served(self, examples: int) -> None:
        with self._lock:
            self._examples += examples

    def batch(self, requests: int, examples: int) -> None:
        with self._lock:
            self._batches += 1
            self._batch_requests += requests
            self._batched_examples += examples

    def queue_depth(self, examples: int) -> None:
        with self._lock:
            self._queue_depth = examples

    def commit_failed(self) -> None:
        with self._lock:
            self._commit_failures += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": {str(k): v for k, v in sorted(self._status.items())},
                "examples_served": self._examples,
                "batches": self._batches,
                "mean_batch_examples": (
                    round(self._batched_examples / self._batches, 3) if self._batches else None
                ),
                "mean_batch_requests": (
                    round(self._batch_requests / self._batches, 3) if self._batches else None
                ),
                "queue_depth_examples": self._queue_depth,
                "commit_failures": self._commit_failures,
                "latency_ms": self._latency.snapshot(),
                "stages_ms": {name: h.snapshot() for name, h in self._stages.items()},
            }
