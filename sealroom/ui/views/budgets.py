"""The budgets page: each (contract, dataset) privacy budget — ε total, spent, reserved,
remaining, δ — and the ε curve of each private run.

Budgets come from the workspace's budget book (``budget.db``, what ``sealroom budget show``
reads), opened read-only. A dataset whose contract names its own key service keeps its book
there; this workspace's ledger mirrors what that service reserved and charged
(``budget.mirrored``), which is what the page shows for it.

The ε curve is the run's ε after each epoch: the public run record carries it
(``privacy.epsilon_trajectory``, from the same accountant the trainer charges). For a run
recorded before it did, the viewer's decrypted ``privacy_report.json`` is used when its
digest matches the one the receipt recorded; otherwise only the final ε is known.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from sealroom.contract.store import load_contract
from sealroom.errors import SealroomError
from sealroom.ledger import LedgerView
from sealroom.privacy.budget import read_summary
from sealroom.room.receipt import RECEIPT_FILE, RunReceipt
from sealroom.ui.views.contracts import contract_ids
from sealroom.ui.views.ledger_state import open_ledger
from sealroom.workspace import Workspace

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_RECEIPT_BYTES = 1 << 20
PRIVACY_REPORT = "privacy_report.json"


class RunShare(BaseModel):
    run_id: str
    epsilon: float
    state: str


class BudgetRow(BaseModel):
    contract_id: str
    dataset_id: str
    total_epsilon: float
    spent: float
    reserved: float
    remaining: float
    per_run_epsilon: float
    total_delta: float
    spent_delta: float
    used_fraction: float  # (spent + reserved) / total
    source: str  # "this workspace" or the key service that keeps it
    runs: list[RunShare]


class EpsilonCurve(BaseModel):
    run_id: str
    contract_id: str
    datasets: list[str]
    epsilon_spent: float | None
    epsilon_target: float | None
    delta: float | None
    accountant: str | None
    noise_multiplier: float | None
    steps: int | None
    x_label: str  # "epoch", or "step" when the epochs are not known
    points: list[tuple[float, float]]
    source: str


class BudgetsView(BaseModel):
    budgets: list[BudgetRow]
    curves: list[EpsilonCurve]
    problems: list[str]


def _fraction(used: float, total: float) -> float:
    return used / total if total > 0 else 0.0


def local_budgets(ws: Workspace) -> list[BudgetRow]:
    """The workspace's own budget book, as ``sealroom budget show`` lists it."""
    return [
        BudgetRow(
            contract_id=b.contract_id,
            dataset_id=b.dataset_id,
            total_epsilon=b.total_epsilon,
            spent=b.spent,
            reserved=b.reserved,
            remaining=b.remaining,
            per_run_epsilon=b.per_run_epsilon,
            total_delta=b.total_delta,
            spent_delta=b.spent_delta,
            used_fraction=_fraction(b.spent + b.reserved, b.total_epsilon),
            source="this workspace",
            runs=[RunShare(run_id=r.run_id, epsilon=r.epsilon, state=r.state) for r in b.runs],
        )
        for b in read_summary(ws)
    ]


def mirrored_budgets(ws: Workspace, view: LedgerView | None) -> list[BudgetRow]:
    """Budgets a dataset's own key service keeps, as this ledger mirrors them."""
    if view is None:
        return []
    mirrors = [e.payload for e in view.entries("budget.mirrored")]
    rows = []
    for contract_id in contract_ids(ws):
        try:
            contract = load_contract(ws, contract_id).contract
        except SealroomError:
            continue
        for dataset in contract.datasets:
            if dataset.privacy is None or not dataset.key_service:
                continue
            url = dataset.key_service
            here = (contract_id, url)
            mine = [m for m in mirrors if (m.get("contract_id"), m.get("key_service")) == here]
            runs = _mirrored_runs(mine, dataset.id)
            spent = sum(r.epsilon for r in runs if r.state == "charged")
            reserved = sum(r.epsilon for r in runs if r.state == "reserved")
            total = dataset.privacy.total_epsilon
            rows.append(
                BudgetRow(
                    contract_id=contract_id,
                    dataset_id=dataset.id,
                    total_epsilon=total,
                    spent=spent,
                    reserved=reserved,
                    remaining=max(total - spent - reserved, 0.0),
                    per_run_epsilon=dataset.privacy.per_run_epsilon,
                    total_delta=dataset.privacy.total_delta,
                    spent_delta=0.0,
                    used_fraction=_fraction(spent + reserved, total),
                    source=f"key service {url} (as mirrored in this ledger)",
                    runs=runs,
                )
            )
    return rows


