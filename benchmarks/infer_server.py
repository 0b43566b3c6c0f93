"""A server process for the inference benchmark: ``python benchmarks/infer_server.py KIND ...``.

Binds 127.0.0.1 port 0, builds the app for that port, prints one JSON line (``port`` and
what a client needs), serves with uvicorn, and exits when its stdin closes. KIND is
``baseline`` (plain ONNX Runtime, infer_baseline.py); the sealroom side is a real serving
room (infer_sealroom.py), which is its own process already.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import uvicorn

from sealroom.contract.inference import ServingLimits


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["baseline"])
    parser.add_argument("--model", type=Path, required=True, help="ONNX file")
    parser.add_argument("--shape", required=True, help="one example, e.g. 1,28,28")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    args = parser.parse_args(argv)
    shape = tuple(int(s) for s in args.shape.split(","))
    limits = ServingLimits(
        max_batch_size=args.max_batch_size,
        max_wait_ms=args.max_wait_ms,
        queue_size=4096,
        request_timeout_s=120.0,
        requests_per_second=1e6,
        burst=1_000_000,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit TCP_NODELAY on Linux: without it a response sent as two
    # writes (headers, body) waits for the client's delayed ACK (~40 ms).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)  # before the port is printed: a client may connect at once
    port = sock.getsockname()[1]
    info: dict[str, Any] = {"port": port}
    onnx = args.model.read_bytes()
    from infer_baseline import baseline_app

    app = baseline_app(onnx, shape, port, limits, args.threads)
    # As the serving room runs uvicorn (sealroom/serve/hosting.py): asyncio loop, no headers.
    config = uvicorn.Config(
        app, loop="asyncio", log_level="warning", proxy_headers=False, server_header=False,
        date_header=False, access_log=False,
    )  # fmt: skip
    server = uvicorn.Server(config)

    def watch_stdin() -> None:
        sys.stdin.read()  # returns when the parent closes our stdin (or dies)
        server.should_exit = True

    threading.Thread(target=watch_stdin, daemon=True).start()
    print(json.dumps(info), flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
