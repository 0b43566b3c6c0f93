"""The consumer's check (`pipeline compose --package`): a pipeline's names against a package."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealroom.crypto.identity import create_party
from sealroom.data.card_build import CardDraft, build_card
from sealroom.errors import IdentityError
from sealroom.pipeline.card_signing import CardError, save_card, sign_card
from sealroom.pipeline.package_check import (
    PackageOptionError,
    check_pipeline_packages,
    parse_package_options,
)
from sealroom.pipeline.package_files import MissingFileError
from sealroom.pipeline.schema import Pipeline
from sealroom.workspace import Workspace
from tests.data.card_factories import IMAGES, LABELS, draft, seal_digits, write_digits
from tests.kms.factories import make_pipeline


def _pipeline(images: str = IMAGES) -> Pipeline:
    source = {"format": "idx", "images": images, "labels": LABELS}
    return make_pipeline(datasets=[{"id": "mnist", "source": source}], privacy=None)


def test_options_parse_and_a_malformed_one_is_named() -> None:
    assert parse_package_options(["mnist=a/m.sealed"]) == {"mnist": Path("a/m.sealed")}
    with pytest.raises(PackageOptionError, match=r"'=m\.sealed': write DATASET_ID=PACKAGE"):
        parse_package_options(["=m.sealed"])


def test_names_are_checked_against_the_verified_manifest_and_card(
    workspace: Workspace, tmp_path: Path
) -> None:
    hospital = create_party(workspace, "hospital", "provider")
    folder = write_digits(tmp_path / "data", n=20)
    sealed = seal_digits(folder, hospital, tmp_path / "mnist.sealed")
    packages = {"mnist": sealed.path}
    assert check_pipeline_packages(workspace, _pipeline(), packages) == 1
    with pytest.raises(MissingFileError, match=r"did you mean 'train-images-idx3-ubyte\.gz'"):
        check_pipeline_packages(workspace, _pipeline("train-images"), packages)
    with pytest.raises(PackageOptionError, match="has no dataset 'digits' \\(it reads mnist\\)"):
        check_pipeline_packages(workspace, _pipeline(), {"digits": sealed.path})
    card, _ = build_card(CardDraft.model_validate(draft()), folder, sealed.manifest, sealed.digest)
    clinic = create_party(workspace, "clinic", "provider")
    save_card(sealed.path, sign_card(card, clinic))
    with pytest.raises(CardError, match="signed by 'clinic'"):
        check_pipeline_packages(workspace, _pipeline(), packages)
    save_card(sealed.path, sign_card(card, hospital))
    assert check_pipeline_packages(workspace, _pipeline(), packages) == 1


def test_a_package_whose_owner_is_not_in_the_workspace_is_refused(
    workspace: Workspace, tmp_path: Path
) -> None:
    from sealroom.crypto.identity import Party

    stranger = Party.generate("hospital", "provider")
    sealed = seal_digits(write_digits(tmp_path / "d", n=5), stranger, tmp_path / "m.sealed")
    with pytest.raises(IdentityError, match="owned by 'hospital', whose identity is not in"):
        check_pipeline_packages(workspace, _pipeline(), {"mnist": sealed.path})
