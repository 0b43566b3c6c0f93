"""`sealroom receipt verify`: anyone checks a run against a ledger key they trust, and against
the ledger itself whenever one is at hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from sealroom.cli.console import JSON_OPTION, console, emit_json, err_console, refusals
from sealroom.errors import LedgerError, SealroomError

app = typer.Typer(help="Run receipts (auditor side).", no_args_is_help=True)


@app.command()
def verify(
    run: str = typer.Argument(..., help="Run id, run folder or receipt.json."),
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

    Example: sealroom receipt verify runs/run-20261123T090000-a1b2c3 --key-file ledger.pub
    """
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
