"""Parties: a name, a role, an Ed25519 signing key and an X25519 (HPKE) key pair.

A party created here keeps its private keys in ``parties/<name>/`` (0600 files, encrypted
under the party's passphrase, see :mod:`sealroom.crypto.keyfiles`; plain PEM only when
created with ``--no-passphrase``, marked by an ``UNENCRYPTED`` file, or by an older
sealroom); a party imported from elsewhere is only its public identity document.
Everything a party signs or receives is bound to these keys, never to the name alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sealroom.crypto.hpke import open_sealed
from sealroom.crypto.keyfiles import is_encrypted, read_private_key, write_private_key
from sealroom.crypto.passphrase import WrongPassphrase, existing_passphrase, new_passphrase
from sealroom.crypto.signing import b64, raw_public_key, unb64, verify_signature
from sealroom.errors import IdentityError
from sealroom.workspace import Workspace

Role = Literal["provider", "consumer", "operator", "service"]
PARTY_ROLES = ("provider", "consumer", "operator")

IDENTITY_FILE = "identity.json"
SIGNING_FILE = "signing.pem"
ENCRYPTION_FILE = "encryption.pem"
UNENCRYPTED_MARKER = "UNENCRYPTED"  # the owner chose --no-passphrase

log = logging.getLogger("sealroom.identity")
_warned: set[Path] = set()


class PublicIdentity(BaseModel):
    """What a party shares with everyone: name, role and public keys (base64, raw 32 bytes)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")
    role: Role
    signing_key: str
    encryption_key: str

    _keys = field_validator("signing_key", "encryption_key")(raw_public_key)

    @property
    def fingerprint(self) -> str:
        """Hex of the first 16 bytes of SHA-256 over both raw public keys."""
        raw = unb64(self.signing_key, "signing key") + unb64(self.encryption_key, "encryption key")
        return hashlib.sha256(raw).hexdigest()[:32]

    def verify(self, signature: bytes, data: bytes) -> None:
        """Raise SignatureError naming this party unless it signed ``data``."""
        verify_signature(self.signing_key, signature, data, self.name)

    def document(self) -> dict[str, str]:
        """The exported identity document (public keys and fingerprint)."""
        return {**self.model_dump(), "fingerprint": self.fingerprint}


