"""`sealroom contract ...`: propose, sign, show and verify multi-party contracts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from sealroom.cli.console import JSON_OPTION, PASSPHRASE_FILE_OPTION, console, emit_json, refusals
from sealroom.errors import ContractError

if TYPE_CHECKING:
    from sealroom.contract import SignedContract
    from sealroom.contract.schema import Contract


app = typer.Typer(help="Propose, sign and verify contracts between parties.", no_args_is_help=True)


def _summary(signed: SignedContract) -> dict[str, Any]:
    contract = signed.contract
    receipt = signed.receipt
    return {
        "id": signed.id,
        "digest": signed.digest,
        "purpose": contract.purpose,
        "parties": [
            {"name": p.name, "role": p.role, "signed": p.name in signed.signatures}
            for p in contract.parties
        ],
        "missing_signers": signed.missing_signers,
        "datasets": [d.model_dump(mode="json") for d in contract.datasets],
        "consumer": contract.consumer,
        "not_before": contract.not_before.isoformat(),
        "expires": contract.expires.isoformat(),
        "ledger_public_key": contract.ledger_public_key,
        "inference": contract.inference.model_dump(mode="json") if contract.inference else None,
        "registered": receipt is not None,
        "receipt": receipt.model_dump(mode="json") if receipt else None,
    }


def _status_line(signed: SignedContract) -> str:
    if signed.receipt is not None:
        return f"registered in the ledger (entry {signed.receipt.seq})"
    return "waiting for: " + ", ".join(signed.missing_signers)


@app.command()
def propose(
    file: Path = typer.Argument(..., help="Contract draft, JSON or YAML."),
    as_name: str = typer.Option(..., "--as", help="The proposing party (signs the draft)."),
    ledger_key: str = typer.Option(
        None, "--ledger-key", help="Pin this ledger (base64 public key) if the draft names none."
    ),
    ledger_key_file: Path = typer.Option(
        None, "--ledger-key-file", help="Pin the ledger whose public key is in this file."
    ),
    passphrase_file: Path | None = PASSPHRASE_FILE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Register a contract draft in the workspace and sign it as its proposer.

    Party keys left out of the draft are taken from the workspace's identities. The contract
    pins the ledger that registers it (ledger_public_key): the draft's, else the one given,
    else this workspace's. Only that ledger will register it.

    Example: sealroom contract propose docs/contract-template.yaml --as lab
    """
    from sealroom.contract import propose_contract
    from sealroom.workspace import Workspace

    with refusals():
        if ledger_key is None and ledger_key_file is not None:
            ledger_key = _read_key(ledger_key_file)
        signed = propose_contract(Workspace.find(), file, as_name, ledger_key=ledger_key)
    if json_out:
        emit_json(_summary(signed))
        return
    console.print(f"contract [bold]{signed.id}[/] proposed by {as_name}; {_status_line(signed)}")


