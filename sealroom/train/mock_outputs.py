"""Outputs of a run on mock data, marked so that nobody mistakes them for results.

``metrics.json`` gains ``"mock": true`` and a ``"mock_note"``; ``training_log.txt`` opens
with a MOCK DATA line. The marking wraps the output sink, so every writer of outputs
(:func:`sealroom.train.run.run_pipeline`, the private run's aggregate filter) is covered
without knowing about mocks.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sealroom.train.run import OutputSink

MOCK_NOTE = (
    "MOCK DATA: trained and evaluated on random records drawn from the data card; "
    "these numbers say nothing about the real data"
)


def mark_output(name: str, data: bytes) -> bytes:
    """The output ``name`` with the mock marking (other outputs unchanged)."""
    if name == "metrics.json":
        report = json.loads(data)
        if isinstance(report, dict):
            report.update({"mock": True, "mock_note": MOCK_NOTE})
            return json.dumps(report, indent=2, sort_keys=True).encode()
    if name == "training_log.txt":
        return f"{MOCK_NOTE}\n".encode() + data
    return data


def mark_outputs(outputs: dict[str, bytes]) -> dict[str, bytes]:
    """Every output marked (what a run's outcome reports)."""
    return {name: mark_output(name, data) for name, data in outputs.items()}


class MockMarkingSink:
    """Passes each output to ``inner``, marked as coming from mock data."""

    def __init__(self, inner: OutputSink) -> None:
        self.inner = inner

    def write(self, name: str, data: bytes) -> None:
        self.inner.write(name, mark_output(name, data))
