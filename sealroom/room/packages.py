"""Finding the sealed packages a contract names, by digest, and opening them in memory."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sealroom.contract.schema import Contract
from sealroom.crypto.identity import PublicIdentity
from sealroom.errors import RoomError, SealroomError

if TYPE_CHECKING:
    from sealroom.crypto.package import SealedPackage
    from sealroom.pipeline.declaration import DatasetDeclaration
    from sealroom.pipeline.schema import Pipeline

PACKAGE_SUFFIX = ".sealed"


def _candidates(folders: Sequence[Path]) -> list[Path]:
    found: list[Path] = []
    for folder in folders:
        if folder.name.endswith(PACKAGE_SUFFIX) and folder.is_dir():
            found.append(folder)
        elif folder.is_dir():
            found.extend(sorted(p for p in folder.glob(f"*{PACKAGE_SUFFIX}") if p.is_dir()))
    return found


def manifest_digest(path: Path) -> str | None:
    """The package digest of ``path`` (unverified: used only to find candidates)."""
    from sealroom.crypto.manifest import digest_of

    try:
        return digest_of((path / "manifest.json").read_bytes())
    except OSError:
        return None


def find_packages(digests: Sequence[str], folders: Sequence[Path]) -> dict[str, Path]:
    """Package folder for each digest found in ``folders`` (the first of each; others absent)."""
    wanted = set(digests)
    where: dict[str, Path] = {}
    for path in _candidates(folders):
        digest = manifest_digest(path)
        if digest in wanted and digest not in where:
            where[digest] = path.resolve()
    return where


def owner_identity(contract: Contract, name: str) -> PublicIdentity:
    """The owner's public identity exactly as the contract pins it (not as a workspace says)."""
    ref = contract.party(name)
    return PublicIdentity(
        name=ref.name, role=ref.role, signing_key=ref.signing_key, encryption_key=ref.encryption_key
    )


def open_verified(path: Path, owner: PublicIdentity, digest: str) -> SealedPackage:
    """The package at ``path``, its owner's signature checked, its digest the expected one."""
    from sealroom.crypto.package import SealedPackage

    try:
        package = SealedPackage.open(path, owner)
    except SealroomError as exc:
        raise RoomError(f"package {path.name}: {exc}") from None
    if package.digest != digest:
        raise RoomError(f"package {path.name}: digest {package.digest} is not {digest}")
    return package


def decrypt_in_memory(package: SealedPackage, key: bytes) -> dict[str, bytes]:
    """Every file of the package, verified chunk by chunk, held only in memory."""
    try:
        return dict(package.iter_files(key))
    except SealroomError as exc:
        raise RoomError(f"package {package.path.name}: {exc}") from None


def check_package_files(
    contract: Contract,
    pipeline: Pipeline,
    declarations: dict[str, DatasetDeclaration] | None,
    packages: Mapping[str, Path],
) -> None:
    """Every file a dataset source reads (the pipeline's, and a declaration's held-out ones)
    is in its package's signed manifest: public facts, checked before any budget is reserved
    or key asked for, so a wrong name costs nothing and the refusal says what is there."""
    from sealroom.pipeline.package_files import check_declaration_files, check_source_files

    for cfg in pipeline.datasets:
        ref = next((d for d in contract.datasets if d.id == cfg.id), None)
        if ref is None:  # the policy check refuses a dataset the contract does not name
            continue
        path = packages.get(ref.package_digest)
        if path is None:
            raise RoomError(
                f"no sealed package with digest {ref.package_digest} was given to the room"
            )
        package = open_verified(path, owner_identity(contract, ref.provider), ref.package_digest)
        paths = [f.path for f in package.manifest.files]
        check_source_files(cfg.id, ref.package_digest, cfg.source, paths)
        declared = (declarations or {}).get(cfg.id)
        if declared is not None:
            check_declaration_files(declared, ref.package_digest, paths)
