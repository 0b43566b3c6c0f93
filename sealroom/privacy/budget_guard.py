"""The key service's half of the privacy budget: no key without the run's own reservation.

A ``BudgetGate`` is a release guard for :class:`sealroom.kms.service.KeyService`: before a
key leaves, the request's run must hold an open reservation, in the key service's own budget
book, covering its pipeline's (ε, δ) on every private dataset whose budget that book keeps;
as the key leaves, the reservation is consumed. A request without a run id, another run's
reservation, one settled or expired: no key.

Which datasets a book keeps is the gate's ``scope``: for the operator's embedded key service,
the private datasets without a ``key_service`` of their own; for ``sealroom kms serve``, the
private datasets whose key it holds (their budget lives with their key, where the operator
cannot edit it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sealroom.privacy.budget import BudgetBook

if TYPE_CHECKING:
    from sealroom.contract.schema import Contract
    from sealroom.kms.models import ReleaseRequest
    from sealroom.pipeline.schema import Pipeline
    from sealroom.workspace import Workspace

Scope = Callable[["Contract"], list[str]]


def all_private(contract: Contract) -> list[str]:
    """Every private dataset of the contract."""
    return [d.id for d in contract.datasets if d.privacy is not None]


def embedded_scope(contract: Contract) -> list[str]:
    """The private datasets whose key (and so budget) is the operator's embedded service's."""
    return [d.id for d in contract.datasets if d.privacy is not None and not d.key_service]


class BudgetGate:
    """``KeyService(ws, guards=[BudgetGate(ws, embedded_scope)])``: the call checks, and
    ``consume`` (called by the key service once the key is sealed, before it is returned)
    binds the reservation to the released key."""

    def __init__(
        self, ws: Workspace, scope: Scope = all_private, clock: Callable[[], float] = time.time
    ) -> None:
        self.ws = ws
        self.scope = scope
        self.clock = clock

    def __call__(
        self, contract: Contract, pipeline: Pipeline, request: ReleaseRequest | None
    ) -> str | None:
        return self._decide(contract, pipeline, request, consume=False)

    def consume(
        self, contract: Contract, pipeline: Pipeline, request: ReleaseRequest | None
    ) -> str | None:
        """Consume the reservation as a private dataset's key leaves. The model's key is
        released first (the room checks the model before it asks for any data), so its
        release checks the reservation but does not use it up: a model refused then
        has seen no private record and its run's reservation can still be returned."""
        kept = set(self.scope(contract))
        private = {d.package_digest for d in contract.datasets if d.id in kept}
        data_key = request is not None and request.package_digest in private
        return self._decide(contract, pipeline, request, consume=data_key)

    def _decide(
        self,
        contract: Contract,
        pipeline: Pipeline,
        request: ReleaseRequest | None,
        consume: bool,
    ) -> str | None:
        datasets = self.scope(contract)
        if not datasets:
            return None
        if pipeline.privacy is None:
            return f"contract {contract.id} has privacy budgets but the pipeline has no privacy"
        run_id = request.run_id if request is not None else None
        if not run_id:
            return (
                f"contract {contract.id} has privacy budgets: a key request must name the run "
                "whose budget reservation it uses (it has no run id)"
            )
        need = (pipeline.privacy.epsilon, pipeline.privacy.delta)
        with BudgetBook(self.ws, clock=self.clock) as book:
            return book.check_run(run_id, contract.id, need, datasets, consume=consume)
