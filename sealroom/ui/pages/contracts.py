"""Contracts: every contract with its state and signatures; one contract in full (parties,
signatures verified here, registration receipt, constraints, pins). JSON under
``/api/contracts``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from sealroom.ui.errors import NotFound
from sealroom.ui.render import page
from sealroom.ui.views.contracts import ContractDetail, contract_detail, list_contract_views

router = APIRouter()


def _detail(request: Request, contract_id: str) -> ContractDetail:
    found = contract_detail(request.app.state.settings.ws, contract_id)
    if found is None:
        raise NotFound(f"no contract {contract_id[:80]!r} in this workspace")
    return found


@router.get("/contracts", response_class=HTMLResponse)
def contracts_html(request: Request) -> Any:
    contracts = list_contract_views(request.app.state.settings.ws)
    return page(request, "contracts.html", contracts=contracts)


@router.get("/contracts/{contract_id}", response_class=HTMLResponse)
def contract_html(request: Request, contract_id: str) -> Any:
    return page(request, "contract.html", c=_detail(request, contract_id))


@router.get("/api/contracts")
def contracts_api(request: Request) -> list[dict[str, Any]]:
    contracts = list_contract_views(request.app.state.settings.ws)
    return [c.model_dump(mode="json") for c in contracts]


@router.get("/api/contracts/{contract_id}")
def contract_api(request: Request, contract_id: str) -> dict[str, Any]:
    return _detail(request, contract_id).model_dump(mode="json")
