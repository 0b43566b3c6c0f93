"""`sealroom receipt verify`: anyone checks a run (or a saved inference receipt) against a
ledger key they trust, and against the ledger itself whenever one is at hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from sealroom.cli.console import JSON_OPTION, console, emit_json, err_console, refusals
from sealroom.errors import LedgerError, SealroomError

if TYPE_CHECKING:
    from sealroom.attest.evidence import Claims
    from sealroom.contract import SignedContract
    from sealroom.serve.receipts import Check, ReceiptProof
    from sealroom.workspace import Workspace

app = typer.Typer(help="Run receipts (auditor side).", no_args_is_help=True)


@app.command()
def verify(
    run: str = typer.Argument(
        ..., help="Run id, run folder, receipt.json, or a saved inference receipt (JSON)."
    ),
    ledger_key: str = typer.Option(
        None, "--ledger-key", help="Trusted ledger public key (base64)."
    ),
    key_file: Path = typer.Option(None, "--key-file", help="File holding the ledger public key."),
    ledger_db: Path = typer.Option(
        None, "--ledger", help="A copy of the ledger (ledger.db) that must hold the run's entry."
    ),
    contract: Path = typer.Option(
        None,
        "--contract",
        help="The run's contract bundle (`contract export`); trusts the ledger key it pins.",
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Check a run receipt: ledger signature, recorded payload, the entry in the ledger, and the
    sealed outputs' digests.

    The ledger key trusted is --ledger-key/--key-file, else the one the run's contract pins
    (--contract, or the workspace's copy), else the workspace ledger's. The workspace ledger (or
    --ledger) must hold the receipt's entry with an intact chain up to it: a rolled-back or
    replaced ledger is caught. With no trusted key at all the command prints UNVERIFIED and
    exits 1: a receipt checked only with the key it carries proves nothing.

    An inference receipt (the ``receipt`` a sealed response carries, saved as JSON, with the
    ledger commitment once fetched) is checked offline: its leaf in the signed Merkle root,
    the batch signature by the room key, the room's evidence binding that key to the model and
    contract, and the ledger entry listing the root. Each check is printed with its result.

    Example: sealroom receipt verify runs/run-20261123T090000-a1b2c3 --key-file ledger.pub
    """
    with refusals():
        proof = _inference_proof(run)
        if proof is not None:
            given = ledger_key or (_read_key(key_file) if key_file else None)
    if proof is not None:
        _verify_inference(proof, given, ledger_db, contract, json_out)
        return

    from sealroom.room.consumer import verify_run

    with refusals():
        try:
            key = ledger_key or (_read_key(key_file) if key_file else None)
            check = verify_run(run, key, ledger_db, contract)
        except SealroomError as exc:
            if json_out:  # the refusal as data too; the one line still goes to stderr
                emit_json({"run": run, "verified": False, "reason": str(exc)})
            raise
    receipt = check.receipt
    record = receipt.record
    if json_out:
        report: dict[str, Any] = {
            **record.model_dump(mode="json"),
            "verified": check.verified,
            "reason": check.reason,
            "trusted_key": check.verified,
            "key_source": check.key_source,
            "ledger_checked": str(check.ledger) if check.ledger else None,
            "outputs_checked": check.outputs_checked,
            "ledger_seq": receipt.receipt.seq,
            "entry_hash": receipt.receipt.entry_hash,
        }
        emit_json(report)
    if not check.verified:
        err_console.print(f"UNVERIFIED: {check.reason}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    if json_out:
        return
    console.print(
        f"run [bold]{record.run_id}[/] verified: ledger entry {receipt.receipt.seq}, "
        f"contract {record.contract_id}, pipeline {record.pipeline_digest[:19]}…",
        highlight=False,
    )
    console.print(f"  ledger key: {check.key_source}", highlight=False)
    if check.ledger is not None:
        console.print(
            f"  entry {receipt.receipt.seq} is in the ledger at {check.ledger}, "
            "chain intact up to it",
            highlight=False,
        )
    else:
        console.print(
            "  [yellow]no copy of that ledger at hand: entry not looked up "
            "(give --ledger ledger.db)[/]",
            highlight=False,
        )
    console.print(
        f"  room {record.room.tee_type} measurement {record.room.measurement[:16]}…"
        + (" [yellow]insecure: true[/]" if record.insecure else ""),
        highlight=False,
    )
    console.print(
        f"  sandbox: {record.sandbox}; key custody: {record.key_custody}", highlight=False
    )
    console.print(f"  {record.started} → {record.ended}", highlight=False)
    for output in record.outputs:
        console.print(f"  {output.name} ({output.kind}, {output.size} bytes)", highlight=False)
    if not check.outputs_checked:
        console.print("  [yellow]sealed files not found beside the receipt: digests not checked[/]")


def _read_key(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise LedgerError(f"{path}: cannot read ledger public key ({exc.strerror})") from None


# --- inference receipts (sealroom serve) ------------------------------------------------------


def _inference_proof(arg: str) -> ReceiptProof | None:
    """The saved inference receipt at ``arg``; None when it is a run (id, folder, receipt)."""
    from pydantic import ValidationError

    from sealroom.contract.loading import describe_validation
    from sealroom.room.receipt import RECEIPT_FILE
    from sealroom.serve.receipts import InferenceReceiptError, ReceiptProof

    path = Path(arg)
    if not path.is_file() or path.name == RECEIPT_FILE:
        return None  # a run id, a run folder or a run's receipt.json
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or "batch" not in data or "attestation" not in data:
        raise InferenceReceiptError(
            f"{path}: not an inference receipt (a JSON object with batch and attestation) "
            f"and not a run's {RECEIPT_FILE}"
        )
    try:
        return ReceiptProof.model_validate(data)
    except ValidationError as exc:
        raise InferenceReceiptError(describe_validation(str(path), exc)) from None


def _verify_inference(
    proof: ReceiptProof,
    given_key: str | None,
    ledger_db: Path | None,
    contract_file: Path | None,
    json_out: bool,
) -> None:
    """Print every check of an inference receipt; exit 1 with one line on the first failure."""
    from sealroom.serve.receipts import check_receipt_proof

    checks: list[Check] = []
    with refusals():
        signed, contract_source = _inference_contract(proof, contract_file)
        key, key_source = _inference_ledger_key(signed, contract_source, given_key)
    proof_checks, claims = check_receipt_proof(proof, ledger_public_key=key)
    checks.extend(proof_checks)
    if signed is not None:
        checks.append(_policy_check(signed, claims))
    if proof.ledger is not None and key is not None:
        copy = _ledger_copy_check(proof, key, ledger_db)
        if copy is not None:
            checks.append(copy)
    failed = next((c for c in checks if not c.ok), None)
    receipt = proof.receipt
    if json_out:
        emit_json(
            {
                "verified": failed is None,
                "reason": None if failed is None else f"{failed.name}: {failed.detail}",
                "checks": [vars(c) for c in checks],
                "committed": proof.ledger is not None,
                "key_source": key_source,
                "receipt": receipt.model_dump(mode="json"),
            }
        )
    else:
        verdict = "[green]verified[/]" if failed is None else "[red]NOT verified[/]"
        console.print(
            f"inference receipt {receipt.sequence} of {receipt.instance} "
            f"(contract {receipt.contract_id}): {verdict}",
            highlight=False,
            soft_wrap=True,
        )
        for check in checks:
            mark = "[green]ok[/]  " if check.ok else "[red]FAIL[/]"
            console.print(f"  {mark} {check.name}: {check.detail}", highlight=False, soft_wrap=True)
        console.print(
            f"  ledger key: {key_source or 'none trusted'}", highlight=False, soft_wrap=True
        )
        if proof.ledger is None:
            console.print(
                "  [yellow]not yet committed: fetch the ledger commitment of its root "
                "(GET /v1/commitments/<root>) to prove it was logged[/]",
                highlight=False,
                soft_wrap=True,
            )
        if receipt.insecure:
            console.print(
                "  [yellow]insecure: true (software attestation, no TEE)[/]", soft_wrap=True
            )
    if failed is not None:
        err_console.print(
            f"UNVERIFIED: {failed.name}: {failed.detail}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(1)


def _inference_contract(
    proof: ReceiptProof, contract_file: Path | None
) -> tuple[SignedContract | None, str]:
    """The contract the receipt names: a fully signed bundle, else the workspace's copy."""
    from pydantic import ValidationError

    from sealroom.contract import SignedContract, load_contract
    from sealroom.contract.loading import describe_validation
    from sealroom.contract.store import contract_exists
    from sealroom.serve.receipts import InferenceReceiptError

    receipt = proof.receipt
    if contract_file is not None:
        try:
            signed = SignedContract.model_validate_json(contract_file.read_bytes())
        except OSError as exc:
            raise InferenceReceiptError(
                f"{contract_file}: cannot read contract ({exc.strerror})"
            ) from None
        except ValidationError as exc:
            raise InferenceReceiptError(describe_validation(str(contract_file), exc)) from None
        signed.verify_signatures()
        if signed.digest != receipt.contract_digest:
            raise InferenceReceiptError(
                f"the receipt names contract {receipt.contract_id} {receipt.contract_digest[:19]}…,"
                f" not {contract_file} ({signed.digest[:19]}…)"
            )
        return signed, f"contract {signed.id} ({contract_file})"
    ws = _workspace_or_none()
    if ws is not None and contract_exists(ws, receipt.contract_id):
        local = load_contract(ws, receipt.contract_id)
        if local.digest == receipt.contract_digest:
            return local, f"contract {local.id} (this workspace)"
    return None, ""


def _inference_ledger_key(
    signed: SignedContract | None, contract_source: str, given: str | None
) -> tuple[str | None, str | None]:
    """(ledger key, where it came from): given, else the contract's pin, else the workspace's."""
    from sealroom.ledger import Ledger
    from sealroom.serve.receipts import InferenceReceiptError

    pinned = signed.contract.ledger_public_key if signed is not None else None
    if given is not None:
        if pinned is not None and pinned != given:
            raise InferenceReceiptError(
                f"{contract_source} pins ledger key {pinned[:12]}…, not the one given "
                f"({given[:12]}…)"
            )
        return given, "the ledger key given"
    if pinned is not None:
        return pinned, f"the ledger key {contract_source} pins"
    ws = _workspace_or_none()
    if ws is not None and ws.ledger_db.exists():
        with Ledger.open(ws) as ledger:
            return ledger.public_key_b64, f"this workspace's ledger ({ws.ledger_db})"
    return None, None


def _policy_check(signed: SignedContract, claims: Claims | None) -> Check:
    from sealroom.serve.attestation import check_room_policy
    from sealroom.serve.receipts import Check

    if claims is None:
        return Check("contract room policy", False, "no verified evidence to check")
    try:
        check_room_policy(claims, signed)
    except SealroomError as exc:
        return Check("contract room policy", False, str(exc))
    return Check("contract room policy", True, f"measurement allowed by contract {signed.id}")


def _ledger_copy_check(proof: ReceiptProof, key: str, ledger_db: Path | None) -> Check | None:
    """The commitment entry in a copy of the ledger (chain verified up to it), when one is
    at hand: --ledger, else the workspace's ledger if it is signed with the trusted key."""
    from sealroom.ledger import HeadPin, Ledger, LedgerView
    from sealroom.serve.receipts import Check

    assert proof.ledger is not None
    ws = _workspace_or_none()
    view: LedgerView
    if ledger_db is not None:
        view = LedgerView.open_copy(ledger_db, key)
    elif ws is not None and ws.ledger_db.exists():
        view = Ledger.open(ws)
        if view.public_key_b64 != key:
            view.close()
            return None
    else:
        return None
    try:
        with view:
            entry = view.check_entry(HeadPin(proof.ledger.seq, proof.ledger.entry_hash))
            where = view.path
    except SealroomError as exc:
        return Check("ledger copy", False, str(exc))
    if entry.payload_sha256 != proof.ledger.payload_sha256:
        return Check("ledger copy", False, f"entry {entry.seq} at {where} records another payload")
    return Check("ledger copy", True, f"entry {entry.seq} is in {where}, chain intact up to it")


def _workspace_or_none() -> Workspace | None:
    from sealroom.errors import WorkspaceError
    from sealroom.workspace import Workspace

    try:
        return Workspace.find()
    except WorkspaceError:
        return None
