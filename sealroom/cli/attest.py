"""`sealroom attest`: measurements a release policy pins (the software one of this install, or
a SEV-SNP room image's launch digest), evidence checks, and the vendor collateral cache."""

from __future__ import annotations

from pathlib import Path

import typer

from sealroom.cli.attest_collateral import app as collateral_app
from sealroom.cli.attest_verify import verify
from sealroom.cli.console import JSON_OPTION, console, emit_json, err_console, refusals
from sealroom.errors import AttestationError

app = typer.Typer(
    help="Attestation of clean rooms: measurements, evidence checks, vendor collateral.",
    no_args_is_help=True,
)
app.add_typer(collateral_app, name="collateral")
app.command("verify")(verify)


@app.command()
def measure(
    files: bool = typer.Option(False, "--files", help="Also list the measured files."),
    snp: bool = typer.Option(False, "--snp", help="SEV-SNP launch measurement of a room image."),
    ovmf: Path | None = typer.Option(None, "--ovmf", help="--snp: the OVMF firmware image."),
    kernel: Path | None = typer.Option(None, "--kernel", help="--snp: direct-boot kernel."),
    initrd: Path | None = typer.Option(None, "--initrd", help="--snp: initrd (with --kernel)."),
    append: str | None = typer.Option(
        None, "--append", help="--snp: kernel command line (with --kernel)."
    ),
    vcpus: int | None = typer.Option(None, "--vcpus", help="--snp: number of vCPUs."),
    vcpu_type: str | None = typer.Option(
        None, "--vcpu-type", help="--snp: QEMU vCPU model, e.g. EPYC-v4 or EPYC-Milan."
    ),
    vmm_type: str = typer.Option("QEMU", "--vmm-type", help="--snp: QEMU, ec2 or gce."),
    guest_features: str = typer.Option(
        "0x1", "--guest-features", help="--snp: SEV features of the VMSAs (hex)."
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Print the measurement a room reports, to pin with `keys import --measurement HEX`.

    Without --snp: the software measurement of this installation (INSECURE attester).
    With --snp: the SEV-SNP launch digest of a room image you rebuilt yourself.

    Example: sealroom attest measure --snp --ovmf OVMF.fd --kernel vmlinuz --initrd
    initrd.img --append "console=ttyS0" --vcpus 4 --vcpu-type EPYC-v4
    """
    if snp:
        with refusals():
            _measure_snp(
                ovmf, kernel, initrd, append, vcpus, vcpu_type, vmm_type, guest_features, json_out
            )
        return
    with refusals():
        snp_only = {
            "--ovmf": ovmf,
            "--kernel": kernel,
            "--initrd": initrd,
            "--append": append,
            "--vcpus": vcpus,
            "--vcpu-type": vcpu_type,
        }
        given = [name for name, value in snp_only.items() if value is not None]
        if given:
            raise AttestationError(f"{given[0]} measures a SEV-SNP room image: add --snp")
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


def _measure_snp(
    ovmf: Path | None,
    kernel: Path | None,
    initrd: Path | None,
    append: str | None,
    vcpus: int | None,
    vcpu_type: str | None,
    vmm_type: str,
    guest_features: str,
    json_out: bool,
) -> None:
    from sealroom.attest.launch import (
        LaunchError,
        SnpLaunch,
        launch_report,
        snp_launch_measurement,
    )

    for value, option in ((ovmf, "--ovmf FILE"), (vcpus, "--vcpus N"), (vcpu_type, "--vcpu-type")):
        if value is None:
            raise LaunchError(f"--snp needs {option}")
    try:
        features = int(guest_features, 16)
    except ValueError:
        raise LaunchError(f"--guest-features {guest_features}: not hex") from None
    assert ovmf is not None and vcpus is not None and vcpu_type is not None
    launch = SnpLaunch(ovmf, vcpus, vcpu_type, kernel, initrd, append, vmm_type, features)
    measurement = snp_launch_measurement(launch)
    if json_out:
        emit_json(launch_report(launch, measurement))
        return
    console.print(measurement, highlight=False, soft_wrap=True)
    err_console.print(
        f"SEV-SNP launch measurement of {ovmf.name}"
        + (f" + {kernel.name}" if kernel is not None else "")
        + f", {vcpus} × {vcpu_type} ({vmm_type}); pin it with "
        "`sealroom keys import --tee sev-snp --measurement HEX`",
        highlight=False,
    )


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
