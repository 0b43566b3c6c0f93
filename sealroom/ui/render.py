"""Jinja2 templates from the package, autoescaped, with the filters every page uses."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

# (path, label) of the navigation bar, in order.
NAV = (
    ("/", "Overview"),
    ("/runs", "Runs"),
    ("/contracts", "Contracts"),
    ("/ledger", "Ledger"),
    ("/budgets", "Budgets"),
    ("/inference", "Inference"),
    ("/testbed", "Testbed"),
)


def when(value: float | str | None) -> str:
    """A unix time or ISO-8601 string as ``2026-11-26 12:00:01 UTC``; '' for none."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    else:
        moment = datetime.fromtimestamp(float(value), tz=UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def short(value: str | None, n: int = 12) -> str:
    """A digest or key cut to ``n`` characters (the full value stays in the title)."""
    text = value or ""
    return text if len(text) <= n else text[:n] + "…"


def number(value: float | None, digits: int = 3) -> str:
    """A float with ``digits`` significant digits; '∞' and '' for infinity and none."""
    if value is None:
        return ""
    if math.isinf(value):
        return "∞"
    return f"{value:.{digits}g}"


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("sealroom.ui", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, short=short, number=number)
    env.globals["nav"] = NAV
    return env


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` with the request's path (for the active tab) and the app's
    workspace name and read-only flag."""
    settings = request.app.state.settings
    html = (
        environment()
        .get_template(template)
        .render(
            path=request.url.path,
            workspace=settings.ws.home.name,
            **context,
        )
    )
    return HTMLResponse(html, status_code=status_code)


def fragment(template: str, **context: Any) -> str:
    """A template rendered on its own: the live parts (server-sent events, polling)."""
    return environment().get_template(template).render(**context)
