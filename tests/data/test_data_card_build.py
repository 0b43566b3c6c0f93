"""A card is computed from the sealed folder (loaders, manifest), its declared words checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealroom.crypto.identity import Party
from sealroom.crypto.package import SealResult
from sealroom.data.card_build import CardDraft, CardDraftError, build_card, read_draft
from sealroom.pipeline.declaration import parse_declaration
from sealroom.pipeline.package_files import MissingFileError
from tests.data.card_factories import (
    CLASSES,
    IMAGES,
    LABELS,
    T10K_IMAGES,
    T10K_LABELS,
    draft,
    seal_digits,
    write_digits,
    write_draft,
)

HOSPITAL = Party.generate("hospital", "provider")


def _build(
    tmp_path: Path, t10k: int = 0, **overrides: object
) -> tuple[CardDraft, Path, SealResult]:
    folder = write_digits(tmp_path / "data", n=30, t10k=t10k)
    sealed = seal_digits(folder, HOSPITAL, tmp_path / "mnist.sealed")
    spec = CardDraft.model_validate(draft(**overrides))
    return spec, folder, sealed


def test_counts_shapes_dtypes_and_files_come_from_the_data_and_the_manifest(
    tmp_path: Path,
) -> None:
    spec, folder, sealed = _build(tmp_path)
    card, loaded = build_card(spec, folder, sealed.manifest, sealed.digest)
    [source] = card.sources
    assert source.records == 30 and len(loaded["train"]) == 30
    assert source.features.shape == [1, 28, 28] and source.features.dtype == "float32"
    assert source.target is not None and source.target.classes == CLASSES
    assert source.target.dtype == "int64" and source.target.shape == []
    assert card.package_digest == sealed.digest
    assert [(f.path, f.size, f.description) for f in card.files] == [
        (IMAGES, (folder / IMAGES).stat().st_size, "images"),
        (LABELS, (folder / LABELS).stat().st_size, ""),
    ]
    assert card.mock is not None and card.mock.seed == 3


def test_a_declared_range_the_data_break_is_refused(tmp_path: Path) -> None:
    source = {**draft()["sources"][0], "features": {"range": {"min": 0, "max": 0.5}}}
    spec, folder, sealed = _build(tmp_path, sources=[source])
    with pytest.raises(CardDraftError, match=r"sources\.train\.features\.range: the data fall"):
        build_card(spec, folder, sealed.manifest, sealed.digest)


def test_too_few_label_names_are_refused(tmp_path: Path) -> None:
    target = {"kind": "class", "classes": ["a", "b"]}
    source = {**draft()["sources"][0], "target": target}
    spec, folder, sealed = _build(tmp_path, sources=[source])
    with pytest.raises(CardDraftError, match="labels run from 0 to 9 but 2 class names"):
        build_card(spec, folder, sealed.manifest, sealed.digest)


def test_a_source_naming_a_file_not_in_the_package_is_refused_with_the_near_name(
    tmp_path: Path,
) -> None:
    wrong = {"format": "idx", "images": "train-images-idx3-ubyte", "labels": LABELS}
    source = {**draft()["sources"][0], "source": wrong}
    spec, folder, sealed = _build(tmp_path, sources=[source])
    with pytest.raises(MissingFileError, match=rf"did you mean '{IMAGES}'\?"):
        build_card(spec, folder, sealed.manifest, sealed.digest)


def test_a_folder_that_is_not_the_sealed_one_is_refused(tmp_path: Path) -> None:
    spec, folder, sealed = _build(tmp_path)
    write_digits(folder, n=30, seed=1)  # same names, other bytes
    with pytest.raises(CardDraftError, match="not the bytes the package sealed"):
        build_card(spec, folder, sealed.manifest, sealed.digest)


def test_the_declaration_rides_on_the_card_and_its_files_must_be_in_the_package(
    tmp_path: Path,
) -> None:
    spec, folder, sealed = _build(tmp_path, t10k=12)
    train = {"format": "idx", "images": IMAGES, "labels": LABELS}
    t10k = {"format": "idx", "images": T10K_IMAGES, "labels": T10K_LABELS}
    body = {"dataset": "mnist", "train": {"source": train}, "min_size": 10}
    declared = parse_declaration({**body, "test": {"source": t10k}}, "d")
    card, _ = build_card(spec, folder, sealed.manifest, sealed.digest, declared)
    assert card.declaration == declared
    typo = {**t10k, "labels": "t10k-labels-idx1-ubyte"}
    wrong = parse_declaration({**body, "test": {"source": typo}}, "d")
    with pytest.raises(MissingFileError, match="the provider's declared test source: no file"):
        build_card(spec, folder, sealed.manifest, sealed.digest, wrong)


def test_a_draft_with_an_unknown_field_names_it(tmp_path: Path) -> None:
    path = write_draft(tmp_path / "card.yaml", titel="x")
    with pytest.raises(CardDraftError, match=r"card\.yaml: titel: Extra inputs"):
        read_draft(path)
    assert read_draft(write_draft(tmp_path / "ok.yaml")).dataset == "mnist"
