"""`sealroom package`: what a sealed package holds, said by its owner's signed data card.

``package card`` (the provider) builds a card from the cleartext folder that was sealed and
a draft YAML, signs it and writes ``<name>.sealed/card.json``. ``package show`` (anyone)
verifies the manifest and the card against the owner's identity in the workspace and
prints files, sources, splits, statistics and whether mock data are offered.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from sealroom.cli.console import (
    JSON_OPTION,
    PASSPHRASE_FILE_OPTION,
    console,
    emit_json,
    refusals,
)

if TYPE_CHECKING:
    from sealroom.crypto.package import SealedPackage
    from sealroom.pipeline.card import CardSource, DataCard

app = typer.Typer(
    name="package",
    help="Describe sealed packages: signed data cards (file names, schemas, splits).",
    no_args_is_help=True,
)


@app.command()
def card(
    data_dir: Path = typer.Argument(..., help="The cleartext folder that was sealed."),
    package: Path = typer.Option(..., "--package", help="The sealed package folder (X.sealed)."),
    draft: Path = typer.Option(..., "--draft", help="The card draft (YAML) the provider wrote."),
    signer: str = typer.Option(..., "--as", help="The package's owner, who signs the card."),
    declaration_file: Path = typer.Option(
        None,
        "--declaration",
        help="The owner's signed dataset declaration (`dataset declare`) to carry on the card "
        "(instead of the draft's declaration: field).",
    ),
    passphrase_file: Path = PASSPHRASE_FILE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Build, sign and store the data card of a sealed package (PACKAGE/card.json).

    Example: sealroom package card data/mnist --package mnist.sealed --draft card.yaml --as hospital
    """
    from sealroom.crypto.identity import load_party
    from sealroom.crypto.package import SealedPackage
    from sealroom.data.card_build import build_card, read_draft
    from sealroom.pipeline.card_signing import CardError, save_card, sign_card
    from sealroom.pipeline.declaration import check_signature, load_signed_declaration
    from sealroom.workspace import Workspace

    with refusals():
        spec = read_draft(draft)
        ws = Workspace.find()
        named = SealedPackage.read_manifest(package).owner
        if named != signer:
            raise CardError(
                f"package {package.name} belongs to {named}; only {named} can sign its card"
            )
        owner = load_party(ws, signer)
        opened = SealedPackage.open(package, owner.identity)
        declaration = None
        if declaration_file is None and spec.declaration is not None:
            declaration_file = draft.parent / spec.declaration
        if declaration_file is not None:
            signed_declaration = load_signed_declaration(declaration_file)
            check_signature(
                signed_declaration, owner.identity.signing_key, f"{signer}'s signing key"
            )
            declaration = signed_declaration.declaration
        built, loaded = build_card(spec, data_dir, opened.manifest, opened.digest, declaration)
        if spec.statistics:
            from sealroom.data.card_stats import release_statistics, with_statistics
            from sealroom.ledger import Ledger

            asked = [(s.name, s.source, s.epsilon) for s in spec.statistics]
            with Ledger.open(ws) as ledger:
                built = with_statistics(built, release_statistics(ledger, built, asked, loaded))
        del loaded
        signed = sign_card(built, owner)
        path = save_card(package, signed)
    if json_out:
        emit_json({"card": str(path), "digest": signed.digest, "package_digest": opened.digest})
        return
    console.print(
        f"card of dataset [bold]{built.dataset}[/] signed by {signer} -> {path}", soft_wrap=True
    )
    console.print(signed.digest, highlight=False, soft_wrap=True)


