"""The scenarios' card drafts are valid and describe the data their prepare steps write."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealroom.crypto.identity import Party
from sealroom.crypto.package import seal
from sealroom.data.card_build import build_card, read_draft
from sealroom.pipeline.declaration import read_declaration_draft

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
FASHION = Path("/usr/share/datasets/fashion-mnist")
SHOP = Party.generate("shop", "provider")


@pytest.mark.slow  # scikit-learn's digits, resized (the drafts are checked fast below)
def test_the_mnist_card_describes_the_prepared_digits(tmp_path: Path) -> None:
    from scenarios.mnist.prepare import prepare

    folder = tmp_path / "mnist"
    prepare(folder)
    sealed = seal(folder, SHOP, tmp_path / "mnist.sealed", wrap_for_owner=False)
    draft = read_draft(SCENARIOS / "mnist" / "card.yaml")
    card, _ = build_card(draft, folder, sealed.manifest, sealed.digest)
    [source] = card.sources
    assert source.records == 1797 and source.features.shape == [1, 28, 28]
    assert source.target is not None and source.target.classes == [str(i) for i in range(10)]
    assert card.mock is not None and [f.path for f in card.files] == sorted(draft.files)


def test_the_card_drafts_are_valid_and_fashions_matches_its_declaration() -> None:
    mnist = read_draft(SCENARIOS / "mnist" / "card.yaml")
    assert mnist.dataset == "mnist" and mnist.mock is not None
    draft = read_draft(SCENARIOS / "fashion" / "card.yaml")
    declaration = read_declaration_draft(SCENARIOS / "dp-fashion" / "declaration.yaml")
    sources = {s.name: s.source for s in draft.sources}
    assert sources["train"] == declaration.train.source
    assert sources["t10k"] == declaration.test.source  # type: ignore[union-attr]
    assert draft.dataset == declaration.dataset


@pytest.mark.slow  # 70,000 images through the loader
@pytest.mark.skipif(not FASHION.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_the_fashion_card_describes_the_installed_files(tmp_path: Path) -> None:
    from scenarios.fashion.prepare import prepare as prepare_fashion

    folder = tmp_path / "fashion"
    prepare_fashion(folder, FASHION)
    sealed = seal(folder, SHOP, tmp_path / "fashion.sealed", wrap_for_owner=False)
    declaration = read_declaration_draft(SCENARIOS / "dp-fashion" / "declaration.yaml")
    draft = read_draft(SCENARIOS / "fashion" / "card.yaml")
    card, _ = build_card(draft, folder, sealed.manifest, sealed.digest, declaration)
    assert [s.records for s in card.sources] == [60_000, 10_000]
    assert card.declaration == declaration
