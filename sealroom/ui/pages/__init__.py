"""The dashboard's pages: each module has one ``router`` with its HTML page(s) and the
JSON endpoints (``/api/...``) they are built from. Add a page by adding its router here
and its tab to :data:`sealroom.ui.render.NAV`."""

from __future__ import annotations

from fastapi import APIRouter

from sealroom.ui.pages import budgets, contracts, inference, ledger, overview, runs, testbed

ROUTERS: list[APIRouter] = [
    overview.router,
    runs.router,
    contracts.router,
    ledger.router,
    budgets.router,
    inference.router,
    testbed.router,
]
