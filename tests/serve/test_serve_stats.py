"""Stats are aggregate: counts and fixed-bucket histograms, nothing per request."""

from __future__ import annotations

import json

from sealroom.serve.stats import LATENCY_BUCKETS_MS, Histogram, ServeStats


def test_histogram_buckets_are_fixed_and_counted() -> None:
    hist = Histogram()
    for ms in (0.05, 0.3, 3.0, 3.0, 20000.0):
        hist.add(ms)
    snap = hist.snapshot()
    assert list(snap["buckets"]) == [f"le_{b:g}" for b in LATENCY_BUCKETS_MS] + ["inf"]
    assert snap["buckets"]["le_0.1"] == 1
    assert snap["buckets"]["le_0.5"] == 1
    assert snap["buckets"]["le_5"] == 2
    assert snap["buckets"]["inf"] == 1
    assert snap["count"] == 5


def test_snapshot_holds_only_aggregates() -> None:
    stats = ServeStats()
    stats.request_done(200, 0.004)
    stats.request_done(200, 0.006)
    stats.request_done(429, 0.001)
    stats.served(3)
    stats.batch(requests=2, examples=3)
    stats.stage("model", 0.002)
    snap = stats.snapshot()
    assert snap["requests"] == {"200": 2, "429": 1}
    assert snap["examples_served"] == 3
    assert snap["batches"] == 1 and snap["mean_batch_examples"] == 3.0
    assert snap["latency_ms"]["count"] == 3
    assert snap["stages_ms"]["model"]["count"] == 1
    json.dumps(snap)
