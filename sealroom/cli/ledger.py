"""`sealroom ledger ...`: verify the chain, read entries, export the key auditors need."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from sealroom.cli.console import JSON_OPTION, console, emit_json, refusals
from sealroom.errors import LedgerError
from sealroom.ledger import Ledger, Receipt
from sealroom.workspace import Workspace

app = typer.Typer(help="Inspect and verify the append-only ledger.", no_args_is_help=True)


@app.command()
def verify(json_out: bool = JSON_OPTION) -> None:
    """Walk the hash chain; name the first edited, deleted, reordered or inserted entry.

    Example: sealroom ledger verify
    """
    with refusals(), Ledger.open(Workspace.find()) as ledger:
        count = ledger.verify()
        public = ledger.public_key_b64
    if json_out:
        emit_json({"verified": True, "entries": count, "public_key": public})
    else:
        console.print(f"ledger verified: {count} entries, chain and signatures intact")


@app.command()
def show(
    kind: str = typer.Option(None, "--kind", help="Only entries of this kind."),
    last: int = typer.Option(0, "--last", help="Only the last N entries (0: all)."),
    json_out: bool = JSON_OPTION,
) -> None:
    """List ledger entries (not verified; run `ledger verify` for that).

    Example: sealroom ledger show --kind contract.registered --json
    """
    with refusals(), Ledger.open(Workspace.find()) as ledger:
        entries = ledger.entries(kind)
    if last > 0:
        entries = entries[-last:]
    if json_out:
        emit_json([e.model_dump(mode="json") for e in entries])
        return
    table = Table("seq", "time (UTC)", "kind", "payload", "hash")
    for column in (0, 1, 2, 4):
        table.columns[column].no_wrap = True
    for entry in entries:
        payload = json.dumps(entry.payload, sort_keys=True)
        table.add_row(
            str(entry.seq),
            entry.timestamp[:19].replace("T", " "),
            entry.kind,
            payload if len(payload) <= 80 else payload[:77] + "...",
            entry.entry_hash[:12],
        )
    console.print(table)


@app.command("public-key")
def public_key(
    out: Path = typer.Option(None, "--out", help="Also write the key to this file."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Print the ledger's Ed25519 public key (base64), which auditors use to check receipts.

    Example: sealroom ledger public-key --out ledger.pub
    """
    with refusals(), Ledger.open(Workspace.find()) as ledger:
        key = ledger.public_key_b64
    if out is not None:
        out.write_text(key + "\n")
    if json_out:
        emit_json({"public_key": key})
    else:
        console.print(key, highlight=False)


@app.command("check-receipt")
def check_receipt(
    receipt_file: Path = typer.Argument(..., metavar="RECEIPT", help="A receipt (JSON)."),
    key: str = typer.Option(None, "--key", help="Ledger public key (base64)."),
    key_file: Path = typer.Option(None, "--key-file", help="File holding the ledger public key."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Check a receipt offline against the ledger public key; no workspace needed.

    Example: sealroom ledger check-receipt contracts/mnist-demo.receipt.json --key-file ledger.pub
    """
    with refusals():
        if key is None and key_file is None:
            raise LedgerError("give the ledger public key with --key or --key-file")
        public = key if key is not None else key_file.read_text().strip()
        try:
            receipt = Receipt.model_validate_json(receipt_file.read_text())
        except (OSError, ValueError) as exc:
            first = str(exc).splitlines()[0]
            raise LedgerError(f"{receipt_file}: not a readable receipt ({first})") from None
        receipt.verify(public)
    if json_out:
        emit_json({"verified": True, **receipt.model_dump(mode="json")})
    else:
        console.print(f"receipt verified: ledger entry {receipt.seq} ({receipt.kind})")
