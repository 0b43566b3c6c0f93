"""The consumer's side of the file-name check: a composed pipeline against sealed packages.

``pipeline compose --package mnist=mnist.sealed`` checks each named dataset's source (and,
when the package's card carries the provider's declaration, its held-out sources) against
the package's signed manifest and card — the same check the room makes before any key is
released, so a wrong name is found at the consumer's desk.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sealroom.crypto.identity import PublicIdentity
from sealroom.errors import ConfigError, IdentityError
from sealroom.pipeline.package_files import check_declaration_files, check_source_files
from sealroom.pipeline.schema import Pipeline
from sealroom.workspace import Workspace


class PackageOptionError(ConfigError):
    """A ``--package ID=PATH`` option is malformed or names no dataset of the pipeline."""


def parse_package_options(values: list[str]) -> dict[str, Path]:
    """``["mnist=mnist.sealed"]`` -> ``{"mnist": Path("mnist.sealed")}``."""
    found: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise PackageOptionError(
                f"--package {value!r}: write DATASET_ID=PACKAGE (e.g. mnist=mnist.sealed)"
            )
        found[name] = Path(path)
    return found


def package_owner(ws: Workspace, path: Path) -> PublicIdentity:
    """The identity, in ``ws``, of the party the package's manifest names as its owner (the
    manifest's signature is checked against it by SealedPackage.open afterwards)."""
    from sealroom.crypto.identity import load_identity
    from sealroom.crypto.package import SealedPackage

    owner = SealedPackage.read_manifest(path).owner
    if not (ws.parties / owner).is_dir():
        raise IdentityError(
            f"package {path.name} is owned by {owner!r}, whose identity is not in this "
            f"workspace; import it first (`sealroom party import {owner}.identity.json`, "
            f"made by `sealroom party export {owner}`)"
        )
    return load_identity(ws, owner)


def check_pipeline_packages(ws: Workspace, pipeline: Pipeline, packages: Mapping[str, Path]) -> int:
    """MissingFileError (one line) at the first source naming a file its package lacks;
    the number of datasets checked otherwise. Manifest and card are verified against the
    owner's identity in ``ws``."""
    from sealroom.crypto.package import SealedPackage
    from sealroom.pipeline.card import CARD_FILE
    from sealroom.pipeline.card_signing import load_signed_card, verify_card

    by_id = {d.id: d for d in pipeline.datasets}
    checked = 0
    for dataset_id, path in packages.items():
        cfg = by_id.get(dataset_id)
        if cfg is None:
            raise PackageOptionError(
                f"--package {dataset_id}={path}: pipeline {pipeline.name} has no dataset "
                f"{dataset_id!r} (it reads {', '.join(sorted(by_id)) or 'none'})"
            )
        owner = package_owner(ws, path)
        package = SealedPackage.open(path, owner)
        paths = [f.path for f in package.manifest.files]
        check_source_files(dataset_id, package.digest, cfg.source, paths)
        checked += 1
        if not (path / CARD_FILE).exists():
            continue
        card = verify_card(load_signed_card(path), owner, package.manifest, package.digest)
        if card.declaration is not None:
            check_declaration_files(card.declaration, package.digest, paths)
    return checked
