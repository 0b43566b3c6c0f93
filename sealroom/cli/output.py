"""`sealroom output decrypt`: the consumer checks a run's receipt and opens its outputs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from sealroom.cli.console import JSON_OPTION, PASSPHRASE_FILE_OPTION, console, emit_json, refusals

if TYPE_CHECKING:
    from sealroom.workspace import Workspace


app = typer.Typer(help="Outputs of clean-room runs (consumer side).", no_args_is_help=True)


@app.command()
def decrypt(
    run: str = typer.Argument(..., help="Run id (in this workspace) or run folder."),
    as_name: str = typer.Option(..., "--as", help="The consumer the outputs are sealed to."),
    out: Path = typer.Option(..., "--out", help="Folder to write the decrypted outputs to."),
    ledger_key: str = typer.Option(
        None, "--ledger-key", help="Trusted ledger public key (default: this workspace's ledger)."
    ),
    passphrase_file: Path | None = PASSPHRASE_FILE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Verify the run receipt and sealed files, then decrypt the outputs into --out.

    A failed run whose contract allows failure details has no receipt, only the details
    sealed to the consumer: they are decrypted into --out/error.txt.

    Example: sealroom output decrypt run-20261123T090000-a1b2c3 --as lab --out results/
    """
    from sealroom.crypto.identity import load_party
    from sealroom.crypto.rotation import party_for
    from sealroom.room.consumer import decrypt_run
    from sealroom.room.details import ERROR_FILE, load_note, open_details
    from sealroom.room.receipt import RECEIPT_FILE, run_dir_of
    from sealroom.workspace import Workspace

    with refusals():
        ws = Workspace.find()
        party = load_party(ws, as_name)
        run_dir = run_dir_of(ws, run)
        note = None if (run_dir / RECEIPT_FILE).exists() else load_note(run_dir)
        if note is not None:
            text = open_details(run_dir, note, party)
            out.mkdir(parents=True, exist_ok=True)
            (out / ERROR_FILE).write_text(text, encoding="utf-8")
            console.print(
                f"run [bold]{note.run_id}[/] failed ({note.reason}); no receipt. "
                f"Failure details decrypted to [bold]{out / ERROR_FILE}[/]",
                highlight=False,
            )
            return
        sealed_to = _sealed_to(ws, run)
        if sealed_to and sealed_to != party.identity.fingerprint:
            party = party_for(ws, as_name, sealed_to)  # a run from before a rotation
        receipt, written = decrypt_run(ws, run, party, out, ledger_key)
    from sealroom.errors import plural

    if json_out:
        emit_json({"run_id": receipt.run_id, "out": str(out), "files": [str(p) for p in written]})
        return
    console.print(
        f"receipt of run [bold]{receipt.run_id}[/] verified (ledger entry {receipt.receipt.seq}); "
        f"{plural(len(written), 'output')} decrypted to [bold]{out}[/]",
        highlight=False,
    )
    for path in written:
        console.print(f"  {path}", highlight=False)


def _sealed_to(ws: Workspace, run: str) -> str | None:
    """The consumer key fingerprint a run's outputs are sealed to; None if unreadable (then
    decrypt_run reports what is wrong)."""
    from sealroom.errors import SealroomError
    from sealroom.room.receipt import load_receipt, run_dir_of

    try:
        return load_receipt(run_dir_of(ws, run)).record.consumer_fingerprint
    except SealroomError:
        return None
