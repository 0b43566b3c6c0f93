"""The dashboard's own hardening, whatever pages it serves: the guard's checks, the
security headers, assets from the package, problems as one line, loopback only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from fastapi import APIRouter, Request
from typer.testing import CliRunner

from sealroom.cli.main import app as cli
from sealroom.httpguard import HttpGuardError, write_token
from sealroom.ui.app import SECURITY_HEADERS, create_app
from sealroom.ui.errors import NotFound
from sealroom.ui.render import page
from sealroom.ui.server import action_url, settings_for
from sealroom.workspace import Workspace
from tests.ui.serving import AUTH, client, settings


def test_every_response_forbids_framing_sniffing_and_foreign_scripts(workspace: Workspace) -> None:
    http = client(workspace)
    for response in (http.get("/static/style.css"), http.get("/no/such/page")):
        for name, value in SECURITY_HEADERS:
            assert response.headers[name.decode()] == value.decode()
    assert "script-src 'self'" in http.get("/static/ui.js").headers["content-security-policy"]


def test_assets_come_from_the_package_and_nothing_else_is_served(workspace: Workspace) -> None:
    http = client(workspace)
    assert "EventSource" in http.get("/static/ui.js").text
    assert http.get("/static/style.css").headers["content-type"].startswith("text/css")
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/../../workspace.py"):
        assert http.get(path).status_code == 404, path


def test_reads_need_no_token_but_any_action_does(workspace: Workspace) -> None:
    app = create_app(settings(workspace))
    router = APIRouter()
    acted: list[str] = []

    @router.post("/api/act")
    def act() -> dict[str, str]:
        acted.append("yes")
        return {"done": "yes"}

    app.include_router(router)
    from fastapi.testclient import TestClient

    http = TestClient(app, base_url=settings(workspace).url)
    assert http.post("/api/act").status_code == 401
    wrong = {"authorization": "Bearer " + "x" * 40}
    assert http.post("/api/act", headers=wrong).status_code == 401
    assert acted == []
    assert http.post("/api/act", headers=AUTH).json() == {"done": "yes"}
    # a page elsewhere posting here (CSRF) is refused by Origin even with a token
    evil = {**AUTH, "origin": "http://evil.example"}
    assert http.post("/api/act", headers=evil).status_code == 403
    assert acted == ["yes"]


def test_dns_rebinding_and_proxy_headers_are_refused(workspace: Workspace) -> None:
    http = client(workspace)
    css = "/static/style.css"
    assert http.get(css, headers={"host": "attacker.example:8765"}).status_code == 421
    assert http.get(css, headers={"x-forwarded-for": "1.2.3.4"}).status_code == 400


def test_a_problem_is_one_escaped_line_as_a_page_or_as_json(workspace: Workspace) -> None:
    app = create_app(settings(workspace))
    router = APIRouter()

    @router.get("/things/{name}")
    def thing(name: str) -> None:
        raise NotFound(f"no thing {name!r} in this workspace")

    @router.get("/api/things/{name}")
    def api_thing(name: str) -> None:
        raise NotFound(f"no thing {name!r} in this workspace")

    app.include_router(router)
    from fastapi.testclient import TestClient

    http = TestClient(app, base_url=settings(workspace).url)
    shown = http.get("/things/<b onmouseover=alert(1)>")
    assert shown.status_code == 404
    assert "<b onmouseover" not in shown.text
    assert "&lt;b onmouseover=alert(1)&gt;" in shown.text
    assert http.get("/api/things/x").json() == {"error": "no thing 'x' in this workspace"}
    unknown = http.get("/no/such/<page>")
    assert unknown.status_code == 404
    assert "no page /no/such/&lt;page&gt;" in unknown.text
    assert http.get("/api/nothing").json() == {"error": "no endpoint /api/nothing"}


def test_pages_render_with_autoescape_and_the_active_tab(workspace: Workspace) -> None:
    app = create_app(settings(workspace))
    router = APIRouter()

    @router.get("/runs/echo")
    def echo(request: Request, text: str) -> object:
        return page(request, "problem.html", message=text)

    app.include_router(router)
    from fastapi.testclient import TestClient

    html = (
        TestClient(app, base_url=settings(workspace).url)
        .get("/runs/echo", params={"text": "<img src=x onerror=alert(1)>"})
        .text
    )
    assert "<img src=x" not in html
    assert 'href="/runs" class="active"' in html


def test_the_server_listens_on_loopback_only_with_a_private_token(
    workspace: Workspace, tmp_path: Path
) -> None:
    with pytest.raises(HttpGuardError, match="loopback only"):
        settings_for(workspace, host="0.0.0.0")
    fresh = settings_for(workspace, port=9000)
    assert len(fresh.token) >= 32
    assert action_url(fresh) == f"http://127.0.0.1:9000/#token={fresh.token}"
    token_file = tmp_path / "ui.token"
    write_token(token_file, "k" * 32)
    assert settings_for(workspace, token_file=token_file).token == "k" * 32
    os.chmod(token_file, stat.S_IRUSR | stat.S_IWUSR | stat.S_IROTH)
    with pytest.raises(HttpGuardError, match="readable by others"):
        settings_for(workspace, token_file=token_file)


def test_the_command_refuses_a_public_address_in_one_line(workspace: Workspace) -> None:
    result = CliRunner().invoke(cli, ["ui", "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "refusing to serve on 0.0.0.0: loopback only" in result.output
    assert len(result.output.strip().splitlines()) == 1
