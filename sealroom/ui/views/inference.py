"""The Inference page's data: served models, their rooms and committed receipt batches.

Everything comes from the workspace's contracts and its ledger, read with the ledger key
each contract PINS (``ledger_public_key``), as a client or an auditor would check it: the
dashboard never loads the ledger's private key. Per-client usage (``inference.charged``
entries) is left out on purpose: those totals are not public (docs/inference.md), only the
budget the parties signed is shown.
"""

from __future__ import annotations

from pydantic import BaseModel

from sealroom.contract.inference import InferenceTerms
from sealroom.contract.provision import ModelStatement, current_model
from sealroom.contract.signed import SignedContract
from sealroom.contract.store import load_contract
from sealroom.errors import SealroomError
from sealroom.ledger import LedgerView
from sealroom.ledger.entries import Entry
from sealroom.serve.launcher import serving_url_path
from sealroom.ui.views.contracts import contract_ids
from sealroom.workspace import Workspace


class ModelEvent(BaseModel):
    """One verified model statement (provision, rotate, retire) as the ledger recorded it."""

    seq: int
    recorded_at: str
    action: str
    digest: str
    previous: str | None
    signer: str


class Limits(BaseModel):
    """The serving terms every party signed."""

    open: bool
    clients: list[str]
    output: str
    query_budget: int | None
    requests_per_second: float
    burst: int
    max_examples_per_request: int
    max_batch_size: int
    max_body_bytes: int
    request_timeout_s: float


class ServedModel(BaseModel):
    """An inference contract, what it serves now and how to reach its live room."""

    contract_id: str
    purpose: str
    owner: str
    registered: bool
    ledger_key: str | None  # the key the contract pins; None: nothing below is verified
    digest: str | None  # current model (the last verified statement's package)
    retired: bool
    provisioned_at: str | None
    provisioned_by: str | None
    history: list[ModelEvent]
    skipped: list[str]  # ledger statements that did not verify, with the reason
    problem: str | None  # why the history could not be read at all
    limits: Limits
    usage: str  # where per-client usage is kept, and why it is not shown
    announced: bool  # ``sealroom serve`` left its URL file: a room may be live


class RoomInstance(BaseModel):
    """One serving room's life, from its ``inference.started`` and ``inference.stopped``."""

    instance: str
    started_seq: int
    started_at: str
    model_digest: str
    room_key: str
    stopped_at: str | None
    stop_reason: str | None
    attestation: str  # what the startup evidence proves, or why it does not


class Commitment(BaseModel):
    """One ``inference.receipts`` entry: batch roots the room signed and the ledger recorded."""

    seq: int
    recorded_at: str
    instance: str
    room_key: str
    batches: int
    receipts: int
    first_root: str | None
    signature_ok: bool  # entry hash and ledger signature, with the contract's pinned key
    chain_ok: bool  # the ledger's chain verifies up to and past this entry
    room_ok: bool  # signed by the room key its instance attested at start
    problem: str | None


class ChainStatus(BaseModel):
    ok: bool
    entries: int
    first_bad: int | None
    message: str


class InferenceOverview(BaseModel):
    models: list[ServedModel]
    unreadable: list[str] = []  # contracts that do not load (the Contracts page says why)


class InferenceDetail(BaseModel):
    model: ServedModel
    chain: ChainStatus
    instances: list[RoomInstance]
    commitments: list[Commitment]  # newest first, at most COMMITMENTS_SHOWN
    commitments_total: int
    receipts_total: int
    verify: list[str]  # how a client checks one of its receipts (commands)


# ------------------------------------------------------------------- gathering


def overview(ws: Workspace) -> InferenceOverview:
    """Every contract with inference terms; one damaged contract file hides no other."""
    models, unreadable = [], []
    for contract_id in contract_ids(ws):
        try:
            signed = load_contract(ws, contract_id)
        except SealroomError:
            unreadable.append(contract_id)
            continue
        if signed.contract.inference is not None:
            models.append(served_model(ws, signed))
    return InferenceOverview(models=models, unreadable=unreadable)


