"""`sealroom receipt verify`: anyone checks a run offline (ledger public key + receipt file)."""

from __future__ import annotations

from pathlib import Path

import typer

from sealroom.cli.console import JSON_OPTION, console, emit_json, refusals

app = typer.Typer(help="Run receipts (auditor side).", no_args_is_help=True)


@app.command()
def verify(
    run: str = typer.Argument(..., help="Run id, run folder or receipt.json."),
    ledger_key: str = typer.Option(
        None, "--ledger-key", help="Trusted ledger public key (base64)."
    ),
    key_file: Path = typer.Option(None, "--key-file", help="File holding the ledger public key."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Check a run receipt: ledger signature, recorded payload and the sealed outputs' digests.

    Without --ledger-key/--key-file the key of the workspace's ledger is trusted (or, with no
    workspace, the key inside the receipt, which only proves the file is self-consistent).

    Example: sealroom receipt verify runs/run-20261123T090000-a1b2c3 --key-file ledger.pub
    """
    from sealroom.room.consumer import verify_run

    with refusals():
        key = ledger_key or (key_file.read_text().strip() if key_file else None)
        receipt, checked_files, trusted = verify_run(run, key)
    record = receipt.record
    if json_out:
        emit_json(
            {
                "verified": True,
                "trusted_key": trusted,
                "outputs_checked": checked_files,
                **record.model_dump(mode="json"),
                "ledger_seq": receipt.receipt.seq,
            }
        )
        return
    console.print(
        f"run [bold]{record.run_id}[/] verified: ledger entry {receipt.receipt.seq}, "
        f"contract {record.contract_id}, pipeline {record.pipeline_digest[:19]}…",
        highlight=False,
    )
    console.print(
        f"  room {record.room.tee_type} measurement {record.room.measurement[:16]}…"
        + (" [yellow]insecure: true[/]" if record.insecure else ""),
        highlight=False,
    )
    console.print(f"  {record.started} → {record.ended}", highlight=False)
    for output in record.outputs:
        console.print(f"  {output.name} ({output.kind}, {output.size} bytes)", highlight=False)
    if not checked_files:
        console.print("  [yellow]sealed files not found beside the receipt: digests not checked[/]")
    if not trusted:
        console.print(
            "  [yellow]no trusted ledger key given: checked with the key inside the receipt[/]"
        )
