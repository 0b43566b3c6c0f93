"""The consumer's and the auditor's side of a run: verify the receipt, then open outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from sealroom.contract import SignedContract, load_contract
from sealroom.contract.loading import describe_validation
from sealroom.contract.store import contract_exists
from sealroom.crypto.identity import Party
from sealroom.errors import LedgerError, SealroomError, WorkspaceError
from sealroom.files import write_atomic
from sealroom.ledger import HeadPin, Ledger, LedgerView
from sealroom.room.outputs import open_outputs
from sealroom.room.receipt import ReceiptError, RunReceipt, load_receipt, run_dir_of
from sealroom.workspace import Workspace


def _workspace_or_none() -> Workspace | None:
    try:
        return Workspace.find()
    except WorkspaceError:
        return None


@dataclass(frozen=True)
class RunCheck:
    """What ``receipt verify`` established about a run (the terminal and --json say the same).

    ``key_source`` says where the trusted ledger key came from; None means there was none and
    the receipt only agrees with the key it carries itself, which a forger picks. ``ledger`` is
    the ledger database found to hold the receipt's entry, its chain verified up to it.
    """

    receipt: RunReceipt
    outputs_checked: bool
    key_source: str | None
    ledger: Path | None

    @property
    def verified(self) -> bool:
        return self.key_source is not None

    @property
    def reason(self) -> str | None:
        """Why the run is not verified (None when it is)."""
        if self.verified:
            return None
        return (
            f"run {self.receipt.run_id}: no trusted ledger key (no workspace ledger, "
            "--ledger-key, --key-file or signed --contract): the receipt is only self-consistent "
            "(it verifies with the key it carries itself, which whoever wrote it chose)"
        )


def verify_run(
    run: str,
    ledger_key: str | None = None,
    ledger_db: Path | None = None,
    contract_file: Path | None = None,
) -> RunCheck:
    """Check a run receipt with the most trustworthy ledger key and ledger at hand.

    The key: ``ledger_key``, else the one the run's contract pins (a signed ``contract_file``,
    or the workspace's copy of the contract), else the workspace ledger's. The ledger:
    ``ledger_db`` (an auditor's copy) or the workspace's when it is signed with that key; it
    must hold the receipt's entry with a chain that verifies up to it. ReceiptError on any
    refusal; a RunCheck with ``verified`` False when no trusted key exists at all.
    """
    ws = _workspace_or_none()
    run_dir = run_dir_of(ws, run)
    receipt = load_receipt(run_dir)
    key, source = _trusted_key(ws, receipt, ledger_key, contract_file)
    receipt.verify(key)
    checked_in = _check_in_ledger(ws, receipt, key or receipt.ledger_public_key, ledger_db)
    has_files = (run_dir / "outputs.key").exists()
    if has_files:
        receipt.verify_outputs(run_dir)
    return RunCheck(receipt, has_files, source, checked_in)


def _trusted_key(
    ws: Workspace | None, receipt: RunReceipt, given: str | None, contract_file: Path | None
) -> tuple[str | None, str | None]:
    """(key, where it came from); (None, None) when nothing but the receipt names a key."""
    pinned, contract_source = _contract_pin(ws, receipt, contract_file)
    if given is not None:
        key, source = given, "the ledger key given"
    elif pinned is not None:
        key, source = pinned, contract_source
    elif ws is not None and ws.ledger_db.exists():
        with Ledger.open(ws) as ledger:
            key, source = ledger.public_key_b64, f"this workspace's ledger ({ws.ledger_db})"
    else:
        return None, None
    if pinned is not None and key != pinned:
        raise ReceiptError(
            f"run {receipt.run_id}: {contract_source} is {pinned[:12]}…, "
            f"not the ledger key given ({key[:12]}…)"
        )
    return key, source


def _contract_pin(
    ws: Workspace | None, receipt: RunReceipt, contract_file: Path | None
) -> tuple[str | None, str]:
    """The ledger key the run's contract pins, from a signed bundle or the workspace's copy.

    A bundle counts only when every party signed it; either copy only when it is the contract
    the run names (same digest).
    """
    record = receipt.record
    signed: SignedContract | None = None
    if contract_file is not None:
        try:
            signed = SignedContract.model_validate_json(contract_file.read_bytes())
        except OSError as exc:
            raise ReceiptError(f"{contract_file}: cannot read contract ({exc.strerror})") from None
        except ValidationError as exc:
            raise ReceiptError(describe_validation(str(contract_file), exc)) from None
        signed.verify_signatures()
        if signed.digest != record.contract_digest:
            raise ReceiptError(
                f"run {record.run_id}: ran under contract {record.contract_id} "
                f"{record.contract_digest[:19]}…, not {contract_file} ({signed.digest[:19]}…)"
            )
    elif ws is not None and contract_exists(ws, record.contract_id):
        local = load_contract(ws, record.contract_id)
        signed = local if local.digest == record.contract_digest else None
    if signed is None:
        return None, ""
    return signed.contract.ledger_public_key, f"the ledger key contract {signed.id} pins"


def _check_in_ledger(
    ws: Workspace | None, receipt: RunReceipt, key: str, ledger_db: Path | None
) -> Path | None:
    """The ledger that holds the receipt's entry (chain verified up to it), or None when no
    ledger signed with ``key`` is at hand; ReceiptError when one is and lacks the entry."""
    view: LedgerView
    if ledger_db is not None:
        view = LedgerView.open_copy(ledger_db, key)
    elif ws is not None and ws.ledger_db.exists():
        view = Ledger.open(ws)
        if view.public_key_b64 != key:  # another ledger (an auditor's own workspace)
            view.close()
            return None
    else:
        return None
    pin = HeadPin(receipt.receipt.seq, receipt.receipt.entry_hash)
    try:
        with view:
            entry = view.check_entry(pin)
    except LedgerError as exc:
        raise ReceiptError(f"run {receipt.run_id}: {exc}") from None
    if entry.payload_sha256 != receipt.receipt.payload_sha256:
        raise ReceiptError(
            f"run {receipt.run_id}: ledger entry {pin.seq} at {view.path} records another payload"
        )
    return view.path


def decrypt_run(
    ws: Workspace, run: str, party: Party, out: Path, ledger_key: str | None = None
) -> tuple[RunReceipt, list[Path]]:
    """Verify the receipt, its ledger entry and the sealed files, decrypt, write every output."""
    run_dir = run_dir_of(ws, run)
    receipt = load_receipt(run_dir)
    key, _ = _trusted_key(ws, receipt, ledger_key, None)
    if key is None:
        with Ledger.open(ws) as ledger:
            key = ledger.public_key_b64
    receipt.verify(key)
    _check_in_ledger(ws, receipt, key, None)
    receipt.verify_outputs(run_dir)
    record = receipt.record
    if record.consumer != party.name:
        raise ReceiptError(
            f"run {record.run_id}: outputs are sealed to {record.consumer}, not {party.name}"
        )
    if record.consumer_fingerprint != party.identity.fingerprint:
        raise ReceiptError(
            f"run {record.run_id}: sealed to a {record.consumer} key with fingerprint "
            f"{record.consumer_fingerprint}, not this workspace's {party.identity.fingerprint}"
        )
    files = open_outputs(run_dir, record.run_id, record.outputs, party)
    return receipt, _write_all(files, out)


def _write_all(files: dict[str, bytes], out: Path) -> list[Path]:
    written: list[Path] = []
    out.mkdir(parents=True, exist_ok=True)
    for name, data in sorted(files.items()):
        path = out.joinpath(*Path(name).parts)
        if out.resolve() not in path.resolve().parents:
            raise SealroomError(f"output name {name!r} leaves {out}")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)
        written.append(path)
    return written
