"""The room checks a pipeline's file names against each package's signed manifest before it
calls the operator for anything (no budget, no attestation, no key)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import pytest

from sealroom.contract.signed import SignedContract
from sealroom.crypto.identity import Party
from sealroom.crypto.package import seal
from sealroom.errors import RoomError
from sealroom.pipeline.declaration import parse_declaration
from sealroom.pipeline.package_files import MissingFileError
from sealroom.room.channel import RoomRequest
from sealroom.room.events import RoomEvent
from sealroom.room.session import RoomSession
from tests.kms.factories import contract_data, make_contract, make_pipeline

TRAIN = {"format": "idx", "images": "train-images.gz", "labels": "train-labels.gz"}


class NoCalls:
    """A channel the check must not touch: any call to the operator fails the test."""

    def __getattr__(self, name: str) -> NoReturn:
        raise AssertionError(f"the room called the operator ({name}) during the file check")


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
    request = RoomRequest(
        run_id="run-1",
        contract=SignedContract(contract=contract),
        ledger_public_key="unused",
        pipeline=tmp_path / "pipeline.json",
        staging=tmp_path / "staging",
        packages={sealed.digest: sealed.path},
    )
    events: list[RoomEvent] = []
    session = RoomSession(request, events.append, NoCalls())  # type: ignore[arg-type]
    return session, contract


def _pipeline(source: dict[str, str]) -> Any:
    return make_pipeline(datasets=[{"id": "mnist", "source": source}], privacy=None)


def test_names_in_the_manifest_pass(tmp_path: Path) -> None:
    session, contract = _setup(tmp_path, Party.generate("hospital", "provider"))
    session._check_package_files(contract, _pipeline(TRAIN), None)
    folder = {"format": "image_folder", "root": "notes"}
    session._check_package_files(contract, _pipeline(folder), None)


def test_a_missing_file_is_one_line_naming_dataset_package_holdings_and_the_near_name(
    tmp_path: Path,
) -> None:
    session, contract = _setup(tmp_path, Party.generate("hospital", "provider"))
    digest = contract.datasets[0].package_digest
    wrong = {**TRAIN, "images": "train-images"}
    with pytest.raises(MissingFileError) as caught:
        session._check_package_files(contract, _pipeline(wrong), None)
    assert str(caught.value) == (
        f"dataset mnist (package {digest[:19]}…): no file 'train-images' in the package; "
        "it holds notes/readme.txt, train-images.gz, train-labels.gz "
        "(did you mean 'train-images.gz'?)"
    )
    with pytest.raises(MissingFileError, match=r"no file under folder 'note' .*'notes'"):
        folder = {"format": "image_folder", "root": "note"}
        session._check_package_files(contract, _pipeline(folder), None)


def test_a_declared_held_out_file_missing_from_the_package_is_named(tmp_path: Path) -> None:
    session, contract = _setup(tmp_path, Party.generate("hospital", "provider"))
    t10k = {"format": "idx", "images": "t10k-images.gz", "labels": "t10k-labels.gz"}
    declaration = parse_declaration(
        {"dataset": "mnist", "train": {"source": TRAIN}, "test": {"source": t10k}, "min_size": 1},
        "d",
    )
    with pytest.raises(MissingFileError, match="the provider's declared test source: no file"):
        session._check_package_files(contract, _pipeline(TRAIN), {"mnist": declaration})


def test_a_package_signed_by_another_party_is_refused_before_its_names_are_trusted(
    tmp_path: Path,
) -> None:
    owner = Party.generate("hospital", "provider")
    mallory = Party.generate("hospital", "provider")  # same name, other keys
    session, contract = _setup(tmp_path, owner, signer=mallory)
    with pytest.raises(RoomError, match=r"package mnist\.sealed"):
        session._check_package_files(contract, _pipeline(TRAIN), None)
