"""uvicorn on the socket the operator passed in, inside the sandbox.

The room cannot create a socket (seccomp) nor bind one (Landlock TCP), so uvicorn is given
the inherited listening socket (``Server.serve(sockets=[...])``); accepting on it creates
the connection sockets without ``socket()``. No access log (a path or a client address is
not for the operator's terminal), no ``Server``/``Date`` header, proxy headers off.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType
from typing import Any


def inherited_socket(fd: int) -> socket.socket:
    """The listening socket behind ``fd`` (family and type read from the socket itself)."""
    sock = socket.socket(fileno=fd)
    if sock.type != socket.SOCK_STREAM:
        raise OSError(f"fd {fd} is not a stream socket")
    return sock


def serve_on_socket(
    app: Any,
    fd: int | socket.socket,
    on_started: Callable[[], None],
    stop_at: float | None = None,
) -> str:
    """Serve ``app`` on the listening socket (or its fd) until SIGTERM or SIGINT, or until
    the unix time ``stop_at`` (the contract's end); returns "signal" or "deadline".

    ``on_started`` runs once uvicorn accepts connections (the room then tells the operator).
    """
    import uvicorn

    sock = fd if isinstance(fd, socket.socket) else inherited_socket(fd)
    config = uvicorn.Config(
        app,
        loop="asyncio",
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)

    def stop(signum: int, frame: FrameType | None) -> None:
        server.should_exit = True  # uvicorn's own handler replays the signal here on exit

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    ended = ["signal"]

    async def deadline() -> None:
        assert stop_at is not None
        await asyncio.sleep(max(0.0, stop_at - time.time()))
        ended[0] = "deadline"
        server.should_exit = True

    async def run() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.005)
        if server.started:
            on_started()
        timer = asyncio.create_task(deadline()) if stop_at is not None else None
        await task
        if timer is not None:
            timer.cancel()

    asyncio.run(run())
    return ended[0]
