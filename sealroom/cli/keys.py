"""`sealroom keys`: a provider hands its package's data key to the key service under a policy."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from sealroom.cli.console import console, emit_json, err_console, refusals

app = typer.Typer(help="Data keys under release policies (key service).", no_args_is_help=True)


@app.command("import")
def import_(
    package: Path = typer.Argument(..., help="Sealed package folder (<name>.sealed)."),
    owner: str = typer.Option(..., "--as", help="The package's owner (a party in this workspace)."),
    contract_id: str = typer.Option(..., "--contract", help="Contract the key is released under."),
    allow_insecure: bool = typer.Option(
        False, "--allow-insecure", help="Also release to INSECURE software-attested rooms (demo)."
    ),
    measurements: list[str] = typer.Option(
        [], "--measurement", help="Allowed room measurement (hex; repeat; default: this install)."
    ),
    expires: datetime | None = typer.Option(
        None, "--expires", help="Policy expiry (ISO 8601 with zone; default: the contract's)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Store the package's data key, releasable only under a contract to matching rooms.

    Example: sealroom keys import mnist.sealed --as hospital --contract mnist-demo --allow-insecure
    """
    from sealroom.attest.measure import measure_runtime
    from sealroom.attest.software import INSECURE_LABEL
    from sealroom.contract.store import load_contract
    from sealroom.crypto.identity import load_party
    from sealroom.crypto.package import SealedPackage, owner_data_key
    from sealroom.kms.models import ReleasePolicy
    from sealroom.kms.service import KeyImportError, KeyService
    from sealroom.workspace import Workspace

    with refusals():
        ws = Workspace.find()
        party = load_party(ws, owner)
        sealed = SealedPackage.open(package, party.identity)
        digest = sealed.digest
        contract = load_contract(ws, contract_id).contract
        _check_owner_named(contract, digest, owner)
        data_key = owner_data_key(package, party)
        if expires is not None and expires.tzinfo is None:
            raise KeyImportError("--expires needs a timezone, e.g. 2026-12-31T00:00:00Z")
        policy = ReleasePolicy(
            contract_id=contract_id,
            package_digest=digest,
            measurements=measurements or [measure_runtime()],
            allow_insecure=allow_insecure,
            expires=expires or contract.expires,
        )
        with KeyService(ws) as service:
            service.import_key(digest, data_key, owner, contract_id, policy)
    if json_out:
        emit_json({"package_digest": digest, "owner": owner, **policy.model_dump(mode="json")})
        return
    if allow_insecure:
        err_console.print(f"[bold yellow]{INSECURE_LABEL}: this key may be released to it[/]")
    console.print(
        f"imported key of [bold]{digest}[/] for contract [bold]{contract_id}[/]; "
        f"rooms allowed: {', '.join(policy.tee_types)}; measurements: "
        f"{', '.join(m[:16] + '…' for m in policy.measurements)}",
        highlight=False,
    )


@app.command("list")
def list_(json_out: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
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


def _check_owner_named(contract: object, digest: str, owner: str) -> None:
    from sealroom.contract.schema import Contract
    from sealroom.kms.service import KeyImportError

    assert isinstance(contract, Contract)
    owners = {d.package_digest: d.provider for d in contract.datasets}
    if contract.model is not None:
        owners[contract.model.package_digest] = contract.model.owner
    if digest not in owners:
        raise KeyImportError(f"contract {contract.id} does not name package {digest}")
    if owners[digest] != owner:
        raise KeyImportError(
            f"contract {contract.id} names {owners[digest]} as owner of {digest}, not {owner}"
        )
