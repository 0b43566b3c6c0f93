"""Developing against a card: find and check it, then mock the data a pipeline reads.

``train --local --mock`` and ``package mock`` take a sealed package folder (its
``card.json``) or a signed card file. A card is believed as far as the workspace allows:
*verified* (the owner the package's signed manifest names signed it, for this package's
digest and files), *signature* (a card file alone: its signer's key in the workspace made
the signature, but no package was there to compare), or *unverified* (the signer is not
known here) — which the caller must say loudly. A card that fails a check it could be put
to is refused. Before any mock is written, the pipeline's file names are checked against
the card's files with the room's own check, so a wrong name fails here as it would there.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sealroom.crypto.identity import PublicIdentity, load_identity
from sealroom.crypto.package import SealedPackage
from sealroom.crypto.signing import unb64, verify_signature
from sealroom.data.files import DirectoryTree, FileTree
from sealroom.data.mock import MockError, write_mock
from sealroom.errors import IdentityError, SignatureError, WorkspaceError
from sealroom.pipeline.card import CARD_FILE, DataCard
from sealroom.pipeline.card_signing import (
    DOMAIN,
    CardError,
    SignedCard,
    canonical_bytes,
    load_signed_card,
    verify_card,
)
from sealroom.pipeline.declaration import DatasetDeclaration, SourcePart
from sealroom.pipeline.package_files import check_source_files, missing_paths
from sealroom.pipeline.schema import DatasetConfig, DataSource
from sealroom.workspace import Workspace

MANIFEST_FILE = "manifest.json"
BANNER = "MOCK DATA"


@dataclass(frozen=True)
class OpenedCard:
    """A card and how far it was checked: ``trust`` is verified, signature or unverified."""

    card: DataCard
    path: Path
    trust: str
    note: str  # one line saying what was checked

    @property
    def verified(self) -> bool:
        return self.trust == "verified"


def _signer_in_workspace(home: Path | None, signer: str) -> tuple[Workspace, PublicIdentity] | str:
    """The workspace and ``signer``'s identity in it, or why the signature cannot be checked
    (no workspace, or a signer it does not know): such a document is run "unverified"."""
    try:
        ws = Workspace.find(home)
    except WorkspaceError:
        return "no workspace to verify it with"
    try:
        return ws, load_identity(ws, signer)
    except IdentityError:
        return f"its signer {signer!r} is not a party of workspace {ws.home}"


def open_card(path: Path, home: Path | None = None) -> OpenedCard:
    """The card of a package folder or a card file, checked against the workspace's identities.

    CardError/SealError when a check fails (another signer, another package, changed
    bytes); MockError when ``path`` holds no card.
    """
    if not path.exists():
        raise MockError(f"{path}: not found; give a sealed package folder or its {CARD_FILE}")
    package = path if path.is_dir() else path.parent
    card_path = path / CARD_FILE if path.is_dir() else path
    if not card_path.is_file():
        raise MockError(
            f"{path}: no {CARD_FILE}; its owner published no data card "
            "(`sealroom package show` lists what it holds)"
        )
    signed = load_signed_card(card_path)
    known = _signer_in_workspace(home, signed.signer)
    if isinstance(known, str):
        return OpenedCard(signed.card, card_path, "unverified", known)
    ws, owner = known
    if (package / MANIFEST_FILE).is_file():
        return _verify_with_package(signed, package, card_path, ws)
    _check_signature_only(signed, owner.signing_key)
    note = f"signed by {signed.signer} (signature verified; no package beside it to check)"
    return OpenedCard(signed.card, card_path, "signature", note)


def _verify_with_package(
    signed: SignedCard, package: Path, card_path: Path, ws: Workspace
) -> OpenedCard:
    owner = load_identity(ws, SealedPackage.read_manifest(package).owner)
    opened = SealedPackage.open(package, owner)
    card = verify_card(signed, owner, opened.manifest, opened.digest)
    note = f"signed by {owner.name}, the package's owner; verified against {package.name}"
    return OpenedCard(card, card_path, "verified", note)


def _check_signature_only(signed: SignedCard, signing_key: str) -> None:
    try:
        raw = unb64(signed.signature, "signature")
        verify_signature(signing_key, raw, DOMAIN + canonical_bytes(signed.card), signed.signer)
    except SignatureError:
        raise CardError(
            f"card of dataset {signed.card.dataset}: the signature from {signed.signer!r} does "
            f"not verify with {signed.signer}'s signing key (the card was changed after signing)"
        ) from None


def declared_sources(declaration: DatasetDeclaration | None) -> list[tuple[str, DataSource]]:
    """The sources a declaration reads, named as messages say them."""
    if declaration is None:
        return []
    parts = (("train", declaration.train), ("val", declaration.val), ("test", declaration.test))
    return [
        (f"the declaration's {name} source", part.source)
        for name, part in parts
        if isinstance(part, SourcePart)
    ]


def check_pipeline_files(
    cfg: DatasetConfig, card: DataCard, declaration: DatasetDeclaration | None
) -> None:
    """The room's check (MissingFileError, one line) of every file name the dataset reads."""
    paths = [f.path for f in card.files]
    check_source_files(cfg.id, card.package_digest, cfg.source, paths)
    for what, source in declared_sources(declaration):
        check_source_files(cfg.id, card.package_digest, source, paths, what)