@app.command()
def show(
    package: Path = typer.Argument(..., help="A sealed package folder (X.sealed)."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Verify a package's manifest and card against its owner's identity in this workspace
    and print what it holds: files, sources (records, shape, dtype, range, label names),
    declared splits, statistics and whether mock data are offered.

    Example: sealroom package show mnist.sealed
    """
    from sealroom.crypto.package import SealedPackage
    from sealroom.pipeline.card import CARD_FILE
    from sealroom.pipeline.card_signing import load_signed_card, verify_card
    from sealroom.pipeline.package_check import package_owner
    from sealroom.workspace import Workspace

    with refusals():
        ws = Workspace.find()
        owner = package_owner(ws, package)
        opened = SealedPackage.open(package, owner)
        data_card, card_digest = None, None
        if (package / CARD_FILE).exists():
            signed = load_signed_card(package)
            data_card = verify_card(signed, owner, opened.manifest, opened.digest)
            card_digest = signed.digest
    if json_out:
        emit_json(
            {
                "package": str(package),
                "owner": owner.name,
                "digest": opened.digest,
                "files": [{"path": f.path, "size": f.size} for f in opened.manifest.files],
                "card": data_card.model_dump(mode="json") if data_card else None,
                "card_digest": card_digest,  # verified: signed by the owner, for this package
            }
        )
        return
    _print_package(opened, owner.name, data_card)


def _print_package(opened: SealedPackage, owner: str, data_card: DataCard | None) -> None:
    from sealroom.cli.seal import human_size

    say = _say
    say(f"package {opened.path.name}  owner {owner} (manifest signature verified)")
    say(f"digest  {opened.digest}")
    if data_card is None:
        say("card    none (the owner published no card; file names from the signed manifest)")
    else:
        say(f"card    signed by {owner}, verified: {data_card.title or data_card.dataset}")
        if data_card.description:
            say(f"        {data_card.description}")
    notes = {f.path: f.description for f in data_card.files} if data_card else {}
    count = len(opened.manifest.files)
    say(f"files ({count} {'file' if count == 1 else 'files'}):")
    for entry in opened.manifest.files:
        note = f"  {notes[entry.path]}" if notes.get(entry.path) else ""
        say(f"  {entry.path}  {human_size(entry.size)}{note}")
    if data_card is None:
        return
    say(f"sources of dataset {data_card.dataset}:")
    for source in data_card.sources:
        for line in _source_lines(source):
            say(line)
    if data_card.declaration is not None:
        say(f"declared splits: {data_card.declaration.describe()}")
    else:
        say("declared splits: none (the pipeline's split section decides)")
    for stat in data_card.statistics:
        values = ", ".join(f"{v:g}" for v in stat.values)
        say(
            f"statistic {stat.name} of {stat.source} ({stat.mechanism}, ε {stat.epsilon:g}, "
            f"δ {stat.delta:g}; {stat.charge or 'charge not recorded'}): {values}"
        )
    if data_card.mock is None:
        say("mock data: not offered")
    else:
        records = data_card.mock.records or "the card's counts of"
        say(f"mock data: offered (seed {data_card.mock.seed}, {records} records per source)")


def _source_lines(source: CardSource) -> list[str]:
    block = source.source.model_dump(mode="json")
    where = ", ".join(f"{k}: {v}" for k, v in block.items() if v not in (None, [], {}))
    feats = source.features
    span = f" in [{feats.range.min:g}, {feats.range.max:g}]" if feats.range else ""
    lines = [
        f"  {source.name}: {where}",
        f"    {source.records:,} records; features {feats.shape} {feats.dtype}{span}",
    ]
    target = source.target
    if target is not None:
        text = f"    target {target.kind} {target.shape or 'scalar'} {target.dtype}"
        if target.classes:
            text += f"; {len(target.classes)} classes: {', '.join(target.classes)}"
        if target.range:
            text += f" in [{target.range.min:g}, {target.range.max:g}]"
        lines.append(text)
    if source.description:
        lines.append(f"    {source.description}")
    return lines


def _say(text: str) -> None:
    """One line as it is: no markup (names may hold brackets), no wrapping (paths, digests)."""
    console.print(text, highlight=False, markup=False, soft_wrap=True)


def _register_mock() -> None:
    """`package mock` lives in package_mock.py (helper mock's module)."""
    from sealroom.cli.package_mock import mock_command

    app.command(name="mock")(mock_command)


_register_mock()
