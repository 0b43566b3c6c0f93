"""`train --local --mock`, `--declaration` and `package mock`: the mnist scenario's configs run on
mock data drawn from a signed card, every output says MOCK DATA, a wrong file name fails as in
the room, and a card that fails a check is refused (tampered, another signer)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sealroom.crypto.identity import Party, create_party
from sealroom.crypto.package import SealedPackage
from sealroom.pipeline.card import CARD_FILE, DataCard
from sealroom.pipeline.card_signing import save_card, sign_card
from sealroom.pipeline.declaration import DatasetDeclaration, save_declaration, sign_declaration
from sealroom.workspace import Workspace
from tests.data.card_factories import (
    CLASSES,
    IMAGES,
    LABELS,
    T10K_IMAGES,
    T10K_LABELS,
    seal_digits,
    write_digits,
)

runner = CliRunner()
MNIST = Path(__file__).resolve().parents[2] / "scenarios" / "mnist"
TINY_MODEL = """model:
  format: declarative
  layers:
    - {type: flatten}
    - {type: linear, params: {in_features: 784, out_features: 10}}
input_shape: [1, 28, 28]
"""
TRAIN = {"format": "idx", "images": IMAGES, "labels": LABELS}
T10K = {"format": "idx", "images": T10K_IMAGES, "labels": T10K_LABELS}


def cli(*args: str) -> Any:
    from sealroom.cli.main import app

    return runner.invoke(app, list(args))


def flat(output: str) -> str:
    return " ".join(output.split())


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    """The mnist scenario's config parts, with a small declarative model (no ONNX file)."""
    folder = tmp_path / "scenario"
    folder.mkdir()
    for part in ("dataset", "train", "loss", "eval", "pipeline"):
        shutil.copy(MNIST / f"{part}.yaml", folder)
    (folder / "model.yaml").write_text(TINY_MODEL)
    return folder


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the mock's temporary folder goes, to see that it is removed."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


LOADED = {"shape": [1, 28, 28], "dtype": "float32", "range": {"min": 0, "max": 1}}  # card builder's
STORED = {"shape": [28, 28], "dtype": "uint8", "range": {"min": 0, "max": 255}}  # as the file holds


def source(
    name: str, block: dict[str, str], records: int, features: dict[str, Any] = LOADED
) -> dict[str, Any]:
    return {
        "name": name,
        "source": block,
        "records": records,
        "features": features,
        "target": {"kind": "class", "dtype": "int64", "classes": CLASSES},
    }


def package_with_card(
    ws: Workspace,
    tmp_path: Path,
    signer: Party | None = None,
    features: dict[str, Any] = LOADED,
    **card: Any,
) -> Path:
    """hospital's sealed digits (train + t10k files) with a card signed by ``signer``."""
    hospital = create_party(ws, "hospital", "provider")
    folder = write_digits(tmp_path / "data", n=30, t10k=20)
    sealed = seal_digits(folder, hospital, ws.packages / "mnist.sealed")
    manifest = SealedPackage.read_manifest(sealed.path)
    fields: dict[str, Any] = {
        "dataset": "mnist",
        "package_digest": sealed.digest,
        "files": [{"path": f.path, "size": f.size} for f in manifest.files],
        "sources": [source("train", TRAIN, 30, features), source("t10k", T10K, 20, features)],
        "mock": {"seed": 5, "records": 40},
        **card,
    }
    save_card(sealed.path, sign_card(DataCard.model_validate(fields), signer or hospital))
    return sealed.path


