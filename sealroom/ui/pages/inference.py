"""The Inference tab: served models, a live room's request rate and latency, receipts.

``/inference`` lists every inference contract; ``/inference/{id}`` shows one with its
rooms and committed receipt batches, and a block that refetches
``/inference/{id}/live`` every 2 s. Each page has its JSON twin under ``/api/inference``.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from sealroom.contract.schema import ID_PATTERN
from sealroom.contract.signed import SignedContract
from sealroom.contract.store import contract_exists, load_contract
from sealroom.errors import SealroomError
from sealroom.serve.stats import LATENCY_BUCKETS_MS
from sealroom.ui.charts.histogram import Bucket, histogram
from sealroom.ui.errors import NotFound
from sealroom.ui.render import fragment, page
from sealroom.ui.views.inference import InferenceOverview, overview
from sealroom.ui.views.inference_live import LiveStats, RateMeter, live_stats
from sealroom.ui.views.inference_rooms import detail, open_room_started
from sealroom.workspace import Workspace

router = APIRouter()
_ID = re.compile(ID_PATTERN.strip("^$"))
_BOUND = re.compile(r"le_([0-9]+(?:\.[0-9]+)?)")
POLL_S = 2


def _ws(request: Request) -> Workspace:
    ws: Workspace = request.app.state.settings.ws
    return ws


def _meter(request: Request) -> RateMeter:
    """One rate meter per dashboard process (kept on the app: tests build several apps)."""
    state = request.app.state
    meter = getattr(state, "inference_rates", None)
    if meter is None:
        meter = state.inference_rates = RateMeter()
    return meter


def _contract(ws: Workspace, contract_id: str) -> SignedContract:
    """The inference contract ``contract_id``, or NotFound (odd ids never touch the disk)."""
    if not _ID.fullmatch(contract_id) or not contract_exists(ws, contract_id):
        raise NotFound(f"no inference contract {contract_id[:64]!r} in this workspace")
    try:
        signed = load_contract(ws, contract_id)
    except SealroomError as exc:
        raise NotFound(f"contract {contract_id} cannot be read: {exc}") from None
    if signed.contract.inference is None:
        raise NotFound(f"contract {contract_id} has no inference terms: it serves nothing")
    return signed


def _live(request: Request, signed: SignedContract) -> LiveStats:
    """Live stats of the contract's room; the rate before two polls: since its start entry."""
    ws = _ws(request)
    return live_stats(ws, signed.id, _meter(request), open_room_started(ws, signed))


def latency_buckets(live: LiveStats) -> list[Bucket]:
    """The stats' buckets as bars, from the first to the last non-empty one (one empty
    neighbour each side, so a single busy bucket still reads as a histogram)."""
    if live.stats is None:
        return []
    bars = [Bucket(_bucket_label(k), v) for k, v in live.stats.latency_ms.buckets.items()]
    busy = [i for i, b in enumerate(bars) if b.count]
    if not busy:
        return bars
    return bars[max(0, busy[0] - 1) : busy[-1] + 2]


def _bucket_label(key: str) -> str:
    match = _BOUND.fullmatch(key)
    if match:
        return f"≤ {match.group(1)}"
    if key == "inf":
        return f"> {LATENCY_BUCKETS_MS[-1]:g}"
    return key


def _live_html(live: LiveStats) -> Markup:
    """The live block, rendered by its own autoescaped template (so safe to embed)."""
    chart = histogram(
        latency_buckets(live), title="Request latency", x_label="milliseconds (bucket bound)"
    )
    html = fragment("inference_live.html", live=live, chart=chart)
    return Markup(html)  # noqa: S704 - an autoescaped template's output


# ------------------------------------------------------------------- HTML


@router.get("/inference", response_class=HTMLResponse)
def inference_page(request: Request) -> HTMLResponse:
    return page(request, "inference.html", view=overview(_ws(request)))


@router.get("/inference/{contract_id}", response_class=HTMLResponse)
def inference_contract_page(request: Request, contract_id: str) -> HTMLResponse:
    signed = _contract(_ws(request), contract_id)
    view = detail(_ws(request), signed)
    live = _live(request, signed)
    return page(
        request, "inference_detail.html", view=view, live_html=_live_html(live), poll_s=POLL_S
    )


@router.get("/inference/{contract_id}/live", response_class=HTMLResponse)
def inference_live_fragment(request: Request, contract_id: str) -> HTMLResponse:
    return HTMLResponse(_live_html(_live(request, _contract(_ws(request), contract_id))))


# ------------------------------------------------------------------- JSON


@router.get("/api/inference")
def inference_api(request: Request) -> dict[str, Any]:
    view: InferenceOverview = overview(_ws(request))
    return view.model_dump(mode="json")


@router.get("/api/inference/{contract_id}")
def inference_contract_api(request: Request, contract_id: str) -> dict[str, Any]:
    view = detail(_ws(request), _contract(_ws(request), contract_id))
    return view.model_dump(mode="json")


@router.get("/api/inference/{contract_id}/live")
def inference_live_api(request: Request, contract_id: str) -> dict[str, Any]:
    return _live(request, _contract(_ws(request), contract_id)).model_dump(mode="json")
