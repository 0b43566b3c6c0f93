"""The dashboard's pages: each module has one ``router`` with its HTML page(s) and the
JSON endpoints (``/api/...``) they are built from. Add a page by adding its router here
and its tab to :data:`sealroom.ui.render.NAV`."""

from __future__ import annotations

from fastapi import APIRouter

from sealroom.ui.pages import runs

ROUTERS: list[APIRouter] = [runs.router]
