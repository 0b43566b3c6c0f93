"""The overview: the workspace, its parties (public fingerprints only), how much it holds,
and what needs attention — each item linking to the page that explains it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from sealroom.crypto.identity import list_identities
from sealroom.errors import SealroomError
from sealroom.ui.views.budgets import RUN_ID, local_budgets, mirrored_budgets
from sealroom.ui.views.contracts import list_contract_views
from sealroom.ui.views.ledger_state import API_WAIT_S, ChainCheck, chain_check, open_ledger
from sealroom.workspace import Workspace

BUDGET_WARN = 0.8  # a budget this much used (spent + reserved) needs attention
RECENT_FAILURES = 5


class PartyInfo(BaseModel):
    name: str
    role: str
    fingerprint: str


class Counts(BaseModel):
    parties: int
    contracts: int
    runs: int
    ledger_entries: int
    packages: int
    lab_experiments: int | None  # None: no testbed in this workspace
    lab_jobs: int | None


class Attention(BaseModel):
    what: Literal["ledger", "run", "budget", "contract", "job"]
    severity: Literal["bad", "warn"]
    message: str
    link: str


class Overview(BaseModel):
    workspace: str
    parties: list[PartyInfo]
    counts: Counts
    attention: list[Attention]
    ledger_verified: bool | None
    ledger_pending: bool  # the chain's walk was still under way when the page was built


def _count_dirs(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.iterdir() if not p.name.startswith("."))


def _parties(ws: Workspace, attention: list[Attention]) -> list[PartyInfo]:
    if not ws.parties.is_dir():
        return []
    try:
        identities = list_identities(ws)
    except SealroomError as exc:
        attention.append(Attention(what="contract", severity="bad", message=str(exc), link="/"))
        return []
    return [PartyInfo(name=i.name, role=i.role, fingerprint=i.fingerprint) for i in identities]


def _ledger_items(ws: Workspace, attention: list[Attention], wait: float) -> tuple[int, ChainCheck]:
    check = chain_check(ws, wait)
    if check.first_bad is not None:
        attention.append(
            Attention(
                what="ledger",
                severity="bad",
                message=f"The ledger fails verification: {check.reason}",
                link=f"/ledger/{check.first_bad}",
            )
        )
    elif check.verified is None and ws.ledger_db.is_file() and not check.pending:
        attention.append(
            Attention(
                what="ledger",
                severity="warn",
                message=f"The ledger is not verified: {check.reason}",
                link="/ledger",
            )
        )
    with open_ledger(ws) as view:
        if view is None:
            return 0, check
        total = view.count()
        for entry in view.newest(0, RECENT_FAILURES, "run.failed"):
            run_id = str(entry.payload.get("run_id", ""))
            stage = str(entry.payload.get("stage", ""))
            reason = str(entry.payload.get("reason", ""))
            link = f"/runs/{run_id}" if RUN_ID.match(run_id) else f"/ledger/{entry.seq}"
            attention.append(
                Attention(
                    what="run",
                    severity="bad",
                    message=f"Run {run_id} failed at {stage}: {reason}",
                    link=link,
                )
            )
    return total, check


def _contract_items(ws: Workspace, attention: list[Attention]) -> int:
    contracts = list_contract_views(ws)

    def warn(message: str, link: str) -> None:
        attention.append(Attention(what="contract", severity="warn", message=message, link=link))

    for c in contracts:
        link = f"/contracts/{c.id}"
        if c.state in ("revoked", "invalid", "unreadable"):
            why = f": {c.problems[0]}" if c.problems else ""
            message = f"Contract {c.id} is {c.state}{why}"
            attention.append(Attention(what="contract", severity="bad", message=message, link=link))
        elif c.state in ("proposed", "signed"):
            missing = [p.name for p in c.parties if not p.signed]
            message = (
                f"Contract {c.id} is unsigned by {', '.join(missing)}"
                if missing
                else f"Contract {c.id} is signed but not registered in the ledger"
            )
            attention.append(
                Attention(what="contract", severity="warn", message=message, link=link)
            )
        if c.expiring_soon and c.state not in ("revoked", "expired"):
            message = f"Contract {c.id} expires within a week ({c.expires})"
            attention.append(
                Attention(what="contract", severity="warn", message=message, link=link)
            )
    return len(contracts)


def _budget_items(ws: Workspace, attention: list[Attention]) -> None:
    try:
        budgets = local_budgets(ws)
    except SealroomError as exc:
        attention.append(
            Attention(what="budget", severity="bad", message=str(exc), link="/budgets")
        )
        budgets = []
    with open_ledger(ws) as view:
        budgets += mirrored_budgets(ws, view)
    for b in budgets:
        if b.used_fraction >= BUDGET_WARN:
            message = (
                f"Budget of {b.dataset_id} under {b.contract_id} is {b.used_fraction:.0%} used "
                f"(ε {b.spent + b.reserved:.3g} of {b.total_epsilon:.3g})"
            )
            link = f"/budgets#budget-{b.contract_id}-{b.dataset_id}"
            attention.append(Attention(what="budget", severity="warn", message=message, link=link))


def _lab_items(ws: Workspace, attention: list[Attention]) -> tuple[int | None, int | None]:
    """The testbed's experiments and jobs when ``<ws>/lab/lab.db`` exists (nothing started)."""
    from sealroom.lab.paths import LabPaths

    paths = LabPaths.of_workspace(ws.home)
    if not paths.db.is_file():
        return None, None
    from sealroom.lab.store import LabStore

    store = LabStore(paths)
    try:
        experiments = len(store.list_experiments())
        jobs = store.list_jobs()
    finally:
        store.close()
    for job in (j for j in jobs if j.status == "failed"):
        message = f"Testbed job {job.id} ({job.experiment}) failed: {job.reason}"
        link = f"/testbed/jobs/{job.id}"
        attention.append(Attention(what="job", severity="bad", message=message, link=link))
    return experiments, len(jobs)


def overview(ws: Workspace, wait: float = API_WAIT_S) -> Overview:
    """``wait``: how long to wait for the chain's verification (see chain_check)."""
    attention: list[Attention] = []
    parties = _parties(ws, attention)
    entries, check = _ledger_items(ws, attention, wait)
    contracts = _contract_items(ws, attention)
    _budget_items(ws, attention)
    experiments, jobs = _lab_items(ws, attention)
    counts = Counts(
        parties=len(parties),
        contracts=contracts,
        runs=_count_dirs(ws.runs),
        ledger_entries=entries,
        packages=_count_dirs(ws.packages),
        lab_experiments=experiments,
        lab_jobs=jobs,
    )
    return Overview(
        workspace=str(ws.home),
        parties=parties,
        counts=counts,
        attention=attention,
        ledger_verified=check.verified,
        ledger_pending=check.pending,
    )
