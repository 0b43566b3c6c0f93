"""Runs: the list, one run's page with its live timeline (server-sent events), its receipt
and the released metrics and plots the viewer holds; the same data as JSON under /api/runs."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from markupsafe import Markup

from sealroom.ui.charts.lines import Series, line_chart
from sealroom.ui.errors import NotFound
from sealroom.ui.render import fragment, page
from sealroom.ui.settings import UiSettings
from sealroom.ui.views.run_detail import RunDetail, plot_bytes, run_detail
from sealroom.ui.views.run_metrics import Metrics
from sealroom.ui.views.runs import PER_PAGE, RunList, find_run, list_runs, valid_run_id
from sealroom.workspace import Workspace

router = APIRouter()

TIMELINE_ID = "run-timeline"
TICK_S = 0.5  # how often a live page's event stream looks at the run
STREAM_LIFETIME_S = 15 * 60.0  # a stream ends after this; the browser reconnects if it wants
MAX_STREAMS = 32  # open event streams at once, all clients together; more get 503
KEEPALIVE_S = 15.0


def _settings(request: Request) -> UiSettings:
    settings: UiSettings = request.app.state.settings
    return settings


def _detail(request: Request, run_id: str) -> RunDetail:
    settings = _settings(request)
    detail = run_detail(settings.ws, run_id, settings.outputs) if valid_run_id(run_id) else None
    if detail is None:
        raise NotFound(f"no run {run_id[:80]!r} in this workspace")
    return detail


def _runs(request: Request, page_no: int, per_page: int) -> RunList:
    return list_runs(_settings(request).ws, page=page_no, per_page=per_page)


@router.get("/runs", response_class=HTMLResponse)
def runs_page(
    request: Request, page_no: int = Query(1, alias="page", ge=1, le=100_000)
) -> HTMLResponse:
    return page(request, "runs.html", runs=_runs(request, page_no, PER_PAGE))


@router.get("/api/runs")
def runs_api(
    request: Request,
    page_no: int = Query(1, alias="page", ge=1, le=100_000),
    per_page: int = Query(PER_PAGE, ge=1, le=200),
) -> dict[str, Any]:
    return _runs(request, page_no, per_page).model_dump(mode="json")


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str) -> HTMLResponse:
    detail = _detail(request, run_id)
    return page(request, "run.html", run=detail, charts=charts(detail.metrics))


@router.get("/api/runs/{run_id}")
def run_api(request: Request, run_id: str) -> dict[str, Any]:
    return _detail(request, run_id).model_dump(mode="json")


@router.get("/runs/{run_id}/outputs/{name}")
def run_output(request: Request, run_id: str, name: str) -> Response:
    """A released plot the viewer holds, served only while its hash is the receipt's."""
    settings = _settings(request)
    data = plot_bytes(settings.ws, run_id, name, settings.outputs) if valid_run_id(run_id) else None
    if data is None:
        raise NotFound(f"no plot {name[:80]!r} of run {run_id[:80]!r} held here")
    return Response(data, media_type="image/png")


@router.get("/runs/{run_id}/events")
async def run_events(request: Request, run_id: str) -> Response:
    """The timeline fragment each time it changes, then ``end`` once the run has finished.

    Bounded: one look every TICK_S, at most STREAM_LIFETIME_S, and it stops as soon as the
    client goes.
    """
    ws = _settings(request).ws
    if not valid_run_id(run_id) or find_run(ws, run_id) is None:
        raise NotFound(f"no run {run_id[:80]!r} in this workspace")
    state = request.app.state
    if state.open_streams >= MAX_STREAMS:
        # Each stream looks at the run twice a second for up to 15 minutes: a flood of them
        # would hold the server's threads; the rate limit alone lets a client open many.
        return Response(
            json.dumps({"error": f"{MAX_STREAMS} live streams are open; try again later"}),
            status_code=503,
            media_type="application/json",
            headers={"retry-after": "30"},
        )

    async def stream() -> AsyncIterator[str]:
        # Counted while the body streams (a response never started is never counted).
        state.open_streams += 1
        try:
            async for chunk in _timeline_events(request, ws, run_id):
                yield chunk
        finally:
            state.open_streams -= 1

    headers = {"x-accel-buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


async def _timeline_events(request: Request, ws: Workspace, run_id: str) -> AsyncIterator[str]:
    """The stream's body: a fragment when the timeline changes, keep-alives, then ``end``."""
    deadline = time.monotonic() + STREAM_LIFETIME_S
    last_html = None
    last_sent = time.monotonic()
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return
        found = await asyncio.to_thread(find_run, ws, run_id)
        if found is None:
            return
        html = fragment("run_timeline.html", timeline=found.timeline)
        if html != last_html:
            last_html = html
            last_sent = time.monotonic()
            data = json.dumps({"target": TIMELINE_ID, "html": html})
            yield f"event: fragment\ndata: {data}\n\n"
        elif time.monotonic() - last_sent > KEEPALIVE_S:
            last_sent = time.monotonic()
            yield ": keep-alive\n\n"
        if found.timeline.finished:
            yield f"event: end\ndata: {json.dumps({'status': found.timeline.status})}\n\n"
            return
        await asyncio.sleep(TICK_S)


def charts(metrics: Metrics | None) -> list[Markup]:
    """Per-epoch curves (train and val per metric) and the ε curve, as SVG."""
    if metrics is None:
        return []
    drawn = []
    for curve in metrics.curves:
        series = [Series(split, points) for split, points in sorted(curve.lines.items())]
        floor = 0.0 if curve.metric != "loss" else None
        drawn.append(
            line_chart(
                series, title=curve.metric, x_label="epoch", y_label=curve.metric, y_floor=floor
            )
        )
    if metrics.epsilon_curve:
        drawn.append(
            line_chart(
                [Series("ε spent", metrics.epsilon_curve)],
                title="privacy: ε by step",
                x_label="step",
                y_label="ε",
                y_floor=0.0,
            )
        )
    return drawn