class Party:
    """A party whose private keys are at hand: it can sign and open keys sealed to it."""

    def __init__(
        self, identity: PublicIdentity, signing: Ed25519PrivateKey, encryption: X25519PrivateKey
    ) -> None:
        self.identity = identity
        self._signing = signing
        self._encryption = encryption

    @classmethod
    def generate(cls, name: str, role: Role) -> Party:
        signing = Ed25519PrivateKey.generate()
        encryption = X25519PrivateKey.generate()
        try:
            identity = PublicIdentity(
                name=name,
                role=role,
                signing_key=b64(signing.public_key().public_bytes_raw()),
                encryption_key=b64(encryption.public_key().public_bytes_raw()),
            )
        except ValidationError:
            raise IdentityError(
                f"party name {name!r}: use a letter then letters, digits, '-' or '_' (max 64)"
            ) from None
        return cls(identity, signing, encryption)

    @property
    def name(self) -> str:
        return self.identity.name

    def sign(self, data: bytes) -> bytes:
        return self._signing.sign(data)

    def decrypt_key(self, wrapped: bytes, info: bytes) -> bytes:
        """Open an HPKE-wrapped key addressed to this party."""
        return open_sealed(self._encryption, wrapped, info)

    def save(self, directory: Path, passphrase: bytes | None) -> None:
        """Write identity and private keys into a new folder, atomically; the keys are
        encrypted under ``passphrase``, or stored plain (and marked so) when it is None."""
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.name}.", dir=directory.parent))
        try:
            write_private_key(staging / SIGNING_FILE, self._signing, passphrase)
            write_private_key(staging / ENCRYPTION_FILE, self._encryption, passphrase)
            if passphrase is None:
                (staging / UNENCRYPTED_MARKER).write_text(
                    "these private keys are stored without a passphrase (--no-passphrase)\n"
                )
            _write_identity(staging, self.identity)
            os.rename(staging, directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    @classmethod
    def load(cls, directory: Path, passphrase: bytes | None = None) -> Party:
        """The party in ``directory``; encrypted keys open with ``passphrase`` or, when it is
        None, the one :func:`existing_passphrase` finds (asked for only if needed)."""
        identity = _read_identity(directory)
        name = identity.name
        if not (directory / SIGNING_FILE).exists():
            raise IdentityError(f"party {name!r} was imported: its private keys live elsewhere")
        _warn_if_legacy(directory, name)

        def given() -> bytes:
            return passphrase if passphrase is not None else existing_passphrase(name)

        try:
            signing = read_private_key(directory / SIGNING_FILE, Ed25519PrivateKey, given)
            encryption = read_private_key(directory / ENCRYPTION_FILE, X25519PrivateKey, given)
        except WrongPassphrase:
            raise WrongPassphrase(
                f"party {name!r}: wrong passphrase for its private keys in {directory}"
            ) from None
        assert isinstance(signing, Ed25519PrivateKey)
        assert isinstance(encryption, X25519PrivateKey)
        if (
            b64(signing.public_key().public_bytes_raw()) != identity.signing_key
            or b64(encryption.public_key().public_bytes_raw()) != identity.encryption_key
        ):
            raise IdentityError(f"party {identity.name!r}: private keys do not match identity.json")
        return cls(identity, signing, encryption)

    def __repr__(self) -> str:
        return f"Party({self.name!r}, role={self.identity.role!r}, fp={self.identity.fingerprint})"


def _write_identity(directory: Path, identity: PublicIdentity) -> None:
    (directory / IDENTITY_FILE).write_text(json.dumps(identity.document(), indent=2) + "\n")


MAX_IDENTITY_BYTES = 64 * 1024  # two public keys and a name: a few hundred bytes


def _read_identity(directory: Path) -> PublicIdentity:
    return _identity_file(directory / IDENTITY_FILE, f"unknown party {directory.name!r}")


def _identity_file(path: Path, missing: str) -> PublicIdentity:
    """Parse an identity document file; ``missing`` is the error when there is none."""
    try:
        if path.stat().st_size > MAX_IDENTITY_BYTES:
            raise IdentityError(
                f"{path}: larger than an identity document ({MAX_IDENTITY_BYTES} B)"
            )
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IdentityError(missing) from None
    except IsADirectoryError:
        raise IdentityError(f"{path}: a folder, not an identity document") from None
    except UnicodeDecodeError as exc:
        raise IdentityError(f"{path}: not UTF-8 text (byte at offset {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise IdentityError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    return parse_identity(data, str(path))


def parse_identity(data: object, where: str) -> PublicIdentity:
    """Validate an identity document; a stated fingerprint must match the keys."""
    if not isinstance(data, dict):
        raise IdentityError(f"{where}: an identity document is a JSON object")
    stated = data.get("fingerprint")
    fields = {k: v for k, v in data.items() if k != "fingerprint"}
    try:
        identity = PublicIdentity.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "document"
        raise IdentityError(f"{where}: {loc}: {first['msg']}") from None
    if stated is not None and stated != identity.fingerprint:
        raise IdentityError(f"{where}: fingerprint does not match the public keys")
    return identity


def create_party(
    ws: Workspace,
    name: str,
    role: Role,
    *,
    passphrase: bytes | None = None,
    unencrypted: bool = False,
) -> Party:
    """Generate a party's keys and store them in the workspace; refuses an existing name.

    The keys are encrypted under ``passphrase`` (default: :func:`new_passphrase`'s sources);
    only ``unencrypted=True`` stores them plain.
    """
    if role not in PARTY_ROLES:
        raise IdentityError(f"role {role!r}: choose one of {', '.join(PARTY_ROLES)}")
    party = Party.generate(name, role)
    if (ws.parties / name).exists():
        raise IdentityError(f"party {name!r} already exists in {ws.home}")
    secret = None
    if not unencrypted:
        secret = passphrase if passphrase is not None else new_passphrase(name)
    party.save(ws.parties / name, secret)
    return party


def load_party(ws: Workspace, name: str, passphrase: bytes | None = None) -> Party:
    """A party of this workspace with its private keys (see :meth:`Party.load`)."""
    return Party.load(_party_dir(ws, name), passphrase)


def key_protection(ws: Workspace, name: str) -> str:
    """How a party's private keys are stored: encrypted, unencrypted, legacy or imported."""
    directory = _party_dir(ws, name)
    if not (directory / SIGNING_FILE).exists():
        return "imported"
    return _protection(directory)


def _protection(directory: Path) -> str:
    if is_encrypted(directory / SIGNING_FILE) and is_encrypted(directory / ENCRYPTION_FILE):
        return "encrypted"
    if (directory / UNENCRYPTED_MARKER).exists():
        return "unencrypted"
    return "legacy"


def _warn_if_legacy(directory: Path, name: str) -> None:
    """Older workspaces stored keys plain: they still load, with a warning once a process."""
    if directory in _warned or _protection(directory) != "legacy":
        return
    _warned.add(directory)
    log.warning(
        "warning: party %s: private keys in %s are stored UNENCRYPTED (made by an older "
        "sealroom); `sealroom party protect %s` encrypts them",
        name,
        directory,
        name,
    )


def load_identity(ws: Workspace, name: str) -> PublicIdentity:
    """A party's public identity, created here or imported."""
    return _read_identity(_party_dir(ws, name))


def read_identity(directory: Path) -> PublicIdentity:
    """The identity document in a party folder (current or archived by a rotation)."""
    return _read_identity(directory)


def party_dir(ws: Workspace, name: str) -> Path:
    """The folder of a known party; refuses names that are not one."""
    return _party_dir(ws, name)


def _party_dir(ws: Workspace, name: str) -> Path:
    directory = ws.parties / name
    if "/" in name or name.startswith(".") or not directory.is_dir():
        raise IdentityError(f"unknown party {name!r}; see `sealroom party list`")
    return directory


def list_identities(ws: Workspace) -> list[PublicIdentity]:
    return [
        _read_identity(d)
        for d in sorted(ws.parties.iterdir())
        if d.is_dir() and not d.name.startswith(".")
    ]


def import_identity(ws: Workspace, path: Path) -> PublicIdentity:
    """Add a public identity exported elsewhere; the same keys twice is a no-op."""
    identity = _identity_file(path, f"{path}: no such file")
    target = ws.parties / identity.name
    if target.exists():
        existing = _read_identity(target)
        if existing == identity:
            return identity
        raise IdentityError(
            f"{path}: party {identity.name!r} already exists here with other keys "
            f"(fingerprint {existing.fingerprint})"
        )
    staging = Path(tempfile.mkdtemp(prefix=f".{identity.name}.", dir=ws.parties))
    _write_identity(staging, identity)
    os.rename(staging, target)
    return identity


def protect_party(ws: Workspace, name: str, passphrase: bytes | None = None) -> None:
    """Encrypt the keys of a party stored unencrypted (older sealroom or --no-passphrase)."""
    directory = _party_dir(ws, name)
    protection = key_protection(ws, name)
    if protection == "imported":
        raise IdentityError(f"party {name!r} was imported: its private keys live elsewhere")
    if protection == "encrypted":
        raise IdentityError(f"party {name!r}: its private keys are already encrypted")
    party = Party.load(directory)
    secret = passphrase if passphrase is not None else new_passphrase(name)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=directory))
    try:
        write_private_key(staging / SIGNING_FILE, party._signing, secret)
        write_private_key(staging / ENCRYPTION_FILE, party._encryption, secret)
        # Each rename replaces one plain file by its encrypted twin; a crash between the two
        # leaves one of each, which loads (the plain one with a warning) and can be redone.
        os.replace(staging / SIGNING_FILE, directory / SIGNING_FILE)
        os.replace(staging / ENCRYPTION_FILE, directory / ENCRYPTION_FILE)
        (directory / UNENCRYPTED_MARKER).unlink(missing_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
