"""Dashboard page load times on a workspace with 100 runs and 1,000 ledger entries.

The workspace is built through the operator's real code path (tests/ui/big_workspace.py:
signed receipts, sealed outputs, budget and key-release entries), then served by
``sealroom ui`` in its own process (uvicorn, as a user starts it). Every page and JSON
endpoint the app serves (found from ``app.routes`` and the pages' links, as the tests walk
them) is loaded N times with httpx, one request at a time; the table gives the median and
the 95th percentile, the ratio of the median to the server's floor measured in the same run
(the same server answering ``/static/style.css``), and the verdict against the 300 ms target
(on the 95th percentile). Server-sent event streams are listed, not timed. Prints figures;
asserts nothing about timings.

    python benchmarks/bench_ui.py [--loads 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from machine_info import machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sealroom.crypto.passphrase import passphrase_in_effect
from sealroom.ui.app import create_app
from sealroom.ui.settings import UiSettings
from tests.ui.big_workspace import ENTRIES, RUNS, build
from tests.ui.routes import (
    EVENT_STREAM,
    http_getter,
    page_routes,
    static_urls,
    walk,
    workspace_seeds,
)

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 300.0
FLOOR = "/static/style.css"
TOKEN = "bench-ui-token-" + "b" * 24


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile by linear interpolation between the nearest ranks."""
    ordered = sorted(values)
    where = (len(ordered) - 1) * q
    low = int(where)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (where - low)


def start_server(home: Path, port: int, token_file: Path, outputs: Path) -> subprocess.Popen[bytes]:
    """``sealroom ui --outputs`` on ``home``, in its own process, once it answers."""
    env = {**os.environ, "SEALROOM_HOME": str(home), "PYTHONPATH": str(ROOT)}
    args = ["ui", "--port", str(port), "--token-file", str(token_file), "--outputs", str(outputs)]
    code = "from sealroom.cli.main import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"sealroom ui exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        try:
            if httpx.get(f"http://127.0.0.1:{port}{FLOOR}", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("sealroom ui did not answer within 60 s")


def timed(client: httpx.Client, url: str, loads: int) -> list[float]:
    times = []
    for _ in range(loads):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{url}: answered {response.status_code}, not 200")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    opts = parser.parse_args()
    print(machine())

    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        started = time.perf_counter()
        with passphrase_in_effect(b"bench-ui passphrase (throwaway workspace)"):
            big = build(Path(tmp) / "ws")
        print(
            f"workspace: {RUNS} runs, {ENTRIES} ledger entries, "
            f"built in {time.perf_counter() - started:.1f} s"
        )
        token_file = Path(tmp) / "token"
        token_file.write_text(TOKEN)
        token_file.chmod(0o600)
        port = free_port()
        app = create_app(UiSettings(ws=big.ws, token=TOKEN, port=port, outputs=(big.outputs,)))
        proc = start_server(big.ws.home, port, token_file, big.outputs)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                done = walk(
                    page_routes(app),
                    http_getter(client),
                    workspace_seeds(big.ws),
                    first=tuple(static_urls(app)),
                )
                urls = sorted(u for u in done.fetched if u.startswith("/static/"))
                for _, found in sorted(done.by_route.items()):
                    ok = [u for u in found if done.fetched[u].status == 200]
                    urls += ok[:1]
                rows = []
                for url in urls:
                    if done.fetched[url].content_type.startswith(EVENT_STREAM):
                        rows.append({"url": url, "stream": True})
                        continue
                    timed(client, url, 2)  # warm: templates compiled, files cached
                    times = timed(client, url, opts.loads)
                    rows.append(
                        {
                            "url": url,
                            "median_ms": statistics.median(times),
                            "p95_ms": percentile(times, 0.95),
                        }
                    )
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    floor = next(r["median_ms"] for r in rows if r["url"] == FLOOR)
    print(f"\n{opts.loads} loads per page, one at a time; floor = {FLOOR} median {floor:.1f} ms")
    print(f"{'page':<46} {'median ms':>10} {'p95 ms':>8} {'x floor':>8}  verdict")
    for row in rows:
        if row.get("stream"):
            print(f"{row['url']:<46} {'(event stream: answered 200, not timed)':>40}")
            continue
        ratio = row["median_ms"] / floor
        verdict = "under 300 ms" if row["p95_ms"] < TARGET_MS else "OVER 300 ms"
        row["ratio"] = ratio
        print(
            f"{row['url']:<46} {row['median_ms']:>10.1f} {row['p95_ms']:>8.1f} "
            f"{ratio:>8.1f}  {verdict}"
        )
    for name in sorted(n for n in done.by_route if not done.answered(n)):
        print(f"{name:<46} not loaded: no id of this workspace answered 200")
    for name, params in sorted(done.unfilled.items()):
        print(f"{name:<46} not loaded: no {', '.join(params)} in this workspace")
    if opts.json:
        opts.json.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
