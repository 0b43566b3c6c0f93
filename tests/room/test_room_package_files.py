"""The room checks a pipeline's file names against each package's signed manifest (at the
policy stage, before any budget, attestation or key call: tests/e2e/test_e2e_package_files.py
shows a real run leaves no key.released entry)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sealroom.crypto.identity import Party
from sealroom.crypto.package import seal
from sealroom.errors import RoomError
from sealroom.pipeline.declaration import parse_declaration
from sealroom.pipeline.package_files import MissingFileError
from sealroom.room.packages import check_package_files
from tests.kms.factories import contract_data, make_contract, make_pipeline

TRAIN = {"format": "idx", "images": "train-images.gz", "labels": "train-labels.gz"}


def _setup(tmp_path: Path, owner: Party, signer: Party | None = None) -> tuple[Any, Any]:
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in ("train-images.gz", "train-labels.gz", "notes/readme.txt"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(name.encode())
    sealed = seal(folder, signer or owner, tmp_path / "mnist.sealed", wrap_for_owner=False)
    data = contract_data({"hospital": owner.identity})
    ref = {**data["datasets"][0], "package_digest": sealed.digest, "declaration_digest": None}
    contract = make_contract({"hospital": owner.identity}, datasets=[ref])
    return {sealed.digest: sealed.path}, contract


def _pipeline(source: dict[str, str]) -> Any:
    return make_pipeline(datasets=[{"id": "mnist", "source": source}], privacy=None)


def test_names_in_the_manifest_pass(tmp_path: Path) -> None:
    packages, contract = _setup(tmp_path, Party.generate("hospital", "provider"))
    check_package_files(contract, _pipeline(TRAIN), None, packages)
    folder = {"format": "image_folder", "root": "notes"}
    check_package_files(contract, _pipeline(folder), None, packages)


def test_a_missing_file_is_one_line_naming_dataset_package_holdings_and_the_near_name(
    tmp_path: Path,
) -> None:
    packages, contract = _setup(tmp_path, Party.generate("hospital", "provider"))
    digest = contract.datasets[0].package_digest
    wrong = {**TRAIN, "images": "train-images"}
    with pytest.raises(MissingFileError) as caught:
        check_package_files(contract, _pipeline(wrong), None, packages)
    assert str(caught.value) == (
        f"dataset mnist (package {digest[:19]}…): no file 'train-images' in the package; "
        "it holds notes/readme.txt, train-images.gz, train-labels.gz "
        "(did you mean 'train-images.gz'?)"
    )
    with pytest.raises(MissingFileError, match=r"no file under folder 'note' .*'notes'"):
        folder = {"format": "image_folder", "root": "note"}
        check_package_files(contract, _pipeline(folder), None, packages)


def test_a_declared_held_out_file_missing_from_the_package_is_named(tmp_path: Path) -> None:
    packages, contract = _setup(tmp_path, Party.generate("hospital", "provider"))
    t10k = {"format": "idx", "images": "t10k-images.gz", "labels": "t10k-labels.gz"}
    declaration = parse_declaration(
        {"dataset": "mnist", "train": {"source": TRAIN}, "test": {"source": t10k}, "min_size": 1},
        "d",
    )
    with pytest.raises(MissingFileError, match="the provider's declared test source: no file"):
        check_package_files(contract, _pipeline(TRAIN), {"mnist": declaration}, packages)


def test_a_package_signed_by_another_party_is_refused_before_its_names_are_trusted(
    tmp_path: Path,
) -> None:
    owner = Party.generate("hospital", "provider")
    mallory = Party.generate("hospital", "provider")  # same name, other keys
    packages, contract = _setup(tmp_path, owner, signer=mallory)
    with pytest.raises(RoomError, match=r"package mnist\.sealed"):
        check_package_files(contract, _pipeline(TRAIN), None, packages)
