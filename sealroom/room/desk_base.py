"""What every operator desk shares (the training room's and the serving room's): read one line
from the room, answer a call or pass an event on, and refuse in one line.

The room is untrusted: a line that is not a call or an event, or a call the desk refuses, gets
a refusal that carries only a one-line message and an error type from the channel's list.
"""

from __future__ import annotations

from typing import Any

from sealroom.errors import SealroomError
from sealroom.room.channel import (
    ERRORS,
    ChannelError,
    Request,
    Response,
    parse_room_line,
    request_id,
)
from sealroom.room.events import RoomEvent
from sealroom.room.failures import one_line


class ChannelDesk:
    """Answers a room's calls; a subclass says how in ``_dispatch``."""

    def answer(self, line: bytes | ChannelError) -> Response | RoomEvent | None:
        """A response for a call line, the event of an event line, None for noise.

        ChannelError when the line is a call that cannot even be answered (no usable id), or
        when the reader already refused it (``line`` is that refusal: an over-long line).
        """
        if isinstance(line, ChannelError):
            raise line
        try:
            message = parse_room_line(line)
        except ChannelError as exc:
            ident = request_id(line)
            if ident is None:
                raise
            return refusal(ident, exc)
        if isinstance(message, Request):
            return self.handle(message)
        return message

    def handle(self, request: Request) -> Response:
        try:
            result = self._dispatch(request)
        except SealroomError as exc:
            return refusal(request.id, exc)
        return Response(id=request.id, ok=True, result=result)

    def _dispatch(self, request: Request) -> dict[str, Any]:
        raise NotImplementedError


def refusal(ident: int, exc: SealroomError) -> Response:
    """A refused call: one line, and an error type the room's side knows (else ChannelError)."""
    name = type(exc).__name__
    return Response(
        id=ident,
        ok=False,
        error=one_line(str(exc)),
        error_type=name if name in ERRORS else "ChannelError",
    )


def only_fields(
    payload: dict[str, Any], allowed: set[str], kind: str, *, complete: bool = False
) -> dict[str, Any]:
    """A copy of a room's ledger payload with no field beyond ``allowed`` (and, when
    ``complete``, none missing): the room never writes a fact the desk did not expect."""
    extra = sorted(set(payload) - allowed)
    if extra:
        raise ChannelError(f"room channel: {kind} may not carry {extra[0][:40]!r}")
    missing = sorted(allowed - set(payload)) if complete else []
    if missing:
        raise ChannelError(f"room channel: {kind} lacks {missing[0]!r}")
    return dict(payload)
