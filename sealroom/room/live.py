"""The operator's live log of a run: the public events it relays, as JSON lines on disk.

While a run is served, the launcher appends each event it may show (stage, fixed log line,
epoch and batch counters: :func:`sealroom.room.launcher._public`) with a timestamp to
``runs/.events/<run id>.jsonl``, then one last line with the outcome (the run id, or the
one-line failure reason the ledger also records). The dashboard reads it to draw a run's
timeline while it runs. Only the operator writes here; the room is never granted the
folder (it is one of the room's secret paths). A hostile room controls how many events it
sends, so the log is bounded: batch counters at most a few per second and a cap on lines,
and a failure to write never fails the run.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sealroom.room.events import RoomEvent
from sealroom.room.failures import one_line
from sealroom.workspace import Workspace

EVENTS_DIR = ".events"
SUFFIX = ".jsonl"
MAX_LINES = 2000  # events of one run (each line < 600 bytes: ~1 MB at most)
BATCH_GAP_S = 0.5  # at most two batch counters a second
FULL = "event log full: further events of this run are not recorded"


def events_dir(ws: Workspace) -> Path:
    return ws.runs / EVENTS_DIR


def event_log_path(ws: Workspace, run_id: str) -> Path:
    return events_dir(ws) / f"{run_id}{SUFFIX}"


class LiveLog:
    """Appends a run's public events to its event log; see the module docstring."""

    def __init__(
        self,
        path: Path,
        *,
        max_lines: int = MAX_LINES,
        batch_gap_s: float = BATCH_GAP_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.max_lines = max_lines
        self.batch_gap_s = batch_gap_s
        self.clock = clock
        self.lines = 0
        self.full = False
        self._last_batch = float("-inf")
        self._fd: int | None = None
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(path.parent, 0o700)
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
            self._fd = os.open(path, flags, 0o600)
        except OSError:
            self._fd = None  # no live view of this run; the run itself goes on

    @classmethod
    def start(cls, ws: Workspace, run_id: str, contract_id: str) -> LiveLog:
        log = cls(event_log_path(ws, run_id))
        log._write({"type": "started", "run_id": run_id, "contract_id": contract_id})
        return log

    def event(self, event: RoomEvent) -> None:
        """Record one public event (already bounded by the launcher), within the limits."""
        if event.type == "batch":
            now = self.clock()
            last_of_epoch = event.batches > 0 and event.batch >= event.batches
            if now - self._last_batch < self.batch_gap_s and not last_of_epoch:
                return
            self._last_batch = now
        if self.lines >= self.max_lines:
            if not self.full:
                self.full = True
                self._write({"type": "log", "level": "warning", "message": FULL}, force=True)
            return
        line: dict[str, Any] = {"type": event.type}
        for key in ("stage", "message"):
            text = one_line(str(getattr(event, key)), 200)
            if text:
                line[key] = text
        if event.level == "warning":
            line["level"] = "warning"
        for key in ("epoch", "epochs", "batch", "batches"):
            value = getattr(event, key)
            if isinstance(value, int) and value:
                line[key] = value
        self._write(line)

    def relay(self, then: Callable[[RoomEvent], None] | None) -> Callable[[RoomEvent], None]:
        """An event callback that records each event, then passes it on to ``then``."""

        def on_event(event: RoomEvent) -> None:
            self.event(event)
            if then is not None:
                then(event)

        return on_event

    def finish(self, run_id: str, reason: str | None) -> None:
        """The last line: the run completed, or failed with ``reason``; then close."""
        if reason is None:
            self._write({"type": "completed", "run_id": run_id}, force=True)
        else:
            self._write({"type": "failed", "reason": one_line(reason)}, force=True)
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _write(self, line: dict[str, Any], force: bool = False) -> None:
        if self._fd is None or (self.lines >= self.max_lines and not force):
            return
        data = json.dumps({"t": round(time.time(), 3), **line}, sort_keys=True) + "\n"
        try:
            os.write(self._fd, data.encode("utf-8"))
        except OSError:
            self.close()
            return
        self.lines += 1
