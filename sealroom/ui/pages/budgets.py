"""Budgets: each (contract, dataset) ε budget as a stacked bar with its numbers, and each
private run's ε curve. JSON at ``/api/budgets``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from sealroom.ui.charts.bars import Part, stacked_bar
from sealroom.ui.charts.lines import Series, line_chart
from sealroom.ui.render import page
from sealroom.ui.views.budgets import BudgetRow, EpsilonCurve, budgets_view

router = APIRouter()

SPENT, RESERVED, REMAINING = "#b3261e", "#d9730d", "#1b7f3b"


def budget_bar(b: BudgetRow) -> Markup:
    parts = [
        Part("spent", b.spent, SPENT),
        Part("reserved", b.reserved, RESERVED),
        Part("remaining", b.remaining, REMAINING),
    ]
    title = f"ε of {b.dataset_id} under {b.contract_id}"
    return stacked_bar(parts, total=b.total_epsilon, title=title)


def curve_chart(c: EpsilonCurve) -> Markup:
    series = [Series(f"ε ({c.accountant or 'accountant'})", c.points)]
    return line_chart(
        series, title=f"ε of run {c.run_id}", x_label=c.x_label, y_label="ε", y_floor=0.0
    )


@router.get("/budgets", response_class=HTMLResponse)
def budgets_html(request: Request) -> Any:
    settings = request.app.state.settings
    view = budgets_view(settings.ws, settings.outputs)
    bars = [budget_bar(b) for b in view.budgets]
    charts = [curve_chart(c) for c in view.curves]
    return page(
        request,
        "budgets.html",
        view=view,
        rows=list(zip(view.budgets, bars, strict=True)),
        curves=list(zip(view.curves, charts, strict=True)),
    )


@router.get("/api/budgets")
def budgets_api(request: Request) -> dict[str, Any]:
    settings = request.app.state.settings
    return budgets_view(settings.ws, settings.outputs).model_dump(mode="json")