def _check_mocked(cfg: DatasetConfig, sources: Sequence[DataSource], written: list[str]) -> None:
    """MockError when the card lists a file the pipeline reads but describes no source of it."""
    for source in sources:
        for kind, name in missing_paths(source, written):
            raise MockError(
                f"dataset {cfg.id}: the card lists {kind} {name!r} but describes no source "
                "that reads it, so the mock cannot hold it (ask its provider to add the source)"
            )


@contextmanager
def mock_trees(
    datasets: Sequence[DatasetConfig],
    cards: Mapping[str, DataCard],
    declarations: Mapping[str, DatasetDeclaration],
) -> Iterator[dict[str, FileTree]]:
    """Mock files for each dataset in a private (0700) temporary folder, removed afterwards.

    Every pipeline and declared file name is checked against its card first, as the room
    checks them against the package before any key is released.
    """
    for cfg in datasets:
        check_pipeline_files(cfg, cards[cfg.id], declarations.get(cfg.id))
    folder = Path(tempfile.mkdtemp(prefix="sealroom-mock-"))
    try:
        trees: dict[str, FileTree] = {}
        for cfg in datasets:
            out = folder / cfg.id
            written = write_mock(cards[cfg.id], out)
            sources = [cfg.source] + [s for _, s in declared_sources(declarations.get(cfg.id))]
            _check_mocked(cfg, sources, written)
            trees[cfg.id] = DirectoryTree(out)
        yield trees
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class OpenedDeclaration:
    """A provider's signed declaration given to a local run, and how far it was checked."""

    declaration: DatasetDeclaration
    path: Path
    trust: str  # signature or unverified
    note: str


def open_declaration(path: Path, home: Path | None = None) -> OpenedDeclaration:
    """A signed declaration file (``sealroom dataset declare``), its signature checked with
    the signer's key when the workspace knows the signer; DeclarationError if it fails."""
    from sealroom.pipeline.declaration import check_signature, load_signed_declaration

    signed = load_signed_declaration(path)
    known = _signer_in_workspace(home, signed.signer)
    if isinstance(known, str):
        return OpenedDeclaration(signed.declaration, path, "unverified", known)
    _, signer = known
    check_signature(signed, signer.signing_key, f"{signed.signer}'s signing key in the workspace")
    note = f"signed by {signed.signer} (signature verified)"
    return OpenedDeclaration(signed.declaration, path, "signature", note)
