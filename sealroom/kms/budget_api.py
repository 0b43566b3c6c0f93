"""The key service's budget endpoints: the budgets of the private datasets whose key it holds.

``POST /v1/budget/reserve`` and ``/v1/budget/settle`` answer 200 with what was done, or 409
``{"refused": reason, "error_type": "BudgetExceeded" | "PrivacyError"}``; ``GET /v1/budget``
lists the budgets (``?dataset=ID`` for one). Behind the same token and httpguard limits as
``/v1/release``. A settle here never refunds what a run reserved once a key was released to
it: the key service cannot know what the run spent, and whoever holds the token (the
operator) could claim anything.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from sealroom.contract.store import verify_contract
from sealroom.errors import BudgetExceeded, PrivacyError, SealroomError
from sealroom.kms.models import BudgetReserve, BudgetSettle
from sealroom.kms.service import KeyService
from sealroom.privacy.budget import BudgetBook
from sealroom.workspace import Workspace

PREFIX = "/v1/budget"


def _refused(exc: SealroomError) -> JSONResponse:
    kind = type(exc).__name__ if isinstance(exc, BudgetExceeded) else "PrivacyError"
    return JSONResponse({"refused": str(exc), "error_type": kind}, status_code=409)


def _malformed(exc: ValidationError, what: str) -> JSONResponse:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return JSONResponse({"error": f"malformed {what}: {where}: {first['msg']}"}, status_code=400)


def add_budget_routes(app: FastAPI, ws: Workspace, service: KeyService) -> None:
    """Register the budget endpoints on ``app``; the book is ``ws``'s budget.db."""

    def do_reserve(call: BudgetReserve) -> dict[str, Any]:
        contract = verify_contract(ws, call.contract_id).contract
        datasets = service.private_datasets_held(contract)
        if not datasets:
            raise PrivacyError(
                f"this key service holds the key of no private dataset of contract "
                f"{contract.id}: it keeps no budget for it"
            )
        with BudgetBook(ws) as book:
            kept = book.reserve(call.run_id, contract, call.epsilon, call.delta, datasets=datasets)
        return {"datasets": kept, "max_runtime_s": contract.constraints.max_runtime_s}

    def do_settle(call: BudgetSettle) -> dict[str, Any]:
        with BudgetBook(ws) as book:
            charged = book.settle(
                call.run_id,
                call.spent_epsilon,
                contract_id=call.contract_id,
                refund_after_release=False,
            )
        return {"charged_epsilon": charged}

    @app.post(f"{PREFIX}/reserve", response_model=None)
    async def reserve(http_request: Request) -> Any:
        try:
            call = BudgetReserve.model_validate_json(await http_request.body())
        except ValidationError as exc:
            return _malformed(exc, "budget reservation")
        try:
            return await run_in_threadpool(do_reserve, call)
        except SealroomError as exc:  # over budget, reserved already, unknown contract
            return _refused(exc)

    @app.post(f"{PREFIX}/settle", response_model=None)
    async def settle(http_request: Request) -> Any:
        try:
            call = BudgetSettle.model_validate_json(await http_request.body())
        except ValidationError as exc:
            return _malformed(exc, "budget settle")
        try:
            return await run_in_threadpool(do_settle, call)
        except SealroomError as exc:  # unknown run, settled already, more than reserved
            return _refused(exc)

    @app.get(PREFIX)
    def show(dataset: str | None = None) -> list[dict[str, Any]]:
        with BudgetBook(ws) as book:
            budgets = book.summary(dataset)
        return [{**dataclasses.asdict(b), "runs": [r._asdict() for r in b.runs]} for b in budgets]
