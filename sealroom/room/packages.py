"""Finding the sealed packages a contract names, by digest, and opening them in memory."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sealroom.contract.schema import Contract
from sealroom.crypto.identity import PublicIdentity
from sealroom.errors import RoomError, SealroomError

if TYPE_CHECKING:
    from sealroom.crypto.package import SealedPackage

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
