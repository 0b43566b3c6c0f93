"""Every page and endpoint the dashboard serves, found from the app itself, with its parameters
filled: what the page-load and canary tests walk.

Routes come from ``app.routes`` (each GET route, included routers flattened, and every file
under a static mount), so a
page added later is walked without anyone listing it. A path parameter is filled from the
links the app's own pages carry (``href``, ``src``, ``data-sse``, ``data-poll``: a run id
found in ``/runs/<id>`` also fills ``/api/runs/{run_id}``), seeded with the ids the
workspace holds (runs, contracts, ledger entries, datasets). A route that stays unfilled is
reported by name; the callers decide whether that fails.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

import httpx
from fastapi import FastAPI
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sealroom.workspace import Workspace

# Attributes whose path a browser GETs (``data-action`` and forms POST: not walked).
LINK_ATTRIBUTES = {"href", "src", "data-sse", "data-poll"}
PER_ROUTE = 2  # linked URLs walked per parameterised route: enough to see two items
MAX_TRIES = 6  # filled URLs tried per route no link reached, until one answers 200
EVENT_STREAM = "text/event-stream"
# Parameter names (lower case, by substring) that workspace ids fill when no link did.
SEED_KEYS = (
    ("run", "runs"),
    ("contract", "contracts"),
    ("seq", "seqs"),
    ("entry", "seqs"),
    ("dataset", "datasets"),
)


@dataclass(frozen=True)
class PageRoute:
    """One GET route: its name, its path template and the parameters the template names."""

    name: str
    path: str
    params: tuple[str, ...]
    regex: re.Pattern[str]

    def fill(self, values: dict[str, str]) -> str:
        url = self.path
        for param in self.params:
            url = re.sub(r"\{" + param + r"(:[^}]*)?\}", quote(values[param], safe=""), url)
        return url


@dataclass
class Fetched:
    """What one GET answered (the body may be cut short for an event stream)."""

    url: str
    status: int
    content_type: str
    body: bytes
    headers: bytes = b""


def app_routes(app: FastAPI) -> list[Any]:
    """``app.routes`` with included routers flattened (recent FastAPI includes a router as
    one lazy entry; its routes then carry the prefix)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before lazy inclusion: app.routes is already flat
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


def page_routes(app: FastAPI) -> list[PageRoute]:
    """Every route answering GET, in the app's order (static files are :func:`static_urls`)."""
    found = []
    for route in app_routes(app):
        original = getattr(route, "original_route", route)
        if isinstance(original, Route) and "GET" in (route.methods or ()):
            params = tuple(route.param_convertors)
            found.append(PageRoute(route.name, route.path, params, route.path_regex))
    return found


def static_urls(app: FastAPI) -> list[str]:
    """The URL of every file under each static mount (stylesheet, script, images)."""
    urls = []
    for route in app_routes(app):
        original = getattr(route, "original_route", route)
        if isinstance(original, Mount) and isinstance(original.app, StaticFiles):
            for folder in original.app.all_directories:
                root = Path(folder)
                for path in sorted(p for p in root.rglob("*") if p.is_file()):
                    urls.append(f"{route.path}/{path.relative_to(root).as_posix()}")
    return urls


