"""Load generation and server processes for the inference benchmark and load test.

The server under test runs in its own process (uvicorn on 127.0.0.1, port 0, the port
printed as the first line of its stdout) so that client and server never share a GIL;
clients are asyncio tasks over httpx, one connection each.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 120.0


class ServerProcess:
    """A server started as ``python ARGV...``; its first stdout line is JSON with ``port``."""

    def __init__(self, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        repo = Path(__file__).resolve().parents[1]
        path = os.pathsep.join(
            [str(repo), str(repo / "benchmarks"), os.environ.get("PYTHONPATH", "")]
        )
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path, **(env or {})},
            text=True,
        )
        assert self.proc.stdout is not None
        line = _read_line(self.proc, START_TIMEOUT_S)
        if not line:
            self.stop()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"server {argv[0]} did not start: {err.strip()[-800:]}")
        self.info: dict[str, Any] = json.loads(line)
        self.url = f"http://127.0.0.1:{self.info['port']}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            if self.proc.stdin is not None:
                self.proc.stdin.close()  # the server exits when its stdin closes
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    import selectors

    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return ""
    return proc.stdout.readline().strip()


@dataclass
class Answer:
    status_code: int
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


class RawClient:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams, for the load generator only.

    httpx costs 2–4 ms of CPU a request here, as much as the server it measures; on 2 cores
    that would make every throughput figure a figure of the client. This one writes the
    request in one send (TCP_NODELAY) and reads a Content-Length response (uvicorn always
    sends one for these apps), nothing else: no redirects, no chunking, no TLS.
    """

    def __init__(self, url: str) -> None:
        host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
        self.host, self.port = host, int(port)
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def __aenter__(self) -> RawClient:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._streams = reader, writer
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._streams is not None:
            self._streams[1].close()

    async def post(self, path: str, content: bytes, content_type: str) -> Answer:
        assert self._streams is not None
        reader, writer = self._streams
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(content)}\r\n\r\n"
        )
        writer.write(head.encode("ascii") + content)
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if length is None:
            raise RuntimeError("response without Content-Length")
        return Answer(status, await reader.readexactly(length))


# A request: given its index, send it with the client and return once its answer checks out
# (raise on any error, wrong answer included).
Request = Callable[[RawClient, int], Awaitable[None]]


@dataclass
class LoadResult:
    """Latencies (seconds) of the answered requests, errors by message, wall time."""

    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    client_cpu_s: float = 0.0  # CPU time of this (client) process while it ran

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]

    @property
    def p50_ms(self) -> float:
        return self.percentile(50) * 1000

    @property
    def p99_ms(self) -> float:
        return self.percentile(99) * 1000

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.latencies) * 1000 if self.latencies else float("nan")


async def run_load(url: str, request: Request, total: int, concurrency: int) -> LoadResult:
    """``total`` requests from ``concurrency`` clients, each on its own connection."""
    result = LoadResult()
    counter = iter(range(total))

    async def client() -> None:
        async with RawClient(url) as http:
            for index in counter:
                started = time.perf_counter()
                try:
                    await request(http, index)
                except Exception as exc:
                    key = f"{type(exc).__name__}: {str(exc)[:120]}"
                    result.errors[key] = result.errors.get(key, 0) + 1
                    continue
                result.latencies.append(time.perf_counter() - started)

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    result.client_cpu_s = time.process_time() - cpu
    return result


def load(url: str, request: Request, total: int, concurrency: int) -> LoadResult:
    return asyncio.run(run_load(url, request, total, concurrency))
