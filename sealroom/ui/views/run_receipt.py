"""A run's receipt as the dashboard shows it: verified or not (and why), and the outputs the
viewer holds decrypted.

Verified means what ``sealroom receipt verify`` checks, with keys from public files only
(the dashboard never opens the ledger's signing key): the ledger key the run's contract
pins; the ledger's signature and the room's; the ledger holding that entry with a chain
that verifies up to it; and every sealed file against the digest the receipt lists.
Decrypted outputs are looked for only under a verified receipt, in the viewer's output
folders (``sealroom ui --outputs``), and used only when their SHA-256 is the receipt's.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from pydantic import BaseModel

from sealroom.contract.store import contract_exists, load_contract
from sealroom.errors import SealroomError
from sealroom.ledger import Entry, HeadPin, LedgerView
from sealroom.room.failures import one_line
from sealroom.room.receipt import RunReceipt, load_receipt
from sealroom.ui.views.ledger_state import PAGE_WAIT_S, chain_check, ledger_key
from sealroom.workspace import Workspace

PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
MAX_SHOWN_BYTES = 16 << 20  # a decrypted metrics file or plot larger than this is not read
SHOWN_KINDS = ("metrics", "plots", "samples", "privacy_report")


class OutputView(BaseModel):
    name: str
    kind: str
    size: int
    sha256: str
    held: bool = False  # the viewer holds this output decrypted, hash matching the receipt
    looked_for: bool = False  # metrics and plots are; models are never read by the dashboard

    @property
    def is_image(self) -> bool:
        return self.name.endswith(".png")


class ReceiptView(BaseModel):
    """The badge and what the receipt states (every field public: it is in the ledger)."""

    verified: bool
    reason: str  # why not verified, or what was checked
    key_source: str | None = None
    ledger_seq: int | None = None
    pipeline: str | None = None
    pipeline_digest: str | None = None
    contract_digest: str | None = None
    tee_type: str | None = None
    measurement: str | None = None
    insecure: bool | None = None
    sandbox: str | None = None
    consumer: str | None = None
    key_custody: str | None = None
    started: str | None = None
    ended: str | None = None
    public_metrics: dict[str, float] = {}
    privacy: dict[str, float | int | str] = {}
    outputs: list[OutputView] = []


def safe_output_name(name: str) -> bool:
    """An output name that is a plain relative path of ordinary file names."""
    parts = name.split("/")
    return bool(parts) and all(PART.match(p) and p not in (".", "..") for p in parts)


def _trusted_key(ws: Workspace, receipt: RunReceipt) -> tuple[str, str]:
    """(ledger key, where it came from): the one the run's contract pins."""
    record = receipt.record
    if not contract_exists(ws, record.contract_id):
        raise SealroomError(
            f"contract {record.contract_id} is not in this workspace: no trusted ledger key"
        )
    signed = load_contract(ws, record.contract_id)
    if signed.digest != record.contract_digest:
        raise SealroomError(
            f"run {record.run_id} ran under another version of contract {record.contract_id}"
        )
    key = signed.contract.ledger_public_key
    if key is None:
        raise SealroomError(f"contract {record.contract_id} pins no ledger key")
    return key, f"the ledger key contract {record.contract_id} pins"


def _check_in_ledger(ws: Workspace, receipt: RunReceipt, key: str) -> None:
    """The ledger holds the receipt's entry, on a chain that verifies.

    When the pinned key is this ledger's and the ledger page's cached walk (per database
    state) has verified the whole chain, only the entry itself is checked; otherwise the
    chain is walked here (a long ledger's first page load, or another ledger's key).
    """
    pin = HeadPin(receipt.receipt.seq, receipt.receipt.entry_hash)
    if key == ledger_key(ws):
        check = chain_check(ws, wait=PAGE_WAIT_S)
        if check.verified is False:
            raise SealroomError(f"the ledger does not verify: {check.reason}")
        if check.verified and check.public_key == key:
            with LedgerView.open_copy(ws.ledger_db, key) as view:
                if not view.contains(receipt.receipt):
                    raise SealroomError(f"the ledger does not hold entry {pin.seq}")
                problem = view.row_problem(pin.seq)
                entry = view.get(pin.seq)
            if problem is not None:
                raise SealroomError(problem)
            _same_payload(entry, receipt, pin.seq)
            return
    with LedgerView.open_copy(ws.ledger_db, key) as view:
        _same_payload(view.check_entry(pin), receipt, pin.seq)


