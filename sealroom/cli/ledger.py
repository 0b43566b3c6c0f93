"""`sealroom ledger ...`: verify the chain, read entries, export the key auditors need."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from sealroom.cli.console import JSON_OPTION, console, emit_json, refusals
from sealroom.errors import LedgerError

if TYPE_CHECKING:
    from sealroom.ledger import LedgerView


app = typer.Typer(help="Inspect and verify the append-only ledger.", no_args_is_help=True)


LEDGER_OPTION = typer.Option(
    None, "--ledger", help="A copy of ledger.db to read instead of the workspace's (read-only)."
)
KEY_OPTION = typer.Option(None, "--key", help="Ledger public key (base64), for --ledger.")
KEY_FILE_OPTION = typer.Option(None, "--key-file", help="File holding the ledger public key.")


def _open(db: Path | None, key: str | None, key_file: Path | None) -> LedgerView:
    """The workspace's ledger, or a copy checked against the public key given for it."""
    from sealroom.ledger import Ledger, LedgerView
    from sealroom.workspace import Workspace

    public = _public_key(key, key_file)
    if db is None:
        ledger = Ledger.open(Workspace.find())
        if public is not None and public != ledger.public_key_b64:
            ledger.close()
            raise LedgerError(
                f"the workspace's ledger {ledger.path} is signed with another key than the one "
                "given; pass its copy with --ledger"
            )
        return ledger
    if public is None:
        raise LedgerError(f"{db}: give the ledger public key with --key or --key-file")
    return LedgerView.open_copy(db, public)


def _public_key(key: str | None, key_file: Path | None) -> str | None:
    if key is not None or key_file is None:
        return key
    try:
        return key_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise LedgerError(f"{key_file}: cannot read ledger public key ({exc.strerror})") from None


@app.command()
def verify(
    expect_head: str = typer.Option(
        None,
        "--expect-head",
        metavar="SEQ:HASH",
        help="Fail unless the ledger holds this entry (a head pinned earlier with `ledger head`).",
    ),
    db: Path = LEDGER_OPTION,
    key: str = KEY_OPTION,
    key_file: Path = KEY_FILE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Walk the hash chain; name the first edited, deleted, reordered or inserted entry.

    The chain alone cannot show a tail cut off together with the head pointer, or a ledger
    replaced by an empty one: pin the head (`sealroom ledger head`) and pass it back with
    --expect-head, which fails unless that entry is still there (a longer ledger is fine).

    Example: sealroom ledger verify --expect-head "$(cat ledger.head)"
    """
    from sealroom.ledger import parse_pin

    with refusals():
        pin = parse_pin(expect_head) if expect_head is not None else None
        with _open(db, key, key_file) as ledger:
            head = ledger.verified_head(pin)
            public = ledger.public_key_b64
    count = head.seq if head else 0
    if json_out:
        emit_json(
            {
                "verified": True,
                "entries": count,
                "head": str(head) if head else None,
                "expected_head": str(pin) if pin else None,
                "public_key": public,
            }
        )
        return
    from sealroom.errors import plural

    console.print(f"ledger verified: {plural(count, 'entry')}, chain and signatures intact")
    console.print(f"head: {head if head else '(empty ledger)'}", highlight=False)
    if pin is not None:
        console.print(f"pinned entry {pin.seq} is in the ledger", highlight=False)


@app.command()
def head(
    db: Path = LEDGER_OPTION,
    key: str = KEY_OPTION,
    key_file: Path = KEY_FILE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Verify the chain and print its head as SEQ:HASH, for anyone to pin and check later.

    Example: sealroom ledger head > ledger.head
    """
    with refusals():
        with _open(db, key, key_file) as ledger:
            pin = ledger.verified_head()
        if pin is None:
            raise LedgerError("the ledger is empty: there is no head to pin yet")
    if json_out:
        emit_json({"head": str(pin), "seq": pin.seq, "entry_hash": pin.entry_hash})
    else:
        console.print(str(pin), highlight=False, soft_wrap=True)


@app.command()
def show(
    kind: str = typer.Option(None, "--kind", help="Only entries of this kind."),
    last: int = typer.Option(0, "--last", help="Only the last N entries (0: all)."),
    json_out: bool = JSON_OPTION,
    json_lines: bool = typer.Option(
        False, "--jsonl", help="One JSON object per line (for grep, jq -c, streaming)."
    ),
) -> None:
    """Print ledger entries in full, one block each (not verified; run `ledger verify`).

    Each block: seq, kind, time, who acted (when the payload names them) and the whole
    payload, one `key: value` line per field (nested values as indented JSON).

    Example: sealroom ledger show --kind contract.registered --json
    """
    from sealroom.ledger import Ledger
    from sealroom.workspace import Workspace

    with refusals(), Ledger.open(Workspace.find()) as ledger:
        entries = ledger.entries(kind)
    if last > 0:
        entries = entries[-last:]
    if json_out:
        emit_json([e.model_dump(mode="json") for e in entries])
        return
    if json_lines:
        for entry in entries:
            print(json.dumps(entry.model_dump(mode="json"), sort_keys=True))
        return
    if not entries:
        console.print(f"no ledger entries{f' of kind {kind}' if kind else ''}", highlight=False)
        return
    for i, entry in enumerate(entries):
        if i:
            console.print()
        for line in entry_lines(entry.seq, entry.kind, entry.timestamp, entry.payload):
            console.print(line, markup=False, highlight=False)
        console.print(f"  entry hash: {entry.entry_hash}", markup=False, highlight=False)


# Payload fields that name who acted, in the order they are looked for.
ACTOR_KEYS = ("actor", "by", "signer", "party", "requester", "consumer", "provider", "owner")


def entry_lines(seq: int, kind: str, timestamp: str, payload: dict[str, Any]) -> list[str]:
    """A readable block for one entry: a header line, then every payload field in full."""
    actor = next((payload[k] for k in ACTOR_KEYS if isinstance(payload.get(k), str)), None)
    when = timestamp[:19].replace("T", " ") + " UTC"
    header = f"#{seq}  {kind}  {when}" + (f"  by {actor}" if actor else "")
    lines = [header]
    for key in sorted(payload):
        value = payload[key]
        if isinstance(value, dict | list) and value:
            lines.append(f"  {key}:")
            text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
            lines += [f"    {row}" for row in text.splitlines()]
        else:
            shown = value if isinstance(value, str) else json.dumps(value)
            lines.append(f"  {key}: {shown}")
    return lines


@app.command("public-key")
def public_key(
    out: Path = typer.Option(None, "--out", help="Also write the key to this file."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Print the ledger's Ed25519 public key (base64), which auditors use to check receipts.

    Example: sealroom ledger public-key --out ledger.pub
    """
    from sealroom.ledger import Ledger
    from sealroom.workspace import Workspace

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
    from sealroom.ledger import Receipt

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
