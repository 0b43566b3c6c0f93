"""The consumer's and the auditor's side of a run: verify the receipt, then open outputs."""

from __future__ import annotations

from pathlib import Path

from sealroom.crypto.identity import Party
from sealroom.errors import SealroomError, WorkspaceError
from sealroom.files import write_atomic
from sealroom.ledger import Ledger
from sealroom.room.outputs import open_outputs
from sealroom.room.receipt import ReceiptError, RunReceipt, load_receipt, run_dir_of
from sealroom.workspace import Workspace


def _workspace_or_none() -> Workspace | None:
    try:
        return Workspace.find()
    except WorkspaceError:
        return None


def verify_run(run: str, ledger_key: str | None = None) -> tuple[RunReceipt, bool, bool]:
    """The verified receipt, whether the sealed files were checked, whether the key was trusted.

    The trusted key is ``ledger_key`` or the workspace ledger's; the key inside the receipt is
    used only when neither exists (the receipt is then merely self-consistent).
    """
    ws = _workspace_or_none()
    run_dir = run_dir_of(ws, run)
    receipt = load_receipt(run_dir)
    trusted = ledger_key
    if trusted is None and ws is not None and ws.ledger_db.exists():
        with Ledger.open(ws) as ledger:
            trusted = ledger.public_key_b64
    receipt.verify(trusted)
    has_files = (run_dir / "outputs.key").exists()
    if has_files:
        receipt.verify_outputs(run_dir)
    return receipt, has_files, trusted is not None


def decrypt_run(
    ws: Workspace, run: str, party: Party, out: Path, ledger_key: str | None = None
) -> tuple[RunReceipt, list[Path]]:
    """Verify the receipt and the sealed files, decrypt, write every output under ``out``."""
    run_dir = run_dir_of(ws, run)
    receipt = load_receipt(run_dir)
    if ledger_key is None:
        with Ledger.open(ws) as ledger:
            ledger_key = ledger.public_key_b64
    receipt.verify(ledger_key)
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