def _mirrored_runs(mine: list[dict[str, Any]], dataset_id: str) -> list[RunShare]:
    """Each run the key service reserved for on ``dataset_id``: charged once settled."""
    runs = []
    for m in mine:
        kept = m.get("kept")
        if m.get("op") != "reserve" or not isinstance(kept, dict):
            continue
        if dataset_id not in (kept.get("datasets") or []):
            continue
        run_id = str(m.get("run_id"))
        settled = [s for s in mine if s.get("op") == "settle" and s.get("run_id") == run_id]
        if settled:
            charged = settled[-1].get("charged")
            eps = charged.get("charged_epsilon") if isinstance(charged, dict) else None
            runs.append(RunShare(run_id=run_id, epsilon=_num(eps), state="charged"))
        else:
            runs.append(RunShare(run_id=run_id, epsilon=_num(m.get("epsilon")), state="reserved"))
    return runs


def _num(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def run_receipts(ws: Workspace) -> tuple[list[RunReceipt], list[str]]:
    """Every readable run receipt in the workspace (not verified: the runs page does that)."""
    receipts, problems = [], []
    if not ws.runs.is_dir():
        return [], []
    for folder in sorted(ws.runs.iterdir()):
        path = folder / RECEIPT_FILE
        if not RUN_ID.match(folder.name) or not path.is_file():
            continue
        try:
            if path.stat().st_size > MAX_RECEIPT_BYTES:
                raise ValueError("larger than a receipt can be")
            receipts.append(RunReceipt.model_validate_json(path.read_bytes()))
        except (OSError, ValueError, ValidationError) as exc:
            problems.append(f"run {folder.name}: unreadable receipt ({str(exc).splitlines()[0]})")
    return receipts, problems


def _trajectory(facts: dict[str, Any]) -> tuple[str, list[tuple[float, float]]] | None:
    """(x label, points) from a trajectory of [steps, ε] pairs; epochs when they are known."""
    raw = facts.get("epsilon_trajectory")
    if not isinstance(raw, list):
        return None
    pairs = []
    for item in raw:
        if not (isinstance(item, list) and len(item) == 2):
            return None
        step, eps = item
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (step, eps)):
            return None
        pairs.append((float(step), float(eps)))
    epochs, planned = facts.get("epochs"), facts.get("planned_steps")
    if isinstance(epochs, int) and isinstance(planned, int) and epochs > 0 and planned > 0:
        per_epoch = planned / epochs
        return "epoch", [(round(s / per_epoch, 3), e) for s, e in pairs]
    return "step", pairs


def _decrypted_report(receipt: RunReceipt, outputs: tuple[Path, ...]) -> dict[str, Any] | None:
    """The run's privacy report from a viewer's decrypted outputs, when its SHA-256 is the
    one the receipt recorded (a report of another run, or edited, is not used)."""
    wanted = next((o.sha256 for o in receipt.record.outputs if o.name == PRIVACY_REPORT), None)
    if wanted is None or not RUN_ID.match(receipt.run_id):
        return None
    for folder in outputs:
        for path in (folder / PRIVACY_REPORT, folder / receipt.run_id / PRIVACY_REPORT):
            try:
                data = path.read_bytes()
            except OSError:
                continue
            if hashlib.sha256(data).hexdigest() == wanted:
                report = json.loads(data)
                return report if isinstance(report, dict) else None
    return None


def epsilon_curve(receipt: RunReceipt, outputs: tuple[Path, ...]) -> EpsilonCurve | None:
    """The ε curve of a private run; None for a run without privacy."""
    facts = receipt.record.privacy
    if not facts:
        return None
    found = _trajectory(facts)
    source = "the public run record (ε after each epoch)"
    if found is None:
        report = _decrypted_report(receipt, outputs)
        found = _trajectory(report) if report else None
        source = "the decrypted privacy report (its digest matches the receipt)"
    spent = facts.get("epsilon_spent")
    steps = facts.get("steps")
    if found is None:
        source = "the public run record: only the final ε is published for this run"
        end = float(steps) if isinstance(steps, int | float) else 1.0
        final = float(spent) if isinstance(spent, int | float) else 0.0
        found = ("step", [(0.0, 0.0), (end, final)])
    x_label, points = found
    return EpsilonCurve(
        run_id=receipt.run_id,
        contract_id=receipt.record.contract_id,
        datasets=sorted(receipt.record.datasets),
        epsilon_spent=_opt(spent),
        epsilon_target=_opt(facts.get("epsilon_target")),
        delta=_opt(facts.get("delta")),
        accountant=str(facts["accountant"]) if "accountant" in facts else None,
        noise_multiplier=_opt(facts.get("noise_multiplier")),
        steps=int(steps) if isinstance(steps, int) else None,
        x_label=x_label,
        points=points,
        source=source,
    )


def _opt(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def budgets_view(ws: Workspace, outputs: tuple[Path, ...] = ()) -> BudgetsView:
    problems: list[str] = []
    try:
        budgets = local_budgets(ws)
    except SealroomError as exc:
        budgets, problems = [], [str(exc)]
    with open_ledger(ws) as view:
        budgets += mirrored_budgets(ws, view)
    receipts, unreadable = run_receipts(ws)
    curves = [c for c in (epsilon_curve(r, outputs) for r in receipts) if c is not None]
    return BudgetsView(budgets=budgets, curves=curves, problems=problems + unreadable)
