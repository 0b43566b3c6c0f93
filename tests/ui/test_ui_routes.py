"""The route walker the load and canary tests share: it reaches every page the app links to,
fills parameters from links and workspace ids, and names the routes it cannot fill."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient

from tests.ui.routes import Fetched, links_in, page_routes, walk


def _app() -> FastAPI:
    """Routes on a router included into the app, as the dashboard's pages are."""
    app = FastAPI()
    router = APIRouter()

    @router.get("/things", response_class=HTMLResponse)
    def things() -> str:
        return '<a href="/things/t-1?x=1">one</a><div data-poll="/things/t-2/part"></div>'

    @router.get("/things/{thing_id}", response_class=HTMLResponse)
    def thing(thing_id: str) -> str:
        return f'<img src="/things/{thing_id}/part"><button data-action="/things/{thing_id}">'

    @router.get("/things/{thing_id}/part", response_class=HTMLResponse)
    def part(thing_id: str) -> str:
        return "<p>part</p>"

    @router.get("/api/things/{thing_id}")
    def thing_json(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    @router.get("/api/things/{thing_id}/detail")
    def detail(thing_id: str) -> dict[str, str]:
        if thing_id != "t-2":  # only some ids have details: the walk tries the next one
            raise HTTPException(404, "no detail")
        return {"id": thing_id}

    @router.get("/runs/{run_id}")
    def run(run_id: str) -> dict[str, str]:
        return {"run": run_id}

    @router.get("/orphans/{orphan}")
    def orphan(orphan: str) -> dict[str, str]:
        return {"orphan": orphan}

    @router.post("/things/{thing_id}")
    def act(thing_id: str) -> dict[str, str]:
        return {}

    app.include_router(router)
    return app


def _getter(client: TestClient) -> Callable[[str], Fetched]:
    def get(url: str) -> Fetched:
        response = client.get(url)
        ctype = response.headers.get("content-type", "")
        return Fetched(url, response.status_code, ctype, response.content)

    return get


def test_the_walk_follows_links_fills_by_name_and_names_what_it_cannot_fill() -> None:
    app = _app()
    routes = page_routes(app)
    assert [r.path for r in routes if r.name == "act"] == []  # POST only: not a page
    done = walk(routes, _getter(TestClient(app)), {"runs": ["r-7"]})
    assert done.by_route["thing"] == ["/things/t-1?x=1"]  # the link as the page wrote it
    assert done.by_route["part"] == ["/things/t-2/part", "/things/t-1/part"]
    assert done.by_route["thing_json"] == ["/api/things/t-1"]  # learned from /things/t-1
    assert done.by_route["detail"] == ["/api/things/t-1/detail", "/api/things/t-2/detail"]
    assert [done.fetched[u].status for u in done.by_route["detail"]] == [404, 200]
    assert done.by_route["run"] == ["/runs/r-7"]  # seeded from the workspace
    assert done.filled == {
        "/api/things/t-1",
        "/api/things/t-1/detail",
        "/api/things/t-2/detail",
        "/runs/r-7",
    }
    assert done.unfilled == {"orphan": ["orphan"]}
    assert all(done.answered(r.name) for r in routes if r.name != "orphan")


def test_links_in_keeps_same_site_paths_a_browser_gets() -> None:
    html = (
        '<a href="https://elsewhere.example/x">x</a><a href="//cdn.example/y">y</a>'
        '<a href="#top">t</a><link href="/static/style.css"><div data-sse="/runs/a/events">'
        '<form action="/api/act"><button data-action="/api/cancel">'
    )
    assert links_in(html) == ["/static/style.css", "/runs/a/events"]
    assert links_in('<a href="/x?page=2#top">') == ["/x?page=2"]


def test_a_get_form_is_followed_with_every_item_chosen() -> None:
    html = (
        '<form method="get" action="/compare"><input type="checkbox" name="jobs" value="a">'
        '<input type="checkbox" name="jobs" value="b"><input type="text" name="q">'
        '<select name="metric"><option value="loss"></select></form>'
        '<form method="post" action="/api/act"><input type="hidden" name="x" value="1"></form>'
    )
    assert links_in(html) == ["/compare?jobs=a&jobs=b&metric=loss"]
