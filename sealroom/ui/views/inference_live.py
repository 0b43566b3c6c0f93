"""A live serving room's aggregate statistics, fetched by the dashboard's server.

``sealroom serve`` leaves two 0600 files beside its lock while the room serves: the stats
token and the room's URL (sealroom.serve.launcher). The dashboard reads both and calls
``GET <url>/v1/stats`` itself, so the token never reaches a page, a JSON answer or a
browser. Both files are workspace data, hence hostile: the URL must be plain
``http://<loopback IP>:<port>`` (anything else is never fetched: no other host, scheme,
path or credentials), the answer is read up to a size cap and must match the shape below,
and any failure reads as one line, "not serving", never an error page.

Request rate: from successive snapshots this process keeps in memory per contract
(requests counted between the oldest kept snapshot and now), and before it has two, the
mean since the room's ``inference.started`` entry.
"""

from __future__ import annotations

import ipaddress
import os
import stat
import threading
import time
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sealroom.errors import SealroomError
from sealroom.httpguard import read_token
from sealroom.serve.launcher import serving_url_path, stats_token_path
from sealroom.workspace import Workspace

TIMEOUT_S = 1.0  # each connect and read
TOTAL_S = 2.0  # the whole answer: a room that drips bytes is cut off
MAX_STATS_BYTES = 64 * 1024  # a real snapshot is ~3 KiB
MAX_URL_BYTES = 256
RATE_WINDOW_S = 30.0
MIN_RATE_SPAN_S = 1.0  # snapshots closer than this give no rate (too noisy)
NOT_SERVING = "not serving"

Count = Annotated[int, Field(ge=0, le=2**63)]
Label = Annotated[str, Field(min_length=1, max_length=80)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class LatencyHistogram(_Strict):
    count: Count
    mean_ms: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    buckets: dict[Label, Count] = Field(max_length=64)


class StatsSnapshot(_Strict):
    """The part of ``GET /v1/stats`` the page shows (sealroom.serve.stats, app.py)."""

    requests: dict[Label, Count] = Field(max_length=100)  # HTTP status -> requests
    examples_served: Count
    batches: Count
    mean_batch_examples: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    queue_depth_examples: Count
    pending_commitments: Count = 0
    commit_failures: Count
    latency_ms: LatencyHistogram
    refusals: dict[Label, Count] = Field(default_factory=dict, max_length=100)


class Rate(BaseModel):
    requests_per_s: float
    over_s: float
    source: str  # "snapshots" (kept in memory here) or "since start" (the ledger's started)


class LiveStats(BaseModel):
    """``serving`` False: ``reason`` says why in one line (the page shows "not serving")."""

    contract_id: str
    serving: bool
    reason: str
    url: str | None = None
    stats: StatsSnapshot | None = None
    total_requests: int = 0
    answered: int = 0
    rate: Rate | None = None


def loopback_url(text: str) -> str | None:
    """``http://<loopback IP literal>:<port>`` rebuilt from its parts, or None for anything
    else (another host, a name, https/file/other schemes, credentials, a path or query)."""
    if len(text) > MAX_URL_BYTES or any(c.isspace() or ord(c) < 0x20 for c in text):
        return None
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme != "http" or parts.username is not None or parts.password is not None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or port is None:
        return None
    try:
        address = ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        return None
    if not address.is_loopback or not 0 < port < 65536:
        return None
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"http://{host}:{port}"


def _read_small(path: Path, limit: int) -> str | None:
    """A regular file's text (no symlink, at most ``limit`` bytes), or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        return None
    try:
        return data.decode("ascii").strip()
    except UnicodeDecodeError:
        return None


def fetch_stats(ws: Workspace, contract_id: str) -> tuple[str | None, StatsSnapshot | str]:
    """(the room's URL, its stats) or (URL or None, why not) — never raises."""
    text = _read_small(serving_url_path(ws, contract_id), MAX_URL_BYTES)
    if text is None:
        return None, "no room announced by `sealroom serve` for this contract"
    url = loopback_url(text)
    if url is None:
        return None, "the serving URL file names no loopback http address: not fetched"
    try:
        token = read_token(stats_token_path(ws, contract_id))
    except SealroomError:
        return url, "the stats token file is missing or unsafe"
    try:
        body = _get(url + "/v1/stats", token)
    except (httpx.HTTPError, OSError):
        return url, "the room does not answer"
    except _Refused as exc:
        return url, str(exc)
    try:
        return url, StatsSnapshot.model_validate_json(body)
    except ValidationError:
        return url, "the room's stats are malformed"


class _Refused(Exception):
    pass


def _get(url: str, token: str) -> bytes:
    """The body of one GET, at most MAX_STATS_BYTES, no redirects, no proxies."""
    headers = {"authorization": f"Bearer {token}", "accept": "application/json"}
    deadline = time.monotonic() + TOTAL_S
    with (
        httpx.Client(timeout=TIMEOUT_S, follow_redirects=False, trust_env=False) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        if response.status_code != 200:
            raise _Refused(f"the room refused the stats request (HTTP {response.status_code})")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MAX_STATS_BYTES:
                raise _Refused("the room's stats are too large")
            if time.monotonic() > deadline:
                raise _Refused("the room's stats came too slowly")
            chunks.append(chunk)
    return b"".join(chunks)


class RateMeter:
    """Total requests per contract over time, in memory: the request rate between the oldest
    snapshot kept (at most RATE_WINDOW_S old) and the newest. A room restart (another URL,
    or a total that went down) starts over."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[str, deque[tuple[float, int]]]] = {}

    def observe(self, contract_id: str, url: str, total: int, now: float) -> Rate | None:
        with self._lock:
            kept_url, points = self._seen.get(contract_id, (url, deque(maxlen=256)))
            if kept_url != url or (points and total < points[-1][1]):
                points = deque(maxlen=256)
            points.append((now, total))
            while len(points) > 2 and now - points[0][0] > self.window_s:
                points.popleft()
            self._seen[contract_id] = (url, points)
            (t0, n0), (t1, n1) = points[0], points[-1]
        if t1 - t0 < MIN_RATE_SPAN_S:
            return None
        return Rate(requests_per_s=(n1 - n0) / (t1 - t0), over_s=t1 - t0, source="snapshots")


def live_stats(
    ws: Workspace, contract_id: str, meter: RateMeter, started_at: str | None = None
) -> LiveStats:
    """The live block of a contract; ``started_at`` (the instance's started entry, ISO)
    gives a first rate before the meter holds two snapshots."""
    url, found = fetch_stats(ws, contract_id)
    if isinstance(found, str):
        return LiveStats(contract_id=contract_id, serving=False, reason=found, url=url)
    assert url is not None
    total = sum(found.requests.values())
    rate = meter.observe(contract_id, url, total, time.monotonic())
    if rate is None and started_at:
        try:
            age = time.time() - datetime.fromisoformat(started_at).timestamp()
        except ValueError:
            age = 0.0
        if age > 0:
            rate = Rate(requests_per_s=total / age, over_s=age, source="since start")
    return LiveStats(
        contract_id=contract_id,
        serving=True,
        reason="serving",
        url=url,
        stats=found,
        total_requests=total,
        answered=found.requests.get("200", 0),
        rate=rate,
    )