def served_model(ws: Workspace, signed: SignedContract) -> ServedModel:
    contract = signed.contract
    terms = contract.inference
    assert terms is not None and contract.model is not None
    key = contract.ledger_public_key
    history: list[ModelEvent] = []
    skipped: list[str] = []
    problem: str | None = None
    digest, retired = None, False
    if key is None:
        problem = "the contract pins no ledger key: its model statements cannot be verified"
    elif not ws.ledger_db.exists():
        problem = "this workspace has no ledger"
    else:
        applied: list[tuple[int, ModelStatement]] = []
        try:
            with LedgerView.open_copy(ws.ledger_db, key) as ledger:
                state = current_model(ledger, signed, skipped, applied)
                times = {e.seq: e.timestamp for e in _entries_at(ledger, [s for s, _ in applied])}
            digest, retired = state.digest, state.retired
            history = [
                ModelEvent(
                    seq=seq,
                    recorded_at=times.get(seq, ""),
                    action=statement.action,
                    digest=statement.package_digest,
                    previous=statement.previous_digest,
                    signer=statement.signer,
                )
                for seq, statement in applied
            ]
        except SealroomError as exc:
            problem = f"model history unreadable: {exc}"
    # the statement that put the current model in place (its retire, if any, comes after)
    current = next((e for e in reversed(history) if e.action != "retire"), None)
    limits = terms.limits
    return ServedModel(
        contract_id=signed.id,
        purpose=contract.purpose,
        owner=contract.model.owner,
        registered=signed.receipt is not None,
        ledger_key=key,
        digest=digest,
        retired=retired,
        provisioned_at=current.recorded_at if current else None,
        provisioned_by=current.signer if current else None,
        history=history,
        skipped=skipped,
        problem=problem,
        limits=Limits(
            open=terms.open,
            clients=[c.name for c in terms.clients],
            output=_output(terms),
            query_budget=terms.query_budget,
            requests_per_second=limits.requests_per_second,
            burst=limits.burst,
            max_examples_per_request=limits.max_examples_per_request,
            max_batch_size=limits.max_batch_size,
            max_body_bytes=limits.max_body_bytes,
            request_timeout_s=limits.request_timeout_s,
        ),
        usage=(
            "per-client usage is in the ledger's inference.charged entries; not shown here "
            "(it is not public: it would tell one client another's usage)"
        ),
        announced=serving_url_path(ws, signed.id).is_file(),
    )


def _output(terms: InferenceTerms) -> str:
    """What a client learns per example, in words."""
    policy = terms.output
    if policy.kind == "label":
        return "label only"
    scores = f"scores to {policy.decimals} decimals"
    if policy.kind == "top_k":
        return f"top {policy.k} classes, {scores}"
    return f"all classes, {scores}"


def _entries_at(ledger: LedgerView, seqs: list[int]) -> list[Entry]:
    return [e for e in (ledger.get(seq) for seq in seqs) if e is not None]


def of_contract(entries: list[Entry], contract_id: str) -> list[Entry]:
    return [e for e in entries if e.payload.get("contract_id") == contract_id]


def receipt_count(entry: Entry) -> int:
    batches = entry.payload.get("batches")
    if not isinstance(batches, list):
        return 0
    sizes = (b.get("size") for b in batches if isinstance(b, dict))
    return sum(s for s in sizes if isinstance(s, int) and not isinstance(s, bool) and s > 0)


def verify_commands(contract_id: str) -> list[str]:
    """How a client gets and checks its receipts (docs/inference-protocol.md)."""
    return [
        f"sealroom infer --url URL --contract {contract_id} --as CLIENT "
        "--receipts receipts/ input.npy",
        "sealroom receipt verify receipts/input.receipt.json [--contract bundle.json] "
        "[--ledger ledger.db]",
    ]
