"""The room's side of dataset declarations: which declarations bind this run, verified.

A run uses declared splits when the contract has privacy terms (then every dataset the
pipeline uses must pin one) or when the contract pins a declaration for a dataset it uses.
Every declaration is checked against the contract before any key is released: the
provider's signature with the key the contract lists, the digest the contract pins, and
the pipeline's source against the declared training source.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sealroom.contract.schema import Contract
from sealroom.pipeline.declaration import (
    DatasetDeclaration,
    DeclarationError,
    SignedDeclaration,
    check_declared_sources,
    load_signed_declaration,
    verify_declaration,
)
from sealroom.pipeline.schema import Pipeline


def declared_splits(
    contract: Contract, pipeline: Pipeline, given: Sequence[SignedDeclaration]
) -> dict[str, DatasetDeclaration] | None:
    """The verified declarations by dataset id, or None when the run splits as the pipeline
    says (a contract without privacy terms that pins no declaration for these datasets)."""
    used = [contract.dataset(d.id) for d in pipeline.datasets if _named(contract, d.id)]
    if not contract.private and all(d.declaration_digest is None for d in used):
        return None
    by_digest = {s.digest: s for s in given}
    verified: dict[str, DatasetDeclaration] = {}
    for ref in used:
        if ref.declaration_digest is None:
            why = "has privacy terms" if contract.private else "pins declarations for others"
            raise DeclarationError(
                f"dataset {ref.id}: contract {contract.id} {why} but pins no dataset "
                "declaration for it (the provider signs one with `sealroom dataset declare`)"
            )
        signed = by_digest.get(ref.declaration_digest)
        if signed is None:
            raise DeclarationError(
                f"dataset {ref.id}: the declaration {ref.declaration_digest} that contract "
                f"{contract.id} pins was not given to the room"
            )
        declaration = verify_declaration(
            signed,
            provider=ref.provider,
            signing_key=contract.party(ref.provider).signing_key,
            pinned=ref.declaration_digest,
        )
        if declaration.dataset != ref.id:
            raise DeclarationError(
                f"dataset {ref.id}: the pinned declaration is for dataset {declaration.dataset}"
            )
        verified[ref.id] = declaration
    check_declared_sources(verified, pipeline.datasets)
    return verified


def _named(contract: Contract, dataset_id: str) -> bool:
    try:
        contract.dataset(dataset_id)
    except KeyError:
        return False
    return True


# ------------------------------------------------------------------ the operator's side

DECLARATIONS_FOLDER = "declarations"
MAX_WORKSPACE_DECLARATIONS = 256


def declarations_dir(home: Path) -> Path:
    """Where a workspace keeps signed declarations (``sealroom dataset declare`` writes here
    by default; ``sealroom run`` reads from here)."""
    return home / DECLARATIONS_FOLDER


def find_declarations(
    contract: Contract, home: Path, files: Sequence[Path] = ()
) -> list[SignedDeclaration]:
    """The signed declarations the contract pins, from ``files`` (each must be a signed
    declaration) and the workspace's declarations folder (unreadable files there are
    passed over: the room names any pinned declaration it was not given)."""
    pinned = {d.declaration_digest for d in contract.datasets if d.declaration_digest}
    found = [load_signed_declaration(Path(f)) for f in files]
    folder = declarations_dir(home)
    if folder.is_dir():
        for path in sorted(folder.glob("*.json"))[:MAX_WORKSPACE_DECLARATIONS]:
            try:
                found.append(load_signed_declaration(path))
            except DeclarationError:
                continue
    unique = {s.digest: s for s in found if s.digest in pinned}
    return list(unique.values())
