"""Signing, verifying and storing a data card (mirrors :mod:`sealroom.pipeline.declaration`).

The package's owner signs the RFC 8785 canonical JSON of the card under the domain label
``sealroom.data-card.v1`` (so a card signature can never pass for a manifest's or a
declaration's). A card is believed only when all of this holds: the signer is the owner
the package's signed manifest names, the signature verifies with that owner's key, the
card names this package's digest, and its files are exactly the manifest's (paths and
sizes) — a card cannot claim a file the package does not hold.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import rfc8785
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sealroom.contract.schema import NAME_PATTERN
from sealroom.crypto.identity import Party, PublicIdentity
from sealroom.crypto.manifest import Manifest
from sealroom.crypto.signing import b64, unb64, verify_signature
from sealroom.errors import SignatureError
from sealroom.files import read_capped, write_atomic
from sealroom.pipeline.card import CARD_FILE, DataCard

DOMAIN = b"sealroom.data-card.v1\n"
MAX_CARD_BYTES = 4 << 20


class CardError(SignatureError):
    """A data card is malformed, signed by another party, or not for this package."""


def canonical_bytes(card: DataCard) -> bytes:
    """RFC 8785 canonical JSON of the card: what the owner signs."""
    return bytes(rfc8785.dumps(card.model_dump(mode="json")))


def card_digest(card: DataCard) -> str:
    """``sha256:<hex>`` of the canonical bytes."""
    return "sha256:" + hashlib.sha256(canonical_bytes(card)).hexdigest()


def _message(card: DataCard) -> bytes:
    return DOMAIN + canonical_bytes(card)


class SignedCard(BaseModel):
    """A card with its owner's Ed25519 signature (over DOMAIN + canonical bytes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    card: DataCard
    signer: str = Field(pattern=NAME_PATTERN)
    signature: str = Field(max_length=200)

    @property
    def digest(self) -> str:
        return card_digest(self.card)


def sign_card(card: DataCard, owner: Party) -> SignedCard:
    """``owner`` (the package's owner) signs ``card``."""
    return SignedCard(card=card, signer=owner.name, signature=b64(owner.sign(_message(card))))


def check_card_files(card: DataCard, manifest: Manifest) -> None:
    """CardError unless the card lists exactly the manifest's files, with their sizes."""
    sizes = {f.path: f.size for f in manifest.files}
    for entry in card.files:
        if entry.path not in sizes:
            raise CardError(
                f"card of dataset {card.dataset}: file {entry.path!r} is not in the package "
                f"(its signed manifest lists {len(sizes)} files)"
            )
        if entry.size != sizes[entry.path]:
            raise CardError(
                f"card of dataset {card.dataset}: file {entry.path!r} is {entry.size} bytes "
                f"on the card but {sizes[entry.path]} in the package's manifest"
            )
    listed = {f.path for f in card.files}
    absent = [p for p in sizes if p not in listed]
    if absent:
        raise CardError(
            f"card of dataset {card.dataset}: the package's file {absent[0]!r} is not on the card"
        )


def verify_card(
    signed: SignedCard, owner: PublicIdentity, manifest: Manifest, package_digest: str
) -> DataCard:
    """The card, if ``owner`` signed it, it names ``package_digest`` and lists exactly the
    files of ``manifest``. The caller has verified the manifest (SealedPackage.open: its
    owner's signature, so ``owner`` is the manifest's owner and ``package_digest`` its digest).
    """
    card = signed.card
    where = f"card of dataset {card.dataset}"
    if signed.signer != owner.name:
        raise CardError(
            f"{where}: signed by {signed.signer!r}, not by the package's owner {owner.name!r}"
        )
    try:
        raw = unb64(signed.signature, "signature")
        verify_signature(owner.signing_key, raw, _message(card), signed.signer)
    except SignatureError:
        raise CardError(
            f"{where}: the signature from {signed.signer!r} does not verify with "
            f"{owner.name}'s signing key (the card was changed after signing, or another "
            "key signed it)"
        ) from None
    if card.package_digest != package_digest:
        raise CardError(
            f"{where}: it describes package {card.package_digest}, "
            f"not this package ({package_digest})"
        )
    check_card_files(card, manifest)
    return card


def save_card(package: Path, signed: SignedCard) -> Path:
    """Write ``<package>/card.json`` atomically; its path."""
    path = package / CARD_FILE
    write_atomic(path, (signed.model_dump_json(indent=2) + "\n").encode("utf-8"))
    return path


def _first_problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "document"
    return f"{field}: {first['msg'].removeprefix('Value error, ')}"


def parse_signed_card(data: Any, where: str) -> SignedCard:
    """A SignedCard from parsed JSON; CardError naming the field otherwise."""
    try:
        return SignedCard.model_validate(data)
    except ValidationError as exc:
        raise CardError(f"{where}: {_first_problem(exc)}") from None


def load_signed_card(path: Path) -> SignedCard:
    """A signed card file, or the card of a package folder (unverified: see verify_card)."""
    if path.is_dir():
        path = path / CARD_FILE
    raw = read_capped(path, MAX_CARD_BYTES, "a data card", CardError)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CardError(f"{path}: not a JSON signed data card") from None
    return parse_signed_card(data, str(path))