@app.command()
def sign(
    contract_id: str = typer.Argument(..., metavar="ID", help="Contract id."),
    as_name: str = typer.Option(..., "--as", help="The signing party."),
    passphrase_file: Path | None = PASSPHRASE_FILE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Sign a proposed contract; the last signature registers it in the ledger.

    Example: sealroom contract sign mnist-demo --as hospital
    """
    from sealroom.contract import sign_contract
    from sealroom.workspace import Workspace

    with refusals():
        signed = sign_contract(Workspace.find(), contract_id, as_name)
    if json_out:
        emit_json(_summary(signed))
        return
    console.print(f"contract [bold]{signed.id}[/] signed by {as_name}; {_status_line(signed)}")


@app.command()
def show(
    contract_id: str = typer.Argument(..., metavar="ID", help="Contract id."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Show a contract: parties and who signed, datasets, validity, registration.

    Example: sealroom contract show mnist-demo --json
    """
    from rich.table import Table

    from sealroom.contract import load_contract
    from sealroom.workspace import Workspace

    with refusals():
        signed = load_contract(Workspace.find(), contract_id)
    if json_out:
        emit_json({**_summary(signed), "contract": signed.contract.model_dump(mode="json")})
        return
    contract = signed.contract
    console.print(f"[bold]{signed.id}[/]  {signed.digest}")
    console.print(f"purpose: {contract.purpose}")
    console.print(f"valid: {contract.not_before.isoformat()} .. {contract.expires.isoformat()}")
    table = Table("party", "role", "signed")
    for party in contract.parties:
        table.add_row(party.name, party.role, "yes" if party.name in signed.signatures else "no")
    console.print(table)
    for dataset in contract.datasets:
        dp = dataset.privacy
        terms = f", ε={dp.per_run_epsilon}/run of {dp.total_epsilon}" if dp else ""
        console.print(
            f"dataset {dataset.id} from {dataset.provider}: {dataset.package_digest}{terms}"
        )
    if contract.inference is not None:
        _show_inference(contract)
    else:
        console.print(
            f"outputs to {contract.consumer}: {', '.join(contract.constraints.released_outputs)}"
        )
    if contract.ledger_public_key is not None:
        console.print(f"ledger: {contract.ledger_public_key}", highlight=False)
    if contract.constraints.pipeline_digest:
        console.print(f"pipeline pinned: {contract.constraints.pipeline_digest}", soft_wrap=True)
    if contract.constraints.max_runs:
        console.print(f"runs: at most {contract.constraints.max_runs} per package")
    console.print(_status_line(signed))


def _show_inference(contract: Contract) -> None:
    """The serving terms, as a client or the model owner reads them."""
    terms = contract.inference
    assert terms is not None and contract.model is not None  # the schema requires the model
    console.print(
        f"serves model {contract.model.package_digest} (owner {contract.model.owner}; "
        "`sealroom model show` for the one provisioned now)",
        highlight=False,
        soft_wrap=True,
    )
    who = "anyone (open, anonymous)" if terms.open else ", ".join(c.name for c in terms.clients)
    output = terms.output
    shown = {
        "label": "label only",
        "top_k": f"top {output.k} classes, scores to {output.decimals} decimals",
        "probabilities": f"all class scores to {output.decimals} decimals",
    }[output.kind]
    budget = terms.query_budget
    shared = " (shared)" if terms.open else " per client"
    limits = terms.limits
    console.print(f"clients: {who}", highlight=False)
    console.print(f"output: {shown}", highlight=False)
    console.print(
        "budget: " + (f"{budget} examples{shared}" if budget is not None else "unlimited"),
        highlight=False,
    )
    name = terms.input.name or "(the only input)"
    console.print(
        f"input: {name} {terms.input.dtype}{terms.input.shape} per example, at most "
        f"{limits.max_examples_per_request} per request, {limits.max_body_bytes} bytes",
        highlight=False,
    )


@app.command()
def verify(
    contract_id: str = typer.Argument(..., metavar="ID", help="Contract id."),
    ledger_key: str = typer.Option(
        None, "--ledger-key", help="Verify offline against this ledger public key (base64)."
    ),
    ledger_key_file: Path = typer.Option(
        None, "--ledger-key-file", help="Verify offline against the key in this file."
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Check signatures, validity window and ledger registration (receipt verified offline).

    Without a ledger key the workspace's own ledger must also hold the registration entry.

    Example: sealroom contract verify mnist-demo --ledger-key-file ledger.pub
    """
    from sealroom.contract import load_contract, verify_contract
    from sealroom.contract.revocation import check_stored_revocations
    from sealroom.workspace import Workspace

    with refusals():
        ws = Workspace.find()
        if ledger_key is None and ledger_key_file is not None:
            ledger_key = _read_key(ledger_key_file)
        if ledger_key is None:
            signed = verify_contract(ws, contract_id)
        else:
            signed = load_contract(ws, contract_id)
            signed.verify(ledger_key)
            check_stored_revocations(ws, signed.contract)
    assert signed.receipt is not None  # both checks refuse unregistered contracts
    if json_out:
        emit_json({**_summary(signed), "verified": True})
        return
    from sealroom.errors import plural

    console.print(
        f"contract [bold]{signed.id}[/] verified: {plural(len(signed.signatures), 'signature')}, "
        f"in force until {signed.contract.expires.isoformat()}, "
        f"ledger entry {signed.receipt.seq}"
    )


@app.command()
def export(
    contract_id: str = typer.Argument(..., metavar="ID", help="Contract id."),
    out: Path = typer.Option(..., "--out", help="Bundle file to write (JSON)."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Write the contract with its signatures and receipt, for parties in other workspaces.

    Example: sealroom contract export mnist-demo --out mnist-demo.contract.json
    """
    from sealroom.contract import load_contract
    from sealroom.workspace import Workspace

    with refusals():
        signed = load_contract(Workspace.find(), contract_id)
        try:
            out.write_text(signed.model_dump_json(indent=2) + "\n")
        except OSError as exc:
            raise ContractError(f"{out}: cannot write ({exc.strerror})") from None
    if json_out:
        emit_json({**_summary(signed), "out": str(out)})
        return
    console.print(f"contract [bold]{signed.id}[/] written to {out}; {_status_line(signed)}")


@app.command("import")
def import_(
    bundle: Path = typer.Argument(..., help="A bundle from `contract export`."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Merge a contract bundle signed elsewhere; registers it once every party has signed.

    Example: sealroom contract import mnist-demo.contract.json
    """
    from sealroom.contract import import_contract
    from sealroom.workspace import Workspace

    with refusals():
        signed = import_contract(Workspace.find(), bundle)
    if json_out:
        emit_json(_summary(signed))
        return
    console.print(f"contract [bold]{signed.id}[/] imported; {_status_line(signed)}")


def _read_key(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ContractError(f"{path}: cannot read ledger public key ({exc.strerror})") from None


@app.command("list")
def list_(json_out: bool = JSON_OPTION) -> None:
    """List the contracts in the workspace and whether they are registered.

    Example: sealroom contract list --json
    """
    from sealroom.contract import list_contracts
    from sealroom.workspace import Workspace

    with refusals():
        contracts = list_contracts(Workspace.find())
    if json_out:
        emit_json([_summary(c) for c in contracts])
        return
    for signed in contracts:
        console.print(f"{signed.id}: {_status_line(signed)}")


@app.command()
def revoke(
    contract_id: str = typer.Argument(..., metavar="ID", help="Contract id."),
    as_name: str = typer.Option(..., "--as", help="The revoking party (any party of it)."),
    reason: str = typer.Option(None, "--reason", help="Why (recorded, max 500 characters)."),
    out: Path = typer.Option(
        None, "--out", help="Also write the signed revocation here, for other workspaces."
    ),
    passphrase_file: Path | None = PASSPHRASE_FILE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Withdraw your consent: no key service releases a key under the contract any more.

    The revocation is signed with your key, kept beside the contract and in the ledger
    (`contract.revoked`). Send the --out file to every key service that holds keys for
    the contract (`contract import-revocation`).

    Example: sealroom contract revoke mnist-demo --as hospital --out mnist-demo.revoked.json
    """
    from sealroom.contract.workflow import revoke_contract
    from sealroom.workspace import Workspace

    with refusals():
        if out is not None and out.exists():
            raise ContractError(f"--out {out}: already exists")
        revocation = revoke_contract(Workspace.find(), contract_id, as_name, reason)
        if out is not None:
            out.write_text(revocation.model_dump_json(indent=2) + "\n")
    if json_out:
        emit_json(revocation.model_dump(mode="json"))
        return
    console.print(
        f"contract [bold]{contract_id}[/] revoked by {revocation.party} at {revocation.when}"
        + (f"; revocation written to {out}" if out else ""),
        highlight=False,
    )


@app.command("import-revocation")
def import_revocation(
    file: Path = typer.Argument(..., help="A revocation from `contract revoke --out`."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Accept a revocation made in another workspace (checked against the contract's keys).

    Example: sealroom contract import-revocation mnist-demo.revoked.json
    """
    from sealroom.contract.workflow import import_revocation as accept
    from sealroom.workspace import Workspace

    with refusals():
        revocation = accept(Workspace.find(), file)
    if json_out:
        emit_json(revocation.model_dump(mode="json"))
        return
    console.print(
        f"contract [bold]{revocation.contract_id}[/]: revocation by {revocation.party} at "
        f"{revocation.when} imported; no key is released under it here any more",
        highlight=False,
    )
