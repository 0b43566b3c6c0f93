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
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from sealroom.room.events import EventWriter, RoomEvent

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sealroom.contract.schema import RoomLimits
    from sealroom.room.channel import RoomRequest

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


def enter_sandbox(request: RoomRequest) -> str:
    """Confine the room (sealroom.sandbox) after reading its request and before it imports
    torch (threads) or opens any package; returns the kind its receipt records.

    It may read the Python runtime, its pipeline and its packages; write only its staging
    folder and its private working directory; open no socket; and stays within the
    contract's room limits (memory: see ``limit_memory``). Irreversible.
    """
    return confine_room(
        request.contract.contract.constraints.room_limits,
        read_paths=(request.pipeline, *request.packages.values()),
        write_paths=(request.staging,),
        allow_unsandboxed=request.allow_unsandboxed,
        secret_paths=request.secret_paths,
    )


def confine_room(
    limits: RoomLimits,
    *,
    read_paths: Sequence[Path],
    write_paths: Sequence[Path],
    allow_unsandboxed: bool,
    secret_paths: Sequence[Path],
) -> str:
    """Confine this process as a room (training or serving): it reads the Python runtime
    and ``read_paths``, writes its working directory and ``write_paths``, opens no socket,
    and stays within the contract's rlimits. Returns the sandbox kind. Irreversible."""
    from sealroom.sandbox import SandboxPolicy, confine, device_paths, python_runtime_paths

    policy = SandboxPolicy(
        read_paths=(*python_runtime_paths(), *read_paths),
        write_paths=(*write_paths, Path.cwd(), *device_paths()),
        max_file_bytes=limits.file_mb << 20,
        max_open_files=limits.open_files,
        max_processes=limits.processes,
        allow_unsandboxed=allow_unsandboxed,
        secret_paths=tuple(secret_paths),
    )
    return confine(policy).kind


def limit_memory(request: RoomRequest, sandbox: str) -> None:
    """The contract's memory limit, on top of what the imported runtime already reserved."""
    from sealroom.sandbox import limit_memory_growth

    if sandbox != "none":
        limit_memory_growth(request.contract.contract.constraints.room_limits.memory_mb << 20)


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

    session = None
    try:
        request = RoomRequest.model_validate_json(read_line(sys.stdin.buffer) or b"")
        sandbox = enter_sandbox(request)
        # Only now the heavy modules (torch starts threads, which Landlock would not bind).
        from sealroom.room.session import RoomSession

        limit_memory(request, sandbox)

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
