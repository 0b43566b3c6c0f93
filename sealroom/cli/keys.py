"""`sealroom keys`: a provider hands its package's data key to the key service under a policy."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

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


def _owner_key_and_policy(
    package: Path,
    owner: str,
    contract_id: str,
    allow_insecure: bool,
    measurements: list[str],
    expires: datetime | None,
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


def _report_import(policy: ReleasePolicy, owner: str, json_out: bool) -> None:
    from sealroom.attest.software import INSECURE_LABEL

    if json_out:
        emit_json({"owner": owner, **policy.model_dump(mode="json")})
        return
    if policy.allow_insecure:
        err_console.print(f"[bold yellow]{INSECURE_LABEL}: this key may be released to it[/]")
    console.print(
        f"imported key of [bold]{policy.package_digest}[/] for contract "
        f"[bold]{policy.contract_id}[/]; rooms allowed: {', '.join(policy.tee_types)}; "
        f"measurements: {', '.join(m[:16] + '…' for m in policy.measurements)}",
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
        _, data_key, policy = _owner_key_and_policy(
            package, owner, contract_id, allow_insecure, measurements, expires, verb="import"
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
        party, data_key, policy = _owner_key_and_policy(
            package, owner, contract_id, allow_insecure, measurements, expires
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
    rows = [
        {"package_digest": r.package_digest, "owner": r.owner, **r.policy.model_dump(mode="json")}
        for r in records
    ]
    if json_out:
        emit_json(rows)
        return
    if not rows:
        console.print("no keys imported")
    for row in rows:
        insecure = " [yellow](INSECURE software rooms allowed)[/]" if row["allow_insecure"] else ""
        console.print(f"{row['package_digest']}  {row['contract_id']}  {row['owner']}{insecure}")
