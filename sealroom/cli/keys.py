"""`sealroom keys`: a provider hands its package's data key to the key service under a policy."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from sealroom.cli.console import (
    JSON_OPTION,
    PASSPHRASE_FILE_OPTION,
    console,
    emit_json,
    err_console,
    refusals,
)

if TYPE_CHECKING:
    from sealroom.crypto.identity import Party
    from sealroom.kms.models import ReleasePolicy


app = typer.Typer(help="Data keys under release policies (key service).", no_args_is_help=True)


Measurements = typer.Option(
    [], "--measurement", help="Allowed room measurement (hex; repeat; default: this install)."
)
AllowInsecure = typer.Option(
    False, "--allow-insecure", help="Also release to INSECURE software-attested rooms (demo)."
)
Expires = typer.Option(
    None, "--expires", help="Policy expiry (ISO 8601 with zone; default: the contract's)."
)
Tee = typer.Option(
    [], "--tee", help="Hardware TEE allowed: sev-snp or tdx (repeat; default: both)."
)
MinTcb = typer.Option(
    [], "--min-tcb", help="SEV-SNP TCB floor COMPONENT=SVN (bootloader, tee, snp, microcode, fmc)."
)
MaxVmpl = typer.Option(None, "--max-vmpl", help="SEV-SNP: highest VMPL allowed (default 0).")
HostData = typer.Option(None, "--host-data", help="SEV-SNP: required host_data (32 bytes hex).")
Rtmr = typer.Option([], "--rtmr", help="TDX: required RTMR INDEX=HEX (48 bytes; repeat).")
TdxStatus = typer.Option(
    [], "--tdx-status", help="TDX TCB status allowed (repeat; default: UpToDate)."
)
_TERM_OPTIONS = {
    "min_tcb": "--min-tcb",
    "max_vmpl": "--max-vmpl",
    "host_data": "--host-data",
    "rtmrs": "--rtmr",
    "tcb_statuses": "--tdx-status",
}


def _hardware_terms(
    tee: list[str],
    min_tcb: list[str],
    max_vmpl: int | None,
    host_data: str | None,
    rtmr: list[str],
    tdx_status: list[str],
) -> dict[str, Any]:
    """ReleasePolicy fields from the hardware options; KeyImportError names a bad one."""
    from pydantic import ValidationError

    from sealroom.attest.policy import SnpPolicy, TdxPolicy
    from sealroom.kms.models import HARDWARE_TEE_TYPES
    from sealroom.kms.service import KeyImportError

    for name in tee:
        if name not in HARDWARE_TEE_TYPES:
            raise KeyImportError(
                f"--tee {name}: not a hardware TEE (known: {', '.join(HARDWARE_TEE_TYPES)}; "
                "software rooms need --allow-insecure)"
            )
    snp: dict[str, Any] = {
        "min_tcb": dict(_pair(item, "--min-tcb", "COMPONENT=SVN") for item in min_tcb)
    }
    if max_vmpl is not None:
        snp["max_vmpl"] = max_vmpl
    if host_data is not None:
        snp["host_data"] = host_data
    rtmrs: list[str | None] = [None] * 4
    for item in rtmr:
        index, value = _pair(item, "--rtmr", "INDEX=HEX", text_value=True)
        if not 0 <= int(index) <= 3:
            raise KeyImportError(f"--rtmr {item}: TDX has RTMR0..RTMR3")
        rtmrs[int(index)] = str(value)
    while rtmrs and rtmrs[-1] is None:
        rtmrs.pop()
    tdx: dict[str, Any] = {"rtmrs": rtmrs}
    if tdx_status:
        tdx["tcb_statuses"] = tdx_status
    try:
        terms = {"snp": SnpPolicy(**snp), "tdx": TdxPolicy(**tdx)}
    except ValidationError as exc:
        first = exc.errors()[0]
        option = _TERM_OPTIONS.get(str(first["loc"][0]), str(first["loc"][0]))
        message = str(first["msg"]).removeprefix("Value error, ")
        raise KeyImportError(f"{option}: {message}") from None
    return {**terms, "tee_types": list(dict.fromkeys(tee))} if tee else terms


def _pair(item: str, option: str, form: str, text_value: bool = False) -> tuple[str, Any]:
    from sealroom.kms.service import KeyImportError

    key, sep, value = item.partition("=")
    if not sep or not key or not value:
        raise KeyImportError(f"{option} {item}: expected {form}")
    if text_value:
        if not key.isdigit():
            raise KeyImportError(f"{option} {item}: expected {form}")
        return key, value
    if not value.isdigit():
        raise KeyImportError(f"{option} {item}: expected {form} with a whole number")
    return key, int(value)


def _owner_key_and_policy(
    package: Path,
    owner: str,
    contract_id: str,
    allow_insecure: bool,
    measurements: list[str],
    expires: datetime | None,
    terms: dict[str, Any],
    verb: str = "grant",
) -> tuple[Party, bytes, ReleasePolicy]:
    """The owner, its package's data key and the release policy (in the owner's workspace)."""
    from sealroom.attest.measure import measure_runtime
    from sealroom.contract.store import load_contract
    from sealroom.crypto.identity import load_party
    from sealroom.crypto.package import SealedPackage, owner_data_key
    from sealroom.kms.grant import package_owner
    from sealroom.kms.models import ReleasePolicy
    from sealroom.kms.service import KeyImportError
    from sealroom.workspace import Workspace

    ws = Workspace.find()
    claimed = _claimed_owner(package)
    if claimed is not None and claimed != owner:  # the signature check would only say "does
        # not verify"; the manifest's (still unverified) owner name says whose key it is
        raise KeyImportError(
            f"package {package.name} belongs to {claimed}; only {claimed} can {verb} its key "
            f"(--as {owner} is not its owner)"
        )
    party = load_party(ws, owner)
    digest = SealedPackage.open(package, party.identity).digest
    contract = load_contract(ws, contract_id).contract
    named = package_owner(contract, digest)
    if named != owner:
        raise KeyImportError(
            f"contract {contract.id} names {named} as owner of {digest}, not {owner}"
        )
    if expires is not None and expires.tzinfo is None:
        raise KeyImportError("--expires needs a timezone, e.g. 2026-12-31T00:00:00Z")
    policy = ReleasePolicy(
        contract_id=contract_id,
        package_digest=digest,
        measurements=measurements or [measure_runtime()],
        allow_insecure=allow_insecure,
        expires=expires or contract.expires,
        **terms,
    )
    return party, owner_data_key(package, party), policy


def _claimed_owner(package: Path) -> str | None:
    """The owner a package's manifest names, unverified (for the refusal message only);
    None when the manifest is missing or unreadable (SealedPackage.open says why)."""
    try:
        with open(package / "manifest.json", "rb") as handle:
            owner = json.loads(handle.read(1 << 20)).get("owner")
    except (OSError, ValueError, AttributeError):
        return None
    return owner if isinstance(owner, str) else None


def _policy_json(policy: ReleasePolicy) -> dict[str, Any]:
    """The policy with its hardware terms always shown (its stored JSON omits defaults)."""
    return {
        **policy.model_dump(mode="json"),
        "snp": policy.snp.model_dump(mode="json"),
        "tdx": policy.tdx.model_dump(mode="json"),
    }


def _terms_line(policy: ReleasePolicy) -> str:
    """The hardware terms in one line, e.g. ``SEV-SNP: VMPL <= 0, TCB snp>=14; TDX: ...``."""
    snp, tdx = policy.snp, policy.tdx
    snp_terms = [f"VMPL <= {snp.max_vmpl}"]
    snp_terms += [f"TCB {name}>={svn}" for name, svn in sorted(snp.min_tcb.items())]
    if snp.host_data is not None:
        snp_terms.append(f"host_data {snp.host_data[:16]}…")
    tdx_terms = [f"status {'/'.join(tdx.tcb_statuses)}"]
    tdx_terms += [f"RTMR{i} {v[:16]}…" for i, v in enumerate(tdx.rtmrs) if v is not None]
    parts = []
    if "sev-snp" in policy.tee_types:
        parts.append("SEV-SNP: " + ", ".join(snp_terms))
    if "tdx" in policy.tee_types:
        parts.append("TDX: " + ", ".join(tdx_terms))
    return "; ".join(parts) or "no hardware TEE allowed"


def _report_import(policy: ReleasePolicy, owner: str, json_out: bool) -> None:
    from sealroom.attest.software import INSECURE_LABEL

    if json_out:
        emit_json({"owner": owner, **_policy_json(policy)})
        return
    if policy.allow_insecure:
        err_console.print(f"[bold yellow]{INSECURE_LABEL}: this key may be released to it[/]")
    console.print(
        f"imported key of [bold]{policy.package_digest}[/] for contract "
        f"[bold]{policy.contract_id}[/]; rooms allowed: {', '.join(policy.tee_types)}; "
        f"measurements: {', '.join(m[:16] + '…' for m in policy.measurements)}; "
        f"{_terms_line(policy)}",
        highlight=False,
    )


@app.command("import")
def import_(
    package: Path = typer.Argument(..., help="Sealed package folder (<name>.sealed)."),
    owner: str = typer.Option(..., "--as", help="The package's owner (a party in this workspace)."),
    contract_id: str = typer.Option(..., "--contract", help="Contract the key is released under."),
    allow_insecure: bool = AllowInsecure,
    measurements: list[str] = Measurements,
    expires: datetime | None = Expires,
    tee: list[str] = Tee,
    min_tcb: list[str] = MinTcb,
    max_vmpl: int | None = MaxVmpl,
    host_data: str | None = HostData,
    rtmr: list[str] = Rtmr,
    tdx_status: list[str] = TdxStatus,
    passphrase_file: Path | None = PASSPHRASE_FILE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Store the package's data key, releasable only under a contract to matching rooms.

    For a key service in another workspace, use `keys grant` there and `keys import-grant`.

    Example: sealroom keys import mnist.sealed --as hospital --contract mnist-demo --allow-insecure
    """
    from sealroom.kms.service import KeyService
    from sealroom.workspace import Workspace

    with refusals():
        terms = _hardware_terms(tee, min_tcb, max_vmpl, host_data, rtmr, tdx_status)
        _, data_key, policy = _owner_key_and_policy(
            package, owner, contract_id, allow_insecure, measurements, expires, terms, "import"
        )
        with KeyService(Workspace.find()) as service:
            service.import_key(policy.package_digest, data_key, owner, contract_id, policy)
    _report_import(policy, owner, json_out)


