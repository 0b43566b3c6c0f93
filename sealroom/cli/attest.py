"""`sealroom attest`: the software measurement of this installation (INSECURE attester)."""

from __future__ import annotations

import typer

from sealroom.attest.measure import package_root, runtime_files
from sealroom.attest.software import INSECURE_LABEL
from sealroom.cli.console import JSON_OPTION, console, emit_json, err_console

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
    from sealroom.attest.measure import measure_files

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
    console.print(f"measurement [bold]{digest}[/] ({len(listed)} files under {root})")
    if files:
        for rel in listed:
            console.print(f"  {rel}", highlight=False)
