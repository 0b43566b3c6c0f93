"""The room process: ``python -m sealroom.room.process`` (started by the operator's launcher).

It reads one JSON request on stdin, runs it (session.py) and reports only through JSON
lines on its stdout (events.py); anything else a library prints goes to stderr. It holds
the only copies of data keys and plaintext, all in memory, and exits 0 on success or 1
after recording the failure. Core dumps are off so that a crash leaves no memory image.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import sys
from pathlib import Path
from types import FrameType

from sealroom.room.events import EventWriter, RoomEvent

_QUIET = ("sealroom.attest", "sealroom.kms")


class _Relay(logging.Handler):
    """sealroom's log records become log events (messages only; no arguments are data)."""

    def __init__(self, emit: EventWriter) -> None:
        super().__init__(logging.INFO)
        self.emit_event = emit

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_QUIET):  # the room states the INSECURE label once itself
            return
        level = "warning" if record.levelno >= logging.WARNING else "info"
        self.emit_event(RoomEvent(type="log", message=record.getMessage(), level=level))


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(f"signal {signal.Signals(signum).name}")


def _private_stdout() -> EventWriter:
    """Keep fd 1 for events only; point everything else that writes to stdout at stderr."""
    events = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return EventWriter(events)


def main() -> int:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.umask(0o077)
    emit = _private_stdout()
    signal.signal(signal.SIGTERM, _stop)
    logging.getLogger("sealroom").addHandler(_Relay(emit))
    logging.getLogger("sealroom").setLevel(logging.INFO)
    logging.getLogger("sealroom").propagate = False

    from sealroom.contract.pipeline_signature import PipelineSignature
    from sealroom.room.session import RoomRequest, RoomSession, failure_reason

    stage = "start"
    try:
        raw = json.loads(sys.stdin.readline())
        request = RoomRequest(
            home=Path(raw["home"]),
            contract_id=raw["contract_id"],
            pipeline_path=Path(raw["pipeline"]),
            run_id=raw["run_id"],
            staging=Path(raw["staging"]),
            final=Path(raw["final"]),
            package_dirs=[Path(p) for p in raw.get("package_dirs", [])],
            pipeline_signature=(
                PipelineSignature.model_validate(raw["pipeline_signature"])
                if raw.get("pipeline_signature")
                else None
            ),
        )
        session = RoomSession(request, emit)
        try:
            receipt = session.run()
        finally:
            stage = session.stage
    except BaseException as exc:  # every failure ends the run the same way
        emit(RoomEvent(type="failed", stage=stage, message=failure_reason(exc)))
        return 1
    emit(RoomEvent(type="done", run_id=receipt.run_id, message=str(request.final)))
    return 0


if __name__ == "__main__":
    code = main()
    # Leave at once: nothing to tear down that matters, and teardown of torch is slow.
    logging.shutdown()
    os._exit(code)
