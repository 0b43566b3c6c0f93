"""Every page and JSON endpoint of the dashboard, loaded through a real server from a workspace
with 100 runs and 1,000 ledger entries: each answers 200, and its median load time over five
loads is printed (and listed in pytest's summary). No timed assertion: the figures go to
docs/results.md through ``benchmarks/bench_ui.py``, which compares them with the 300 ms target.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator

import httpx
import pytest

from sealroom.crypto.passphrase import passphrase_in_effect
from sealroom.ledger import Ledger
from sealroom.ui.app import create_app
from tests.ui.big_workspace import ENTRIES, RUNS, BigWorkspace, build
from tests.ui.routes import (
    EVENT_STREAM,
    Walk,
    http_getter,
    page_routes,
    static_urls,
    walk,
    workspace_seeds,
)
from tests.ui.serving import live_server, settings
from tests.ui.summary import add_summary

LOADS = 5


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> BigWorkspace:
    with passphrase_in_effect(b"big workspace passphrase (test)"):
        return build(tmp_path_factory.mktemp("big") / "ws")


@pytest.fixture(scope="module")
def served(big: BigWorkspace) -> Iterator[tuple[httpx.Client, Walk]]:
    """A real server on the big workspace, and the walk of every route it serves."""
    app = create_app(settings(big.ws, outputs=(big.outputs,)))
    routes, files = page_routes(app), tuple(static_urls(app))
    with live_server(big.ws, (big.outputs,)) as url, httpx.Client(base_url=url) as client:
        yield client, walk(routes, http_getter(client), workspace_seeds(big.ws), first=files)


def test_the_workspace_is_as_big_as_promised(big: BigWorkspace) -> None:
    with Ledger.open(big.ws) as ledger:
        assert len(ledger) == ENTRIES
        ledger.verify()
    assert len([p for p in big.ws.runs.iterdir() if (p / "receipt.json").is_file()]) == RUNS


def test_every_page_answers_and_its_load_time_is_printed(
    served: tuple[httpx.Client, Walk], request: pytest.FixtureRequest
) -> None:
    client, done = served
    broken = {
        url: f.status
        for url, f in done.fetched.items()
        if f.status >= 500 or (f.status != 200 and url in done.linked)
    }
    assert not broken, f"pages and links that did not answer 200: {broken}"
    lines = [f"page load, median of {LOADS} ({RUNS} runs, {ENTRIES} ledger entries):"]
    statics = sorted(u for u in done.fetched if u.startswith("/static/"))
    answered = [_first_200(done, name) for name in sorted(done.by_route)]
    for url in [*statics, *(u for u in answered if u)]:
        if done.fetched[url].content_type.startswith(EVENT_STREAM):
            lines.append(f"  {url:<48} event stream (answered 200; not timed)")
            continue
        median = statistics.median(_load(client, url) for _ in range(LOADS))
        lines.append(f"  {url:<48} {median * 1000:8.1f} ms")
        request.node.user_properties.append((f"load_ms {url}", round(median * 1000, 1)))
    for name in sorted(n for n in done.by_route if not done.answered(n)):
        status = done.fetched[done.by_route[name][-1]].status
        lines.append(f"  {name:<48} not loaded: {status} (needs an id or query it lacks)")
    for name, params in sorted(done.unfilled.items()):
        lines.append(f"  {name:<48} not loaded: no {', '.join(params)} in this workspace")
    print("\n".join(lines))
    add_summary(request.config, lines)


def _first_200(done: Walk, name: str) -> str | None:
    return next((u for u in done.by_route[name] if done.fetched[u].status == 200), None)


def _load(client: httpx.Client, url: str) -> float:
    start = time.perf_counter()
    response = client.get(url)
    elapsed = time.perf_counter() - start
    assert response.status_code == 200, f"{url}: {response.status_code}"
    return elapsed


def test_the_walk_reaches_the_static_files(served: tuple[httpx.Client, Walk]) -> None:
    _, done = served
    assert done.fetched["/static/style.css"].content_type.startswith("text/css")
    assert "javascript" in done.fetched["/static/ui.js"].content_type
