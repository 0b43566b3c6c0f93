"""Key rotation: a party replaces its signing and encryption keys and says so, signed.

``parties/<name>/`` then holds the new keys, and ``parties/<name>/previous/<fingerprint>/``
the old ones in the same layout (identity.json and, unless dropped, the private key files,
still encrypted under the passphrase they had). They stay because what was bound to them
stays valid: contracts pin a party's keys at signing time (an old contract is checked with,
and revoked by, the old key), and packages or outputs sealed to the old encryption key open
only with it. ``--drop-old-keys`` deletes the old private keys (after a leak), keeping the
public half so old signatures can still be checked.

The rotation statement is signed by the OLD signing key over::

    "sealroom/party-rotation/v1\\n" || RFC 8785 JSON of the statement without its signature

so whoever trusted the old key can attribute the new one to the same party.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import rfc8785
from pydantic import BaseModel, ConfigDict

from sealroom.crypto.identity import (
    ENCRYPTION_FILE,
    IDENTITY_FILE,
    SIGNING_FILE,
    UNENCRYPTED_MARKER,
    Party,
    PublicIdentity,
    key_protection,
    load_identity,
    load_party,
    parse_identity,
    party_dir,
    read_identity,
)
from sealroom.crypto.passphrase import existing_passphrase, new_passphrase
from sealroom.crypto.signing import b64, unb64, verify_signature
from sealroom.errors import IdentityError, SignatureError
from sealroom.files import write_atomic
from sealroom.workspace import Workspace

ROTATED = "party.rotated"
DOMAIN = b"sealroom/party-rotation/v1\n"
PREVIOUS_DIR = "previous"
STATEMENT_FILE = "rotation.json"


class NoSuchKeys(IdentityError):
    """A party has no private keys (current or archived) with the fingerprint asked for."""


class RotationStatement(BaseModel):
    """Party ``party`` replaced its old keys by its new ones at ``rotated_at``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    party: str
    role: str
    old_signing_key: str
    old_encryption_key: str
    old_fingerprint: str
    new_signing_key: str
    new_encryption_key: str
    new_fingerprint: str
    rotated_at: str
    signature: str = ""  # base64 Ed25519 by the old signing key

    def signed_bytes(self) -> bytes:
        return DOMAIN + rfc8785.dumps(self.model_dump(exclude={"signature"}))

    def verify(self) -> None:
        """SignatureError unless the old key signed this statement."""
        signature = unb64(self.signature, f"rotation signature of {self.party!r}")
        verify_signature(
            self.old_signing_key, signature, self.signed_bytes(), f"{self.party} (old key)"
        )


def fingerprint_of(signing_key: str, encryption_key: str) -> str:
    """The fingerprint of a key pair as PublicIdentity computes it (for keys a contract pins)."""
    raw = unb64(signing_key, "signing key") + unb64(encryption_key, "encryption key")
    return hashlib.sha256(raw).hexdigest()[:32]


