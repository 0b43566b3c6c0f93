"""The room process: ``python -m sealroom.room.process`` (started by the operator's launcher).

It reads one RoomRequest line on stdin, then talks to the operator over its pipes only
(channel.py: calls out on stdout beside the events, answers in on stdin); anything a library
prints goes to stderr, which the operator discards unread. It holds its per-run key, the
data keys released to it and the plaintext, all in memory, and no long-term secret; it
exits 0 on success or 1 after recording the failure (a fixed category, never a message
that could quote data). Core dumps are off so that a crash leaves no memory image.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import sys
from types import FrameType

from sealroom.room.events import EventWriter, RoomEvent

NO_SANDBOX = "none"
LIBRARY_WARNING = "a library in the room logged a warning (its text stays in the room)"


class _Relay(logging.Handler):
    """sealroom's warnings become one fixed log line: a message may quote data."""

    def __init__(self, emit: EventWriter) -> None:
        super().__init__(logging.WARNING)
        self.emit_event = emit

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("sealroom.attest", "sealroom.kms")):
            return  # the room states the INSECURE label once itself
        self.emit_event(RoomEvent(type="log", message=LIBRARY_WARNING, level="warning"))


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(f"signal {signal.Signals(signum).name}")


def _private_stdout() -> EventWriter:
    """Keep fd 1 for events and calls; point everything else written to stdout at stderr."""
    events = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return EventWriter(events)


def enter_sandbox(request: object) -> str:
    """THE place where the room confines itself, after reading its request and before it
    opens any package: ``sealroom.sandbox.confine(SandboxPolicy(read_paths=[packages,
    pipeline], write_paths=[staging], ...))`` goes here and its report's kind is returned.

    Until that package exists the room runs unconfined and every receipt says so.
    """
    return NO_SANDBOX


def main() -> int:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.umask(0o077)
    emit = _private_stdout()
    signal.signal(signal.SIGTERM, _stop)
    logging.getLogger("sealroom").addHandler(_Relay(emit))
    logging.getLogger("sealroom").setLevel(logging.INFO)
    logging.getLogger("sealroom").propagate = False

    from sealroom.room.channel import RoomChannel, RoomRequest, read_line
    from sealroom.room.failures import failure_reason
    from sealroom.room.session import RoomSession

    session: RoomSession | None = None
    try:
        request = RoomRequest.model_validate_json(read_line(sys.stdin.buffer) or b"")
        sandbox = enter_sandbox(request)
        channel = RoomChannel(emit.write_line, sys.stdin.buffer)
        session = RoomSession(request, emit, channel, sandbox=sandbox)
        receipt = session.run()
    except BaseException as exc:  # every failure ends the run the same way
        if session is not None and session.reason:
            stage, reason = session.stage, session.reason
        else:
            stage, reason = "start", failure_reason(exc, "start", keys_released=False)
        emit(RoomEvent(type="failed", stage=stage, message=reason))
        return 1
    emit(RoomEvent(type="done", run_id=receipt.run_id))
    return 0


if __name__ == "__main__":
    code = main()
    # Leave at once: nothing to tear down that matters, and teardown of torch is slow.
    logging.shutdown()
    os._exit(code)
