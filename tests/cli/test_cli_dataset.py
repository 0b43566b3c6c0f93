"""`sealroom dataset declare` signs the provider's declaration and prints its digest;
`sealroom dataset show` verifies it; bad input is one line and exit 1."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.crypto.identity import create_party
from sealroom.data.declaration import declaration_digest, load_signed_declaration
from sealroom.room.declared import declarations_dir
from sealroom.workspace import Workspace

runner = CliRunner()

DRAFT = {
    "dataset": "fashion",
    "train": {"source": {"format": "idx", "images": "train-images", "labels": "train-labels"}},
    "test": {"source": {"format": "idx", "images": "t10k-images", "labels": "t10k-labels"}},
    "val": {"fraction": 0.1},
    "seed": 0,
    "min_size": 1000,
}


def draft(tmp_path: Path, **changes: object) -> Path:
    path = tmp_path / "declaration.yaml"
    path.write_text(yaml.safe_dump({**DRAFT, **changes}))
    return path


def test_declare_writes_the_signed_declaration_and_prints_its_digest(
    workspace: Workspace, tmp_path: Path
) -> None:
    create_party(workspace, "hospital", "provider")
    out = tmp_path / "fashion.decl.json"
    result = runner.invoke(
        app, ["dataset", "declare", str(draft(tmp_path)), "--as", "hospital", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    signed = load_signed_declaration(out)
    assert signed.signer == "hospital"
    assert signed.digest == declaration_digest(signed.declaration) in result.output
    shown = runner.invoke(app, ["dataset", "show", str(out)])
    assert shown.exit_code == 0, shown.output
    assert "signature of hospital verified" in shown.output
    assert "test file t10k-images" in shown.output and "val 0.1 of train" in shown.output


def test_declare_defaults_to_the_workspace_declarations_folder(
    workspace: Workspace, tmp_path: Path
) -> None:
    create_party(workspace, "hospital", "provider")
    result = runner.invoke(
        app, ["dataset", "declare", str(draft(tmp_path)), "--as", "hospital", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert Path(report["file"]).parent == declarations_dir(workspace.home)
    assert load_signed_declaration(Path(report["file"])).digest == report["digest"]


def test_a_tampered_declaration_fails_show_with_one_line(
    workspace: Workspace, tmp_path: Path
) -> None:
    create_party(workspace, "hospital", "provider")
    out = tmp_path / "d.json"
    runner.invoke(
        app, ["dataset", "declare", str(draft(tmp_path)), "--as", "hospital", "--out", str(out)]
    )
    document = json.loads(out.read_text())
    document["declaration"]["val"] = {"fraction": 0.98}  # the consumer's wish, not the provider's
    out.write_text(json.dumps(document))
    result = runner.invoke(app, ["dataset", "show", str(out)])
    assert result.exit_code == 1
    assert "does not verify" in result.output and len(result.output.strip().splitlines()) == 1


def test_a_malformed_draft_is_refused_naming_the_field(
    workspace: Workspace, tmp_path: Path
) -> None:
    create_party(workspace, "hospital", "provider")
    bad = draft(tmp_path, test={"fraction": 0.95}, val={"fraction": 0.1})
    result = runner.invoke(app, ["dataset", "declare", str(bad), "--as", "hospital"])
    assert result.exit_code == 1
    assert "nothing to train on" in result.output
    assert not declarations_dir(workspace.home).exists()


def test_show_against_a_contract_checks_its_pin_and_provider(
    workspace: Workspace, tmp_path: Path
) -> None:
    from tests.kms.factories import CONTRACT_ID, contract_data, make_parties, store_contract

    parties = make_parties(workspace)
    out = tmp_path / "mnist.decl.json"
    mnist = draft(tmp_path, dataset="mnist")
    runner.invoke(app, ["dataset", "declare", str(mnist), "--as", "hospital", "--out", str(out)])
    digest = load_signed_declaration(out).digest
    ref = {**contract_data()["datasets"][0], "declaration_digest": digest}
    store_contract(workspace, parties, datasets=[ref])
    result = runner.invoke(app, ["dataset", "show", str(out), "--contract", CONTRACT_ID])
    assert result.exit_code == 0, result.output
    assert f"signed by hospital and pinned by contract {CONTRACT_ID}" in result.output
    lab_signed = tmp_path / "lab.decl.json"
    runner.invoke(app, ["dataset", "declare", str(mnist), "--as", "lab", "--out", str(lab_signed)])
    result = runner.invoke(app, ["dataset", "show", str(lab_signed), "--contract", CONTRACT_ID])
    assert result.exit_code == 1
    assert "not by the dataset's provider 'hospital'" in result.output
