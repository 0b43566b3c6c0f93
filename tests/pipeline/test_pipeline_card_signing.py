"""A card is believed only from the package's owner, for this package, listing its files."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from sealroom.crypto.identity import Party
from sealroom.crypto.package import SealResult
from sealroom.data.card_build import CardDraft, build_card
from sealroom.pipeline.card import DataCard
from sealroom.pipeline.card_signing import (
    CardError,
    load_signed_card,
    save_card,
    sign_card,
    verify_card,
)
from tests.data.card_factories import IMAGES, draft, seal_digits, write_digits

HOSPITAL = Party.generate("hospital", "provider")


def _card(tmp_path: Path, name: str = "mnist") -> tuple[DataCard, SealResult]:
    folder = write_digits(tmp_path / f"{name}-data", n=20, seed=len(name))
    sealed = seal_digits(folder, HOSPITAL, tmp_path / f"{name}.sealed")
    card, _ = build_card(CardDraft.model_validate(draft()), folder, sealed.manifest, sealed.digest)
    return card, sealed


def test_the_owners_card_round_trips_through_the_package_folder(tmp_path: Path) -> None:
    card, sealed = _card(tmp_path)
    path = save_card(sealed.path, sign_card(card, HOSPITAL))
    assert path == sealed.path / "card.json"
    loaded = load_signed_card(sealed.path)
    assert verify_card(loaded, HOSPITAL.identity, sealed.manifest, sealed.digest) == card


def test_a_card_signed_by_another_party_is_refused(tmp_path: Path) -> None:
    card, sealed = _card(tmp_path)
    clinic = Party.generate("clinic", "provider")
    with pytest.raises(CardError, match="signed by 'clinic', not by the package's owner"):
        verify_card(sign_card(card, clinic), HOSPITAL.identity, sealed.manifest, sealed.digest)
    impostor = Party.generate("hospital", "provider")  # the owner's name, other keys
    with pytest.raises(CardError, match="does not verify with hospital's signing key"):
        verify_card(sign_card(card, impostor), HOSPITAL.identity, sealed.manifest, sealed.digest)


def test_a_card_for_another_package_is_refused(tmp_path: Path) -> None:
    card, sealed = _card(tmp_path)
    _, other = _card(tmp_path, "other")
    signed = sign_card(card, HOSPITAL)
    with pytest.raises(CardError, match=f"describes package {sealed.digest}, not this package"):
        verify_card(signed, HOSPITAL.identity, other.manifest, other.digest)


def test_tampered_card_bytes_are_refused(tmp_path: Path) -> None:
    card, sealed = _card(tmp_path)
    path = save_card(sealed.path, sign_card(card, HOSPITAL))
    raw = bytearray(path.read_bytes())
    at = raw.index(b'"records": 20') + len(b'"records": ')
    raw[at] ^= 0x01  # "20" -> "30": still JSON, another card
    path.write_bytes(bytes(raw))
    tampered = load_signed_card(path)
    assert tampered.card.sources[0].records == 30
    with pytest.raises(CardError, match="does not verify"):
        verify_card(tampered, HOSPITAL.identity, sealed.manifest, sealed.digest)


def test_a_card_claiming_a_file_not_in_the_manifest_is_refused_even_when_signed(
    tmp_path: Path,
) -> None:
    card, sealed = _card(tmp_path)
    document = card.model_dump(mode="json")
    document["files"].append({"path": "t10k-images-idx3-ubyte.gz", "size": 10})
    lying = DataCard.model_validate(document)
    with pytest.raises(CardError, match=r"'t10k-images-idx3-ubyte\.gz' is not in the package"):
        verify_card(sign_card(lying, HOSPITAL), HOSPITAL.identity, sealed.manifest, sealed.digest)
    document = card.model_dump(mode="json")
    document["files"][0]["size"] += 1
    with pytest.raises(CardError, match="bytes on the card but"):
        verify_card(
            sign_card(DataCard.model_validate(document), HOSPITAL),
            HOSPITAL.identity,
            sealed.manifest,
            sealed.digest,
        )


def test_a_source_reading_a_file_the_card_does_not_list_is_not_a_card(tmp_path: Path) -> None:
    card, _ = _card(tmp_path)
    document = card.model_dump(mode="json")
    document["files"] = [f for f in document["files"] if f["path"] != IMAGES]
    with pytest.raises(ValidationError, match=f"source train reads file '{IMAGES}'"):
        DataCard.model_validate(document)


def test_card_text_cannot_carry_terminal_escapes_or_invisible_characters(tmp_path: Path) -> None:
    card, _ = _card(tmp_path)
    document = card.model_dump(mode="json")
    assert DataCard.model_validate({**document, "description": "two\nlines\tok"})
    with pytest.raises(ValidationError, match=r"(?s)description.*U\+001B"):
        DataCard.model_validate({**document, "description": "\x1b[2J\x1b[Hall clear"})
    document["sources"][0]["target"]["classes"][3] = "3\u202e"  # right-to-left override
    with pytest.raises(ValidationError, match=r"U\+202E"):
        DataCard.model_validate(document)
