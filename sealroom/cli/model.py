"""`sealroom model`: the model owner provisions, rotates and retires the model a contract serves.

Each command signs a statement with the owner's key as the contract pins it and records it in
the ledger; the key service releases the model key to a serving room only for the model these
statements make current. Anyone but the contract's model owner is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import typer

from sealroom.cli.console import JSON_OPTION, PASSPHRASE_FILE_OPTION, console, emit_json, refusals

app = typer.Typer(
    help="Served models: provision, rotate, retire (model owner) and show.",
    no_args_is_help=True,
)

ContractOption = typer.Option(..., "--contract", help="Inference contract id.")
OwnerOption = typer.Option(..., "--as", help="The contract's model owner (signs the statement).")


def _emit_recorded(statement: Any, state: Any, receipt: Any) -> None:
    """The `--json` line of a recorded statement: what was signed and what is served now."""
    emit_json(
        {
            "statement": statement.model_dump(mode="json"),
            "ledger_seq": receipt.seq,
            "kind": receipt.kind,
            "serving": state.serving,
            "retired": state.retired,
        }
    )


def _act(
    action: Literal["provision", "rotate", "retire"],
    contract_id: str,
    as_name: str,
    package: str | None,
    json_out: bool,
) -> None:
    from sealroom.contract.provision import provision_model
    from sealroom.workspace import Workspace

    with refusals():
        statement, state, receipt = provision_model(
            Workspace.find(),
            contract_id,
            as_name,
            action,
            package,
        )
    if json_out:
        _emit_recorded(statement, state, receipt)
        return
    done = {
        "provision": f"provisioned {statement.package_digest}",
        "rotate": f"rotated {statement.previous_digest} -> {statement.package_digest}",
        "retire": f"retired {statement.package_digest}; nothing is served under it any more",
    }[action]
    console.print(
        f"contract [bold]{contract_id}[/]: {done} (signed by {as_name}, ledger entry "
        f"{receipt.seq})",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def provision(
    contract_id: str = ContractOption,
    package: str = typer.Option(
        None, "--package", help="Model package digest (default: the contract's model)."
    ),
    as_name: str = OwnerOption,
    passphrase_file: Path | None = PASSPHRASE_FILE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Start serving the contract's model (its package digest, as the contract names it).

    Example: sealroom model provision --contract mnist-serve --package sha256:… --as lab
    """
    _act("provision", contract_id, as_name, package, json_out)


@app.command()
def rotate(
    contract_id: str = ContractOption,
    package: str = typer.Option(..., "--package", help="The new model's package digest."),
    as_name: str = OwnerOption,
    passphrase_file: Path | None = PASSPHRASE_FILE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Replace the served model by a new package (import its key with `keys import`).

    Example: sealroom model rotate --contract mnist-serve --package sha256:… --as lab
    """
    _act("rotate", contract_id, as_name, package, json_out)


@app.command()
def retire(
    contract_id: str = ContractOption,
    as_name: str = OwnerOption,
    passphrase_file: Path | None = PASSPHRASE_FILE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Stop serving for good: no model key is released under the contract afterwards.

    Example: sealroom model retire --contract mnist-serve --as lab
    """
    _act("retire", contract_id, as_name, None, json_out)


@app.command()
def sign(
    contract_id: str = ContractOption,
    action: str = typer.Option(..., "--action", help="provision, rotate or retire."),
    package: str = typer.Option(
        None, "--package", help="Package digest (provision: default the contract's model)."
    ),
    previous: str = typer.Option(None, "--previous", help="rotate: the model it replaces."),
    as_name: str = OwnerOption,
    out: Path = typer.Option(..., "--out", help="Where to write the signed statement."),
    passphrase_file: Path | None = PASSPHRASE_FILE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Sign a statement here, for the key service's workspace to record (`model import`).

    Example: sealroom model sign --contract mnist-serve --action rotate --package sha256:…
    --previous sha256:… --as lab --out rotate.json
    """
    from sealroom.contract.provision import ProvisionError, sign_statement
    from sealroom.workspace import Workspace

    with refusals():
        if action not in ("provision", "rotate", "retire"):
            raise ProvisionError(f"--action {action!r}: use provision, rotate or retire")
        if out.exists():
            raise ProvisionError(f"--out {out}: already exists")
        statement = sign_statement(
            Workspace.find(),
            contract_id,
            as_name,
            action,  # type: ignore[arg-type]  # checked above
            package,
            previous,
        )
        try:
            out.write_text(statement.model_dump_json(indent=2) + "\n")
        except OSError as exc:
            raise ProvisionError(f"--out {out}: cannot write ({exc.strerror})") from None
    if json_out:
        emit_json({"out": str(out), **statement.model_dump(mode="json")})
        return
    console.print(
        f"wrote {out}: {action} {statement.package_digest} for contract {contract_id}, "
        f"signed by {as_name}; record it with `sealroom model import {out.name}`",
        highlight=False,
        soft_wrap=True,
    )


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help="A statement from `sealroom model sign`."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Record a model statement the owner signed in another workspace, once it verifies.

    Example: sealroom model import rotate.json
    """
    from sealroom.contract.provision import import_statement
    from sealroom.workspace import Workspace

    with refusals():
        statement, state, receipt = import_statement(Workspace.find(), file)
    if json_out:
        _emit_recorded(statement, state, receipt)
        return
    console.print(
        f"contract [bold]{statement.contract_id}[/]: {statement.action} "
        f"{statement.package_digest} by {statement.signer} recorded (ledger entry {receipt.seq})",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def show(contract_id: str = ContractOption, json_out: bool = JSON_OPTION) -> None:
    """The model a contract serves, by its owner's verified statements in the ledger.

    Entries that do not verify (not signed by the owner, stale, replayed) are listed as
    ignored: nobody but the owner can change what is served.

    Example: sealroom model show --contract mnist-serve
    """
    from sealroom.contract.provision import ModelStatement, current_model
    from sealroom.contract.store import load_contract
    from sealroom.ledger import Ledger
    from sealroom.workspace import Workspace

    skipped: list[str] = []
    applied: list[tuple[int, ModelStatement]] = []
    with refusals():
        ws = Workspace.find()
        signed = load_contract(ws, contract_id)
        with Ledger.open(ws) as ledger:
            state = current_model(ledger, signed, skipped, applied)
    assert signed.contract.model is not None  # current_model refuses a training contract
    history: list[dict[str, Any]] = [
        {
            "ledger_seq": seq,
            "action": s.action,
            "package_digest": s.package_digest,
            "previous_digest": s.previous_digest,
            "issued_at": s.issued_at.isoformat(),
            "signer": s.signer,
            "statement_id": s.statement_id,
        }
        for seq, s in applied
    ]
    if json_out:
        emit_json(
            {
                "contract": contract_id,
                "owner": signed.contract.model.owner,
                "serving": state.serving,
                "digest": state.digest,
                "retired": state.retired,
                "history": history,
                "ignored": skipped,
            }
        )
        return
    owner = signed.contract.model.owner
    if state.digest is None:
        status = "not provisioned"
    elif state.retired:
        status = f"retired (last model {state.digest})"
    else:
        status = f"serving {state.digest}"
    console.print(
        f"contract [bold]{contract_id}[/] (model owner {owner}): {status}", highlight=False
    )
    for row in history:
        console.print(
            f"  entry {row['ledger_seq']}: {row['action']} {row['package_digest']} "
            f"by {row['signer']} at {row['issued_at']}",
            highlight=False,
            soft_wrap=True,
        )
    for reason in skipped:
        console.print(f"  [yellow]ignored[/] {reason}", highlight=False, soft_wrap=True)
