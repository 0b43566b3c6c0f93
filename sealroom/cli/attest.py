"""`sealroom attest`: the software measurement of this installation (INSECURE attester)."""

from __future__ import annotations

from pathlib import Path

import typer

from sealroom.cli.console import JSON_OPTION, console, emit_json, err_console, refusals
from sealroom.errors import AttestationError

app = typer.Typer(
    help="Attestation of clean rooms (software attester: INSECURE).", no_args_is_help=True
)


@app.command()
def measure(
    files: bool = typer.Option(False, "--files", help="Also list the measured files."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Print the runtime measurement a software-attested room reports.

    Pass it to `sealroom keys import --measurement HEX` on the key owner's side.

    Example: sealroom attest measure --json
    """
    from sealroom.attest.measure import measure_files, package_root, runtime_files
    from sealroom.attest.software import INSECURE_LABEL

    root = package_root()
    digest = measure_files(root)
    listed = [rel for rel, _ in runtime_files(root)]
    if json_out:
        out: dict[str, object] = {
            "measurement": digest,
            "tee_type": "software",
            "insecure": True,
            "warning": INSECURE_LABEL,
            "n_files": len(listed),
        }
        if files:
            out["files"] = listed
        emit_json(out)
        return
    err_console.print(f"[bold yellow]{INSECURE_LABEL}[/]", highlight=False)
    from sealroom.errors import plural

    console.print(f"measurement [bold]{digest}[/] ({plural(len(listed), 'file')} under {root})")
    if files:
        for rel in listed:
            console.print(f"  {rel}", highlight=False)


@app.command("public-key")
def public_key(
    out: Path = typer.Option(None, "--out", help="Write the key to this file."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Print this workspace's software attestation public key (the room host's).

    A provider running its own key service trusts it with `sealroom attest trust`.

    Example: sealroom attest public-key --out room-attester.pub
    """
    from sealroom.attest.software import attestation_key
    from sealroom.workspace import Workspace

    with refusals():
        key = attestation_key(Workspace.find()).public_b64
    if out is not None:
        out.write_text(key + "\n", encoding="utf-8")
    if json_out:
        emit_json({"public_key": key, "out": str(out) if out is not None else None})
    elif out is not None:
        console.print(f"attestation public key written to {out}", highlight=False)
    else:
        console.print(key, highlight=False, soft_wrap=True)


@app.command()
def trust(
    key_file: Path = typer.Argument(..., help="File holding another host's attestation key."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Accept software evidence from another host (INSECURE: that host can sign anything).

    Example: sealroom attest trust room-attester.pub
    """
    from sealroom.attest.software import INSECURE_LABEL, trust_attester
    from sealroom.workspace import Workspace

    with refusals():
        try:
            key = key_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise AttestationError(f"{key_file}: cannot read an attestation key ({exc})") from None
        trust_attester(Workspace.find(), key)
    err_console.print(f"[bold yellow]{INSECURE_LABEL}[/]", highlight=False)
    if json_out:
        emit_json({"trusted_key": key, "insecure": True, "warning": INSECURE_LABEL})
        return
    console.print(f"software evidence signed by {key[:12]}… is now accepted", highlight=False)