def rotate_party(
    ws: Workspace, name: str, *, drop_old_keys: bool = False, now: datetime | None = None
) -> tuple[Party, RotationStatement]:
    """Give ``name`` new keys, archive the old ones and return the signed statement.

    The new keys are protected like the old: the same passphrase, or none for a party
    created with --no-passphrase; keys left unencrypted by an older sealroom get encrypted.
    """
    directory = party_dir(ws, name)
    protection = key_protection(ws, name)
    if protection == "imported":
        raise IdentityError(f"party {name!r} was imported: only its owner can rotate its keys")
    secret: bytes | None = None
    if protection == "encrypted":
        secret = existing_passphrase(name)
    old = load_party(ws, name, secret)
    if protection == "legacy":
        secret = new_passphrase(name)
    new = Party.generate(name, old.identity.role)
    statement = _statement(old, new.identity, now or datetime.now(UTC))
    archive = directory / PREVIOUS_DIR / old.identity.fingerprint
    if archive.exists():
        raise IdentityError(f"party {name!r}: {archive} already exists")

    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=directory.parent))
    try:
        new.save(staging / "new", secret)
        if (directory / PREVIOUS_DIR).exists():
            shutil.copytree(directory / PREVIOUS_DIR, staging / "new" / PREVIOUS_DIR)
        kept = staging / "new" / PREVIOUS_DIR / old.identity.fingerprint
        kept.mkdir(parents=True, mode=0o700)
        files = [IDENTITY_FILE] if drop_old_keys else [IDENTITY_FILE, SIGNING_FILE, ENCRYPTION_FILE]
        if not drop_old_keys and (directory / UNENCRYPTED_MARKER).exists():
            files.append(UNENCRYPTED_MARKER)
        for file in files:
            shutil.copy2(directory / file, kept / file)
        (kept / STATEMENT_FILE).write_text(statement.model_dump_json(indent=2) + "\n")
        # Two renames: the old folder steps aside, the new one takes its place.
        os.rename(directory, staging / "old")
        os.rename(staging / "new", directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return new, statement


def _statement(old: Party, new: PublicIdentity, now: datetime) -> RotationStatement:
    unsigned = RotationStatement(
        party=old.name,
        role=old.identity.role,
        old_signing_key=old.identity.signing_key,
        old_encryption_key=old.identity.encryption_key,
        old_fingerprint=old.identity.fingerprint,
        new_signing_key=new.signing_key,
        new_encryption_key=new.encryption_key,
        new_fingerprint=new.fingerprint,
        rotated_at=now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    return unsigned.model_copy(update={"signature": b64(old.sign(unsigned.signed_bytes()))})


def previous_identities(ws: Workspace, name: str) -> list[PublicIdentity]:
    """The public identities a party had before its rotations, oldest folder name first."""
    archive = party_dir(ws, name) / PREVIOUS_DIR
    if not archive.is_dir():
        return []
    return [read_identity(d) for d in sorted(archive.iterdir()) if (d / IDENTITY_FILE).exists()]


def load_party_with_keys(ws: Workspace, name: str, fingerprint: str) -> Party:
    """``name`` holding the keys with ``fingerprint``: its current keys or archived ones."""
    current = load_identity(ws, name)
    if current.fingerprint == fingerprint:
        return load_party(ws, name)
    archived = party_dir(ws, name) / PREVIOUS_DIR / fingerprint
    if not (archived / IDENTITY_FILE).exists():
        raise NoSuchKeys(
            f"party {name!r} has no keys with fingerprint {fingerprint} here "
            f"(current: {current.fingerprint})"
        )
    if not (archived / SIGNING_FILE).exists():
        raise NoSuchKeys(
            f"party {name!r}: the private keys with fingerprint {fingerprint} were dropped "
            "at rotation"
        )
    return Party.load(archived)


def accept_rotation(ws: Workspace, path: Path) -> PublicIdentity:
    """Move an imported party to its new keys, proven by a statement its old key signed.

    The old public identity is archived like the owner's, so contracts that pin it still
    check. Refused unless this workspace knows the party with exactly the old keys.
    """
    try:
        statement = RotationStatement.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise IdentityError(f"{path}: cannot read rotation statement ({exc.strerror})") from None
    except ValueError:
        raise IdentityError(f"{path}: not a rotation statement from `party rotate`") from None
    directory = party_dir(ws, statement.party)
    current = read_identity(directory)
    new = parse_identity(
        {
            "name": statement.party,
            "role": statement.role,
            "signing_key": statement.new_signing_key,
            "encryption_key": statement.new_encryption_key,
            "fingerprint": statement.new_fingerprint,
        },
        str(path),
    )
    if current == new:
        return new
    if (directory / SIGNING_FILE).exists():
        raise IdentityError(f"{path}: party {statement.party!r} is this workspace's own")
    if (current.signing_key, current.encryption_key, current.role) != (
        statement.old_signing_key,
        statement.old_encryption_key,
        statement.role,
    ):
        raise IdentityError(
            f"{path}: party {statement.party!r} here has fingerprint {current.fingerprint}, "
            f"not the rotated-out {statement.old_fingerprint}"
        )
    try:
        statement.verify()
    except SignatureError:
        raise IdentityError(
            f"{path}: not signed by the old key of {statement.party!r}; refusing the new keys"
        ) from None
    kept = directory / PREVIOUS_DIR / current.fingerprint
    kept.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copy2(directory / IDENTITY_FILE, kept / IDENTITY_FILE)
    (kept / STATEMENT_FILE).write_text(statement.model_dump_json(indent=2) + "\n")
    write_atomic(directory / IDENTITY_FILE, (json.dumps(new.document(), indent=2) + "\n").encode())
    return new


def identity_with_fingerprint(ws: Workspace, name: str, fingerprint: str) -> PublicIdentity:
    """``name``'s identity with ``fingerprint`` (current or archived), else its current one,
    so that checks against old packages and runs name the right key or fail as before."""
    current = load_identity(ws, name)
    archived = party_dir(ws, name) / PREVIOUS_DIR / fingerprint
    if current.fingerprint != fingerprint and (archived / IDENTITY_FILE).exists():
        return read_identity(archived)
    return current


def party_for(ws: Workspace, name: str, fingerprint: str) -> Party:
    """``name`` with the private keys matching ``fingerprint`` when it still has them,
    else with its current keys (the caller's own check then says what does not match)."""
    try:
        return load_party_with_keys(ws, name, fingerprint)
    except NoSuchKeys:
        return load_party(ws, name)
