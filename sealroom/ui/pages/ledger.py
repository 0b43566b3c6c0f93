"""Ledger: entries newest first (100 a page, ``?kind=``, ``?page=``), one entry in full,
the chain's verification and the first bad entry; JSON under ``/api/ledger``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from sealroom.ui.errors import NotFound
from sealroom.ui.render import fragment, page
from sealroom.ui.views.ledger import MAX_LIMIT, PAGE_SIZE, ledger_entry, ledger_page, parse_kind
from sealroom.ui.views.ledger_state import PAGE_WAIT_S, chain_check, parse_int

router = APIRouter()
MAX_PAGE = 10**9


def _seq(text: str) -> int:
    """A seq from the path; anything else is an entry the ledger does not hold (404)."""
    if not text.isdigit() or len(text) > 18:
        raise NotFound(f"no ledger entry {text[:40]!r}")
    return int(text)


@router.get("/ledger", response_class=HTMLResponse)
def ledger_html(request: Request, kind: str | None = None) -> Any:
    ws = request.app.state.settings.ws
    number = parse_int(request.query_params.get("page"), "page", 1, 1, MAX_PAGE)
    view = ledger_page(ws, (number - 1) * PAGE_SIZE, PAGE_SIZE, parse_kind(kind), wait=PAGE_WAIT_S)
    return page(request, "ledger.html", view=view)


@router.get("/ledger/check", response_class=HTMLResponse)
def ledger_check_fragment(request: Request) -> Any:
    """The verification card alone: a page polls it while a walk of the chain is under way."""
    check = chain_check(request.app.state.settings.ws, PAGE_WAIT_S)
    return HTMLResponse(fragment("ledger_check.html", c=check))


@router.get("/ledger/{seq}", response_class=HTMLResponse)
def ledger_entry_html(request: Request, seq: str) -> Any:
    entry = ledger_entry(request.app.state.settings.ws, _seq(seq), wait=PAGE_WAIT_S)
    if entry is None:
        raise NotFound(f"no ledger entry {seq}")
    return page(request, "ledger_entry.html", entry=entry)


@router.get("/api/ledger")
def ledger_api(
    request: Request,
    offset: str | None = None,
    limit: str | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    view = ledger_page(
        request.app.state.settings.ws,
        parse_int(offset, "offset", 0, 0, MAX_PAGE * PAGE_SIZE),
        parse_int(limit, "limit", PAGE_SIZE, 1, MAX_LIMIT),
        parse_kind(kind),
        payloads=True,
    )
    return view.model_dump(mode="json")


@router.get("/api/ledger/{seq}")
def ledger_entry_api(request: Request, seq: str) -> dict[str, Any]:
    entry = ledger_entry(request.app.state.settings.ws, _seq(seq))
    if entry is None:
        raise NotFound(f"no ledger entry {seq}")
    return entry.model_dump(mode="json")
