"""Overview: the workspace, its parties, what it holds and what needs attention. JSON at
``/api/overview``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from sealroom.ui.render import page
from sealroom.ui.views.ledger_state import PAGE_WAIT_S
from sealroom.ui.views.overview import overview

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def overview_html(request: Request) -> Any:
    view = overview(request.app.state.settings.ws, PAGE_WAIT_S)
    return page(request, "overview.html", view=view)


@router.get("/api/overview")
def overview_api(request: Request) -> dict[str, Any]:
    return overview(request.app.state.settings.ws).model_dump(mode="json")