def test_mock_run_of_the_mnist_configs_marks_every_output(
    workspace: Workspace, tmp_path: Path, scenario: Path, private_tmp: Path
) -> None:
    package = package_with_card(workspace, tmp_path)
    out = tmp_path / "out"
    done = cli(
        "train", "--local", str(scenario), "--mock", "--data", f"mnist={package}",
        "--epochs", "1", "--out", str(out),
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    text = flat(done.output)
    assert "card of dataset mnist: signed by hospital, the package's owner; verified" in text
    assert "MOCK DATA: dataset mnist is random records drawn from its card" in text
    assert text.endswith("they say nothing about the real data")
    report = json.loads((out / "metrics.json").read_text())
    assert report["mock"] is True and "MOCK DATA" in report["mock_note"]
    assert report["samples"] == {"train": 32, "val": 4, "test": 4}  # 40 mock records, 80/10/10
    assert (out / "training_log.txt").read_text().startswith("MOCK DATA: ")
    assert list(private_tmp.glob("sealroom-mock-*")) == []  # the mock folder is gone


def test_mock_run_from_a_card_of_stored_uint8_pixels_reports_mock_in_json(
    workspace: Workspace, tmp_path: Path, scenario: Path
) -> None:
    package = package_with_card(workspace, tmp_path, features=STORED)
    done = cli(
        "train", "--local", str(scenario), "--mock", "--data", f"mnist={package / CARD_FILE}",
        "--epochs", "1", "--out", str(tmp_path / "out"), "--json",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["mock"] is True


def test_a_wrong_file_name_fails_on_the_mock_as_in_the_room(
    workspace: Workspace, tmp_path: Path, scenario: Path, private_tmp: Path
) -> None:
    package = package_with_card(workspace, tmp_path)
    dataset = scenario / "dataset.yaml"
    dataset.write_text(dataset.read_text().replace(IMAGES, "train-images-idx3-ubyte"))
    out = tmp_path / "out"
    done = cli(
        "train", "--local", str(scenario), "--mock", "--data", f"mnist={package}",
        "--epochs", "1", "--out", str(out),
    )  # fmt: skip
    assert done.exit_code == 1
    errors = [line for line in done.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert (
        "error: dataset mnist (package sha256:" in errors[0]
        and "no file 'train-images-idx3-ubyte' in the package; it holds t10k-images-idx3-ubyte.gz"
        in errors[0]
        and errors[0].endswith("(did you mean 'train-images-idx3-ubyte.gz'?)")
    ), errors
    assert not out.exists() and list(private_tmp.glob("sealroom-mock-*")) == []


def test_a_card_declaration_splits_as_declared(
    workspace: Workspace, tmp_path: Path, scenario: Path
) -> None:
    declaration = {
        "dataset": "mnist",
        "train": {"source": TRAIN},
        "test": {"source": T10K},
        "val": {"fraction": 0.25},
        "seed": 1,
        "min_size": 100,  # the real data's rule: a mock of 40 records still runs
    }
    package = package_with_card(workspace, tmp_path, declaration=declaration)
    out = tmp_path / "out"
    done = cli(
        "train", "--local", str(scenario), "--mock", "--data", f"mnist={package}",
        "--epochs", "1", "--out", str(out),
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "declared splits: dataset mnist: train train-images-idx3-ubyte.gz; val 0.25 of" in flat(
        done.output
    )
    assert "minimum of 100 records per held-out split applies to the real data" in flat(done.output)
    report = json.loads((out / "metrics.json").read_text())
    assert report["samples"] == {"train": 30, "val": 10, "test": 40}  # t10k mocked whole


def test_declaration_file_splits_a_cleartext_run(
    workspace: Workspace, tmp_path: Path, scenario: Path
) -> None:
    hospital = create_party(workspace, "hospital", "provider")
    folder = write_digits(tmp_path / "data", n=30, t10k=20)
    declaration = DatasetDeclaration.model_validate(
        {"dataset": "mnist", "train": {"source": TRAIN}, "test": {"source": T10K}, "min_size": 5}
    )
    path = tmp_path / "mnist.declaration.json"
    save_declaration(path, sign_declaration(declaration, hospital))
    out = tmp_path / "out"
    done = cli(
        "train", "--local", str(scenario), "--data", f"mnist={folder}", "--declaration",
        str(path), "--epochs", "1", "--out", str(out),
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    report = json.loads((out / "metrics.json").read_text())
    assert report["samples"] == {"train": 30, "val": 0, "test": 20} and "mock" not in report


def test_package_mock_writes_the_cards_files(workspace: Workspace, tmp_path: Path) -> None:
    package = package_with_card(workspace, tmp_path)
    out = tmp_path / "mock"
    done = cli("package", "mock", str(package), "--out", str(out), "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["trust"] == "verified" and report["records"] == {"train": 40, "t10k": 40}
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [IMAGES, LABELS, T10K_IMAGES, T10K_LABELS]
    )


def test_a_card_file_alone_is_checked_by_its_signature_or_said_unverified(
    workspace: Workspace, tmp_path: Path
) -> None:
    package = package_with_card(workspace, tmp_path)
    alone = tmp_path / "shared" / "mnist.card.json"
    alone.parent.mkdir()
    shutil.copy(package / CARD_FILE, alone)
    done = cli("package", "mock", str(alone), "--out", str(tmp_path / "m1"), "--json")
    assert json.loads(done.stdout)["trust"] == "signature"
    done = cli("package", "mock", str(alone), "--out", str(tmp_path / "m0"))
    assert "CARD NOT CHECKED AGAINST ITS PACKAGE" in done.output
    assert "signed by hospital (signature verified; no package beside it" in flat(done.output)
    shutil.rmtree(workspace.parties / "hospital")  # a consumer that never imported hospital
    done = cli("package", "mock", str(alone), "--out", str(tmp_path / "m2"))
    assert done.exit_code == 0, done.output
    assert "UNVERIFIED CARD" in done.output and "'hospital' is not a party" in flat(done.output)


@pytest.mark.parametrize("alone", [False, True])
def test_attack_a_changed_card_is_refused(
    workspace: Workspace, tmp_path: Path, alone: bool
) -> None:
    package = package_with_card(workspace, tmp_path)
    card_path = package / CARD_FILE
    card_path.write_text(card_path.read_text().replace('"records": 40', '"records": 41'))
    if alone:
        card_path = Path(shutil.copy(card_path, tmp_path / "card.json"))
    out = tmp_path / "mock"
    done = cli("package", "mock", str(card_path), "--out", str(out))
    assert done.exit_code == 1
    assert "card of dataset mnist: the signature from 'hospital' does not verify" in flat(
        done.output
    )
    assert not out.exists()


def test_attack_a_card_signed_by_another_party_is_refused(
    workspace: Workspace, tmp_path: Path, scenario: Path
) -> None:
    lab = create_party(workspace, "lab", "consumer")
    package = package_with_card(workspace, tmp_path, signer=lab)
    done = cli(
        "train", "--local", str(scenario), "--mock", "--data", f"mnist={package}",
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert done.exit_code == 1
    assert "signed by 'lab', not by the package's owner 'hospital'" in flat(done.output)


def test_a_card_without_a_mock_offer_and_a_missing_path_are_refused(
    workspace: Workspace, tmp_path: Path, scenario: Path
) -> None:
    package = package_with_card(workspace, tmp_path, mock=None)
    done = cli("package", "mock", str(package), "--out", str(tmp_path / "m"))
    assert done.exit_code == 1 and "its card offers no mock data" in flat(done.output)
    missing = tmp_path / "nowhere.sealed"
    done = cli(
        "train", "--local", str(scenario), "--mock", "--data", f"mnist={missing}",
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert done.exit_code == 1
    assert f"dataset 'mnist': {missing} not found (pass --data mnist=X.sealed" in flat(done.output)


def test_a_declaration_file_is_checked_by_its_signers_key_or_said_unverified(
    workspace: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sealroom.cli.train_mock import declarations_from

    hospital = create_party(workspace, "hospital", "provider")
    declaration = DatasetDeclaration.model_validate(
        {"dataset": "mnist", "train": {"source": TRAIN}, "test": {"source": T10K}, "min_size": 5}
    )
    path = tmp_path / "mnist.declaration.json"
    save_declaration(path, sign_declaration(declaration, hospital))
    assert declarations_from([path]) == {"mnist": declaration}
    assert "UNVERIFIED" not in capsys.readouterr().err
    changed = tmp_path / "changed.json"
    changed.write_text(path.read_text().replace('"min_size": 5', '"min_size": 1'))
    done = cli("train", "--local", str(tmp_path), "--declaration", str(changed), "--out", "x")
    assert done.exit_code == 1
    assert "the signature from 'hospital' does not verify" in flat(done.output)
    shutil.rmtree(workspace.parties / "hospital")
    assert declarations_from([path]) == {"mnist": declaration}
    assert "UNVERIFIED DECLARATION" in capsys.readouterr().err
