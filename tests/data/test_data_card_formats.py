"""Cards for other formats: the loader's class names (subfolders, string labels) number the
classes, so a draft that names them in another order is refused; unnamed ones are taken."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sealroom.crypto.identity import Party
from sealroom.crypto.package import seal
from sealroom.data.card_build import CardDraft, CardDraftError, build_card
from sealroom.pipeline.card import DataCard

HOSPITAL = Party.generate("hospital", "provider")


def _card(
    tmp_path: Path, folder: Path, source: dict[str, object], target: dict[str, object]
) -> DataCard:
    sealed = seal(folder, HOSPITAL, tmp_path / "p.sealed", wrap_for_owner=False)
    spec = CardDraft.model_validate(
        {"dataset": "d", "sources": [{"name": "all", "source": source, "target": target}]}
    )
    return build_card(spec, folder, sealed.manifest, sealed.digest)[0]


def test_an_image_folder_card_takes_the_subfolder_names(tmp_path: Path) -> None:
    folder = tmp_path / "scans"
    for label in ("normal", "tumour"):
        (folder / label).mkdir(parents=True)
        for i in range(2):
            pixels = np.full((6, 5), 40 * i, dtype=np.uint8)
            Image.fromarray(pixels).save(folder / label / f"{i}.png")
    card = _card(tmp_path, folder, {"format": "image_folder"}, {"kind": "class"})
    [source] = card.sources
    assert source.records == 4
    assert source.features.shape == [1, 6, 5] and source.features.dtype == "float32"
    assert source.target is not None and source.target.classes == ["normal", "tumour"]
    with pytest.raises(CardDraftError, match="numbers the classes normal, tumour"):
        _card(
            tmp_path / "again",
            folder,
            {"format": "image_folder"},
            {"kind": "class", "classes": ["tumour", "normal"]},
        )


def test_a_table_card_with_a_value_target_checks_its_range(tmp_path: Path) -> None:
    folder = tmp_path / "table"
    folder.mkdir()
    (folder / "rows.csv").write_text("age,weight,score\n30,70.5,0.2\n41,80.0,0.9\n")
    source = {"format": "table", "file": "rows.csv", "target": "score"}
    card = _card(tmp_path, folder, source, {"kind": "value", "range": {"min": 0, "max": 1}})
    [entry] = card.sources
    assert entry.records == 2 and entry.features.shape == [2]
    assert entry.target is not None and entry.target.dtype == "float32"
    with pytest.raises(CardDraftError, match=r"target\.range: the data fall outside"):
        _card(
            tmp_path / "again",
            folder,
            source,
            {"kind": "value", "range": {"min": 0, "max": 0.5}},
        )
