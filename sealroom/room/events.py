"""What the room shows the operator: JSON lines of progress and fixed log text, never data.

The room process writes one ``RoomEvent`` per line on its stdout (beside its channel calls,
see channel.py); the operator parses them and drives its terminal. Only stage names, fixed
log lines, counters and, at the end, the run id or the failure category travel this way.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TextIO

EventType = Literal["stage", "log", "epoch", "batch", "done", "failed"]

STAGES = {
    "contract": "Verifying the contract (signatures, ledger receipt, in force)",
    "policy": "Checking the pipeline against the contract",
    "budget": "Reserving the privacy budget",
    "attest": "Attesting the room",
    "keys": "Requesting data keys and decrypting in memory",
    "train": "Training and evaluating",
    "release": "Filtering and sealing outputs to the consumer",
    "receipt": "Writing the run receipt to the ledger",
}


@dataclass(frozen=True)
class RoomEvent:
    """One line on the room's stdout."""

    type: EventType
    stage: str = ""
    message: str = ""
    level: str = "info"
    epoch: int = 0
    epochs: int = 0
    batch: int = 0
    batches: int = 0
    run_id: str = ""
    facts: dict[str, Any] = field(default_factory=dict)

    def to_line(self) -> str:
        data = {k: v for k, v in asdict(self).items() if v not in ("", 0, {}) or k == "type"}
        return json.dumps(data, sort_keys=True) + "\n"

    @classmethod
    def from_line(cls, line: str) -> RoomEvent | None:
        """The event on ``line``, or None for anything that is not one (ignored, not shown)."""
        try:
            data = json.loads(line)
            return cls(**data) if isinstance(data, dict) else None
        except (ValueError, TypeError):
            return None


class EventWriter:
    """Writes events to the room's private copy of stdout, flushing each line."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, event: RoomEvent) -> None:
        self.write_line(event.to_line())

    def write_line(self, line: str) -> None:
        """One whole line (events and channel calls share the stream, a line at a time)."""
        self.stream.write(line)
        self.stream.flush()
