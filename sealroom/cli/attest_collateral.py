"""`sealroom attest collateral`: the vendor documents a key owner fetched once, cached so that
verification never goes online (AMD KDS certificates and CRLs; Intel PCS collateral)."""

from __future__ import annotations

from pathlib import Path

import typer

from sealroom.cli.console import JSON_OPTION, console, emit_json, refusals

app = typer.Typer(
    help="The workspace's cache of vendor certificates, CRLs and TDX collateral.",
    no_args_is_help=True,
)


@app.command("add")
def add(
    files: list[Path] = typer.Argument(..., help="PEM/DER certificates or CRLs; TDX JSON."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Check and store vendor collateral: SEV-SNP certificates and CRLs (VCEK, VLEK, ASK,
    ASVK, CRLs; PEM or DER), or a dcap-qvl QuoteCollateralV3 JSON for one TDX FMSPC.

    Each file is checked before any is stored; a private key or other document is refused.

    Example: sealroom attest collateral add vcek.der cert_chain.pem tdx-b0c06f000000.json
    """
    from sealroom.attest.collateral import add_documents
    from sealroom.workspace import Workspace

    with refusals():
        ws = Workspace.find()
        added = add_documents(ws, files)
    if json_out:
        emit_json([entry.model_dump(mode="json") for entry in added])
        return
    for path, entry in zip(files, added, strict=True):
        what = f"FMSPC {entry.fmspc}" if entry.tee_type == "tdx" else entry.kind
        console.print(f"{path} → {entry.path} ({entry.tee_type}: {what})", highlight=False)


@app.command("list")
def list_(json_out: bool = JSON_OPTION) -> None:
    """List the cached collateral with what it is and when it expires.

    Example: sealroom attest collateral list --json
    """
    from sealroom.attest.collateral import list_collateral
    from sealroom.workspace import Workspace

    with refusals():
        entries = list_collateral(Workspace.find())
    if json_out:
        emit_json([entry.model_dump(mode="json") for entry in entries])
        return
    if not entries:
        console.print("no collateral cached (add some with `sealroom attest collateral add`)")
    for entry in entries:
        until = entry.not_after.isoformat() if entry.not_after else "no expiry"
        what = f"FMSPC {entry.fmspc}" if entry.tee_type == "tdx" else "; ".join(entry.subjects)
        console.print(f"{entry.path}  {entry.tee_type}  until {until}  {what}", highlight=False)
