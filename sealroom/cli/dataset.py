"""`sealroom dataset`: the provider declares which records train and which are held out."""

from __future__ import annotations

from pathlib import Path

import typer

from sealroom.cli.console import (
    JSON_OPTION,
    PASSPHRASE_FILE_OPTION,
    console,
    emit_json,
    refusals,
)

app = typer.Typer(
    name="dataset",
    help="Declare a dataset's held-out splits (the provider's side).",
    no_args_is_help=True,
)


@app.command()
def declare(
    draft: Path = typer.Argument(..., help="The declaration (YAML or JSON) the provider wrote."),
    signer: str = typer.Option(..., "--as", help="The dataset's provider, who signs."),
    out: Path = typer.Option(
        None,
        "--out",
        "-o",
        help="Signed declaration file (default: the workspace's declarations/ folder).",
    ),
    package: Path = typer.Option(
        None,
        "--package",
        help="The dataset's sealed package: check that every file the declaration names is in it.",
    ),
    passphrase_file: Path = PASSPHRASE_FILE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Sign a dataset declaration as its provider and print its digest, which the contract
    pins as the dataset's declaration_digest.

    Example: sealroom dataset declare declaration.yaml --as hospital --out mnist.decl.json
    --package mnist.sealed
    """
    from sealroom.crypto.identity import load_party
    from sealroom.pipeline.declaration import (
        read_declaration_draft,
        save_declaration,
        sign_declaration,
    )
    from sealroom.room.declared import declarations_dir
    from sealroom.workspace import Workspace

    with refusals():
        declaration = read_declaration_draft(draft)
        ws = Workspace.find()
        party = load_party(ws, signer)
        if package is not None:
            from sealroom.crypto.package import SealedPackage
            from sealroom.pipeline.package_files import check_declaration_files

            opened = SealedPackage.open(package, party.identity)
            paths = [f.path for f in opened.manifest.files]
            check_declaration_files(declaration, opened.digest, paths)
        signed = sign_declaration(declaration, party)
        name = f"{declaration.dataset}-{signed.digest[7:19]}.json"
        path = out or declarations_dir(ws.home) / name
        save_declaration(path, signed)
    if json_out:
        emit_json({"file": str(path), "digest": signed.digest, "dataset": signed.dataset})
        return
    console.print(f"declaration of dataset [bold]{signed.dataset}[/] signed by {signer} -> {path}")
    console.print(signed.digest, highlight=False, soft_wrap=True)


@app.command()
def show(
    file: Path = typer.Argument(..., help="A signed dataset declaration."),
    contract: str = typer.Option(
        None,
        "--contract",
        help="Also check it is the declaration this contract pins, signed by the provider "
        "it lists.",
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Verify a signed declaration (against the signer's identity in this workspace, or the
    contract's pin) and print how each split is made.

    Example: sealroom dataset show mnist.decl.json --contract dp-mnist-demo
    """
    from sealroom.contract.store import load_contract
    from sealroom.crypto.identity import load_identity
    from sealroom.pipeline.declaration import (
        DeclarationError,
        check_signature,
        load_signed_declaration,
        verify_declaration,
    )
    from sealroom.workspace import Workspace

    with refusals():
        signed = load_signed_declaration(file)
        ws = Workspace.find()
        if contract is None:
            identity = load_identity(ws, signed.signer)
            check_signature(signed, identity.signing_key, f"{signed.signer}'s signing key")
            checked = f"signature of {signed.signer} verified"
        else:
            terms = load_contract(ws, contract).contract
            try:
                ref = terms.dataset(signed.dataset)
            except KeyError:
                raise DeclarationError(
                    f"contract {contract} has no dataset {signed.dataset!r}"
                ) from None
            verify_declaration(
                signed,
                provider=ref.provider,
                signing_key=terms.party(ref.provider).signing_key,
                pinned=ref.declaration_digest,
            )
            checked = f"signed by {ref.provider} and pinned by contract {contract}"
    if json_out:
        emit_json(
            {
                "digest": signed.digest,
                "signer": signed.signer,
                "verified": checked,
                "declaration": signed.declaration.model_dump(mode="json"),
            }
        )
        return
    console.print(f"[bold]{signed.digest}[/] — {checked}", highlight=False, soft_wrap=True)
    console.print(signed.declaration.describe(), highlight=False, soft_wrap=True)