def workspace_seeds(ws: Workspace) -> dict[str, list[str]]:
    """Ids the workspace holds, by kind: what a parameter no page links to is filled with."""
    from sealroom.contract.store import list_contracts

    runs = sorted(p.name for p in ws.runs.iterdir() if p.is_dir() and not p.name.startswith("."))
    contracts = list_contracts(ws)
    seeds = {
        "runs": runs,
        "contracts": [c.contract.id for c in contracts],
        "datasets": sorted({d.id for c in contracts for d in c.contract.datasets}),
        "seqs": [],
    }
    if ws.ledger_db.exists():
        from sealroom.ledger import Ledger

        with Ledger.open(ws) as ledger:
            count = len(ledger)
        seeds["seqs"] = [str(s) for s in sorted({1, max(1, count // 2), count}) if s <= count]
    return seeds


class _Links(HTMLParser):
    """Collects link paths, and each GET form as the URL it submits with every checkbox,
    radio button and option chosen (a comparison of every job the page lists)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.forms: list[str] = []  # the URLs GET forms submit (also in links)
        self._form: str | None = None  # action of the open GET form
        self._fields: list[tuple[str, str]] = []
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "form":
            action = found.get("action", "")
            if found.get("method", "get").lower() == "get" and action.startswith("/"):
                self._form, self._fields = action, []
            return
        for name, value in attrs:
            if name in LINK_ATTRIBUTES and value and value.startswith("/"):
                self.links.append(value)
        if self._form is None:
            return
        if tag == "input" and found.get("name") and found.get("value"):
            if found.get("type", "text") in ("checkbox", "radio", "hidden", "text"):
                self._fields.append((found["name"], found["value"]))
        elif tag == "select":
            self._select = found.get("name") or None
        elif tag == "option" and self._select and found.get("value"):
            self._fields.append((self._select, found["value"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "form" and self._form is not None:
            query = urlencode(self._fields)
            self.links.append(self._form + (f"?{query}" if query else ""))
            self.forms.append(self.links[-1])
            self._form = None


def links_in(html: str) -> list[str]:
    """Same-site paths (with their query) an HTML page points at: links, images, live parts
    and the URLs its GET forms submit."""
    return _parsed(html)[0]


def _parsed(html: str) -> tuple[list[str], list[str]]:
    """The page's same-site links, and the queries of its GET forms."""
    parser = _Links()
    parser.feed(html)
    found = []
    for link in parser.links:
        if link.startswith("//"):
            continue
        parts = urlsplit(link)
        found.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return found, [urlsplit(form).query for form in parser.forms if urlsplit(form).query]


@dataclass
class Walk:
    """The outcome: every URL fetched, which route each served, and what stayed unfilled.

    ``linked`` are the URLs pages link to: each must answer 200. ``filled`` are URLs the
    walk built from parameter values (learned from other links or seeded from the
    workspace): such a value may belong to another kind of thing, so a 404 there is not a
    broken page; nor is a 400 from a route fetched bare that needs a query (a comparison
    of chosen jobs) which no page of this workspace links to.
    """

    fetched: dict[str, Fetched] = field(default_factory=dict)
    by_route: dict[str, list[str]] = field(default_factory=dict)  # route name -> URLs
    linked: set[str] = field(default_factory=set)  # URLs some page links to
    filled: set[str] = field(default_factory=set)
    unfilled: dict[str, list[str]] = field(default_factory=dict)  # route name -> params

    def answered(self, name: str) -> bool:
        """Whether some URL of route ``name`` answered 200."""
        return any(self.fetched[u].status == 200 for u in self.by_route.get(name, []))


def walk(
    routes: list[PageRoute],
    get: Callable[[str], Fetched],
    seeds: dict[str, list[str]],
    first: tuple[str, ...] = (),
) -> Walk:
    """GET every parameterless route (and ``first``), follow the links and GET forms of each
    HTML page (at most :data:`PER_ROUTE` URLs per parameterised route), learn parameter
    values from them, then fill each route that did not answer 200 with the values learned
    or seeded for its parameter names (and the query strings pages used), trying up to
    :data:`MAX_TRIES` URLs until one answers 200."""
    out = Walk()
    learned: dict[str, list[str]] = {}
    queue = [*first, *(r.path for r in routes if not r.params)]
    attempts: dict[str, int] = {}  # route name -> filled URLs tried
    form_queries: list[str] = []  # what the GET forms seen submit (all items chosen)
    link_queries: list[str] = []  # the query strings of the links seen

    def route_of(url: str) -> PageRoute | None:
        path = urlsplit(url).path
        for route in routes:
            match = route.regex.match(path)
            if match:
                for name, value in match.groupdict().items():
                    if unquote(value) not in learned.setdefault(name, []):
                        learned[name].append(unquote(value))
                return route
        return None

    def visit(url: str) -> None:
        if url in out.fetched:
            return
        route = route_of(url)
        if route is not None:
            taken = out.by_route.setdefault(route.name, [])
            if route.params and len(taken) >= PER_ROUTE and url not in out.filled:
                return
            taken.append(url)
        fetched = out.fetched[url] = get(url)
        if fetched.content_type.startswith("text/html"):
            links, forms = _parsed(fetched.body.decode("utf-8", "replace"))
            out.linked.update(links)
            queue.extend(links)
            for query in forms:  # items chosen: what a bare route most likely lacks
                if query not in form_queries:
                    form_queries.append(query)
            for query in (urlsplit(link).query for link in links):
                if query and query not in link_queries:
                    link_queries.append(query)

    while True:
        while queue:
            visit(queue.pop(0))
        for route in routes:
            if out.answered(route.name) or attempts.get(route.name, 0) >= MAX_TRIES:
                continue
            queries = form_queries + [q for q in link_queries if q not in form_queries]
            for url in _candidates(route, learned, seeds, queries):
                if url not in out.fetched:
                    attempts[route.name] = attempts.get(route.name, 0) + 1
                    out.filled.add(url)
                    queue.append(url)
                    break
        if not queue:
            break
    for route in routes:
        if route.params and route.name not in out.by_route:
            out.unfilled[route.name] = [p for p in route.params if not learned.get(p)]
    return out


def _candidates(
    route: PageRoute,
    learned: dict[str, list[str]],
    seeds: dict[str, list[str]],
    queries: list[str],
) -> list[str]:
    """URLs of ``route`` from the values known for each of its parameters, by name; then
    the same with each query string a page used (a route that needs chosen items)."""
    choices = []
    for param in route.params:
        values = list(learned.get(param, []))
        for key, kind in SEED_KEYS:
            if key in param.lower():
                values += [v for v in seeds.get(kind, []) if v not in values]
        if not values:
            return []
        choices.append(values)
    combos = itertools.islice(itertools.product(*choices), MAX_TRIES)
    bases = [route.fill(dict(zip(route.params, combo, strict=True))) for combo in combos]
    return bases + [f"{base}?{query}" for base in bases for query in queries]


def http_getter(
    client: httpx.Client, stream_bytes: int = 64 * 1024, stream_seconds: float = 2.0
) -> Callable[[str], Fetched]:
    """GET through a real server: whole bodies, but at most ``stream_bytes`` (or what
    ``stream_seconds`` of silence leaves) of a server-sent event stream, which may not end."""

    def get(url: str) -> Fetched:
        timeout = httpx.Timeout(30.0, read=stream_seconds)
        with client.stream("GET", url, timeout=timeout) as response:
            ctype = response.headers.get("content-type", "")
            body = bytearray()
            stream = ctype.startswith(EVENT_STREAM)
            deadline = time.monotonic() + 2 * stream_seconds
            try:
                for chunk in response.iter_bytes():
                    body += chunk
                    if stream and (len(body) >= stream_bytes or time.monotonic() > deadline):
                        break
            except httpx.ReadTimeout:
                if not stream:
                    raise
            head = "\n".join(f"{k}: {v}" for k, v in response.headers.items()).encode()
            return Fetched(url, response.status_code, ctype, bytes(body), head)

    return get
