"""Key grants: how a provider hands a data key to a key service it does not share a home with.

The provider, in its own workspace, seals the package's data key to the key service's
import key (HPKE, ``info`` naming the package and contract) and signs the grant — digest,
contract, release policy and wrapped key — with its Ed25519 key. The grant file is safe
to send over any channel: only that key service can open it, and only the party that the
contract names as the package's owner can have signed it. The service verifies both
before storing the key under its root key, exactly as a local ``keys import`` would.
"""

from __future__ import annotations

import json
from pathlib import Path

import rfc8785
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sealroom.contract.schema import Contract
from sealroom.crypto.hpke import open_sealed, seal_to
from sealroom.crypto.identity import Party, PublicIdentity
from sealroom.crypto.keyfiles import create_once, read_private_key, write_private_key
from sealroom.crypto.signing import b64, unb64
from sealroom.errors import SealroomError, WrongKeyError
from sealroom.kms.models import DIGEST_PATTERN, ReleasePolicy

IMPORT_KEY_FILE = "kms-import.pem"
SIGNATURE_DOMAIN = b"sealroom.key-grant.v1\n"


class KeyGrantError(SealroomError):
    """A key grant is malformed, signed by the wrong party, or addressed to another service."""


class KeyGrant(BaseModel):
    """A data key sealed to one key service, with the owner's release policy and signature."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    package_digest: str = Field(pattern=DIGEST_PATTERN)
    contract_id: str = Field(min_length=1)
    owner: str
    policy: ReleasePolicy
    service_key: str  # the import key it is sealed to (base64 X25519), to name a mismatch
    wrapped_key: str  # base64 HPKE blob
    signature: str = ""  # base64 Ed25519 over the canonical grant without this field

    def signed_bytes(self) -> bytes:
        return SIGNATURE_DOMAIN + rfc8785.dumps(self.model_dump(mode="json", exclude={"signature"}))


def grant_info(package_digest: str, contract_id: str) -> bytes:
    return f"sealroom.key-grant.v1|{package_digest}|{contract_id}".encode()


def package_owner(contract: Contract, package_digest: str) -> str:
    """The party the contract names as owner of ``package_digest`` (a dataset or the model)."""
    owners = {d.package_digest: d.provider for d in contract.datasets}
    if contract.model is not None:
        owners[contract.model.package_digest] = contract.model.owner
    if contract.inference is not None and contract.model is not None:
        # A rotated model is named by its owner's signed statement, not by the contract; its
        # key is released only while that statement makes it the model served.
        owners.setdefault(package_digest, contract.model.owner)
    if package_digest not in owners:
        raise KeyGrantError(f"contract {contract.id} does not name package {package_digest}")
    return owners[package_digest]


def make_grant(
    owner: Party, data_key: bytes, policy: ReleasePolicy, service_key_b64: str
) -> KeyGrant:
    """The owner's side: seal ``data_key`` to the service and sign the whole grant."""
    unsigned = KeyGrant(
        package_digest=policy.package_digest,
        contract_id=policy.contract_id,
        owner=owner.name,
        policy=policy,
        service_key=service_key_b64,
        wrapped_key=b64(
            seal_to(
                service_key_b64, data_key, grant_info(policy.package_digest, policy.contract_id)
            )
        ),
    )
    signature = owner.sign(unsigned.signed_bytes())
    return unsigned.model_copy(update={"signature": b64(signature)})


def open_grant(grant: KeyGrant, contract: Contract, service_key: X25519PrivateKey) -> bytes:
    """The service's side: the data key, once owner, contract and addressee all check out."""
    if grant.contract_id != contract.id or grant.policy.contract_id != contract.id:
        raise KeyGrantError(f"grant is for contract {grant.contract_id}, not {contract.id}")
    if grant.policy.package_digest != grant.package_digest:
        raise KeyGrantError("grant's release policy names another package")
    owner = package_owner(contract, grant.package_digest)
    if grant.owner != owner:
        raise KeyGrantError(
            f"contract {contract.id} names {owner} as owner of {grant.package_digest}, "
            f"not {grant.owner}"
        )
    ref = contract.party(owner)
    identity = PublicIdentity(
        name=ref.name, role=ref.role, signing_key=ref.signing_key, encryption_key=ref.encryption_key
    )
    identity.verify(unb64(grant.signature, f"signature of {owner}"), grant.signed_bytes())
    ours = b64(service_key.public_key().public_bytes_raw())
    if grant.service_key != ours:
        raise KeyGrantError("grant is sealed to another key service's import key")
    try:
        return open_sealed(
            service_key,
            unb64(grant.wrapped_key, "wrapped_key"),
            grant_info(grant.package_digest, grant.contract_id),
        )
    except WrongKeyError:
        raise KeyGrantError("grant's wrapped key does not open with this service's key") from None


def load_grant(path: Path) -> KeyGrant:
    try:
        return KeyGrant.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        raise KeyGrantError(f"{path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise KeyGrantError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "grant"
        raise KeyGrantError(f"{path}: {loc}: {first['msg']}") from None


def import_key_of(keys_dir: Path) -> X25519PrivateKey:
    """The service's HPKE import key, created on first use (0600)."""
    path = keys_dir / IMPORT_KEY_FILE
    create_once(path, lambda candidate: write_private_key(candidate, X25519PrivateKey.generate()))
    key = read_private_key(path, X25519PrivateKey)
    assert isinstance(key, X25519PrivateKey)
    return key


def service_public_document(keys_dir: Path) -> dict[str, str]:
    """What a provider needs to address grants to this service (``kms public-key``)."""
    public = import_key_of(keys_dir).public_key().public_bytes_raw()
    return {"service": "sealroom-kms", "import_key": b64(public)}