def _same_payload(entry: Entry | None, receipt: RunReceipt, seq: int) -> None:
    if entry is None or entry.payload_sha256 != receipt.receipt.payload_sha256:
        raise SealroomError(f"ledger entry {seq} records another payload")


def verified_receipt(
    ws: Workspace, run_id: str, folder: Path
) -> tuple[RunReceipt | None, str, str]:
    """(the receipt when it verifies, else None; the reason or what was checked; key source)."""
    try:
        receipt = load_receipt(folder)
    except SealroomError as exc:
        return None, one_line(str(exc).replace(str(folder), f"runs/{run_id}")), ""
    source = ""
    try:
        if receipt.run_id != run_id:
            raise SealroomError(f"receipt.json is the receipt of run {receipt.run_id}")
        key, source = _trusted_key(ws, receipt)
        receipt.verify(key)
        _check_in_ledger(ws, receipt, key)
        receipt.verify_outputs(folder)
    except SealroomError as exc:
        return None, one_line(str(exc).replace(str(folder), f"runs/{run_id}")), source
    return receipt, "ledger and room signatures, ledger entry and sealed files checked", source


def receipt_view(
    ws: Workspace, run_id: str, folder: Path, outputs: tuple[Path, ...]
) -> tuple[ReceiptView, dict[str, bytes]]:
    """The receipt of the run in ``folder``, checked, and the held decrypted outputs worth
    showing; nothing of an unverified receipt but the reason it fails."""
    receipt, reason, source = verified_receipt(ws, run_id, folder)
    if receipt is None:
        return ReceiptView(verified=False, reason=reason, key_source=source or None), {}
    record = receipt.record
    held = held_outputs(receipt, outputs)
    view = ReceiptView(
        verified=True,
        reason=reason,
        key_source=source,
        ledger_seq=receipt.receipt.seq,
        pipeline=record.pipeline,
        pipeline_digest=record.pipeline_digest,
        contract_digest=record.contract_digest,
        tee_type=record.room.tee_type,
        measurement=record.room.measurement,
        insecure=record.insecure,
        sandbox=record.sandbox,
        consumer=record.consumer,
        key_custody=record.key_custody,
        started=record.started,
        ended=record.ended,
        public_metrics={
            k: float(v) for k, v in record.metrics.items() if isinstance(v, int | float)
        },
        privacy={
            k: v
            for k, v in (record.privacy or {}).items()
            if isinstance(v, int | float | str) and not isinstance(v, bool)
        },
        outputs=[
            OutputView(name=o.name, kind=o.kind, size=o.size, sha256=o.sha256, held=o.name in held)
            for o in record.outputs
        ],
    )
    return view, held


def held_outputs(receipt: RunReceipt, folders: tuple[Path, ...]) -> dict[str, bytes]:
    """The decrypted outputs worth showing (metrics, plots) that the viewer holds: the
    plaintext of each, found in ``DIR/<run id>/<name>`` or ``DIR/<name>`` and kept only
    when its SHA-256 is the one the (verified) receipt lists."""
    found: dict[str, bytes] = {}
    for output in receipt.record.outputs:
        if output.kind not in SHOWN_KINDS or not safe_output_name(output.name):
            continue
        if output.size > MAX_SHOWN_BYTES:
            continue
        data = _find_plaintext(receipt.run_id, output.name, output.size, output.sha256, folders)
        if data is not None:
            found[output.name] = data
    return found


def _find_plaintext(
    run_id: str, name: str, size: int, sha256: str, folders: tuple[Path, ...]
) -> bytes | None:
    for root in folders:
        for base in (root / run_id, root):
            path = base.joinpath(*name.split("/"))
            try:
                if not path.is_file() or path.stat().st_size != size:
                    continue
                data = path.read_bytes()
            except OSError:
                continue
            if hashlib.sha256(data).hexdigest() == sha256:
                return data
    return None