@app.command("grant")
def grant(
    package: Path = typer.Argument(..., help="Sealed package folder (<name>.sealed)."),
    owner: str = typer.Option(..., "--as", help="The package's owner (a party in this workspace)."),
    contract_id: str = typer.Option(..., "--contract", help="Contract the key is released under."),
    service: Path = typer.Option(..., "--to", help="The key service's `kms public-key` document."),
    out: Path = typer.Option(..., "--out", help="Where to write the grant (safe to send)."),
    allow_insecure: bool = AllowInsecure,
    measurements: list[str] = Measurements,
    expires: datetime | None = Expires,
    tee: list[str] = Tee,
    min_tcb: list[str] = MinTcb,
    max_vmpl: int | None = MaxVmpl,
    host_data: str | None = HostData,
    rtmr: list[str] = Rtmr,
    tdx_status: list[str] = TdxStatus,
    passphrase_file: Path | None = PASSPHRASE_FILE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Seal the package's data key to a key service elsewhere, with a signed release policy.

    The grant opens only in that service and only imports if the contract names you as the
    package's owner. Example:
    sealroom keys grant mnist.sealed --as hospital --contract mnist-demo --to kms.pub.json
    --out mnist.grant.json --allow-insecure
    """
    from sealroom.kms.grant import KeyGrantError, make_grant

    with refusals():
        if out.exists():
            raise KeyGrantError(f"{out}: already exists; choose another --out")
        try:
            service_key = json.loads(service.read_text())["import_key"]
        except (OSError, ValueError, KeyError, TypeError):
            raise KeyGrantError(f"{service}: not a `sealroom kms public-key` document") from None
        terms = _hardware_terms(tee, min_tcb, max_vmpl, host_data, rtmr, tdx_status)
        party, data_key, policy = _owner_key_and_policy(
            package, owner, contract_id, allow_insecure, measurements, expires, terms
        )
        made = make_grant(party, data_key, policy, service_key)
        out.write_text(made.model_dump_json(indent=2) + "\n")
    if json_out:
        emit_json({"out": str(out), "owner": owner, **policy.model_dump(mode="json")})
        return
    console.print(
        f"wrote {out}: key of {policy.package_digest} for contract {contract_id}", highlight=False
    )


@app.command("import-grant")
def import_grant(
    grant_file: Path = typer.Argument(..., help="A grant from `sealroom keys grant`."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Store a key granted by its owner from another workspace (owner's signature checked).

    Example: sealroom keys import-grant mnist.grant.json
    """
    from sealroom.kms.grant import KeyGrantError, load_grant
    from sealroom.kms.service import KeyService
    from sealroom.workspace import Workspace

    with refusals():
        try:
            granted = load_grant(grant_file)
        except UnicodeDecodeError:
            raise KeyGrantError(f"{grant_file}: not UTF-8 text; not a grant") from None
        except OSError as exc:  # a folder, unreadable, ...: load_grant names only a missing file
            raise KeyGrantError(f"{grant_file}: cannot read ({exc.strerror})") from None
        with KeyService(Workspace.find()) as service:
            service.import_grant(granted)
    _report_import(granted.policy, granted.owner, json_out)


@app.command("list")
def list_(json_out: bool = JSON_OPTION) -> None:
    """List imported keys and their release policies (never the keys).

    Example: sealroom keys list --json
    """
    from sealroom.kms.service import KeyService
    from sealroom.workspace import Workspace

    with refusals():
        ws = Workspace.find()
        with KeyService(ws) as service:
            records = service.keys()
    if json_out:
        emit_json(
            [
                {"package_digest": r.package_digest, "owner": r.owner, **_policy_json(r.policy)}
                for r in records
            ]
        )
        return
    if not records:
        console.print("no keys imported")
    for r in records:
        insecure = (
            " [yellow](INSECURE software rooms allowed)[/]" if r.policy.allow_insecure else ""
        )
        console.print(f"{r.package_digest}  {r.contract_id}  {r.owner}{insecure}")
        console.print(
            f"  rooms: {', '.join(r.policy.tee_types)}; {_terms_line(r.policy)}", highlight=False
        )
