"""Pins from the command line: `pipeline sign`, `compose --sign-as`, `run --pipeline-signature`,
`contract show`."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.contract.pipeline_signature import load_pipeline_signature, verify_pipeline_signature
from sealroom.contract.store import load_contract
from sealroom.pipeline.compose import load_pipeline, pipeline_digest
from sealroom.workspace import Workspace
from tests.kms.factories import CONTRACT_ID, make_parties, pipeline_data, store_contract

runner = CliRunner()


def _one_error(output: str, needle: str) -> None:
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in " ".join(output.split()), output


def _pipeline(tmp_path: Path) -> Path:
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(pipeline_data()))
    return path


def test_sign_writes_a_signature_the_key_service_accepts(
    workspace: Workspace, tmp_path: Path
) -> None:
    store_contract(workspace, make_parties(workspace))
    pipeline = _pipeline(tmp_path)
    done = runner.invoke(
        app, ["pipeline", "sign", str(pipeline), "--as", "lab", "--contract", CONTRACT_ID, "--json"]
    )
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["file"] == f"{pipeline}.sig" and report["signer"] == "lab"
    signature = load_pipeline_signature(Path(report["file"]))
    contract = load_contract(workspace, CONTRACT_ID).contract
    verify_pipeline_signature(signature, contract, pipeline_digest(load_pipeline(pipeline)))


def test_only_the_consumer_can_sign(workspace: Workspace, tmp_path: Path) -> None:
    store_contract(workspace, make_parties(workspace))
    args = ["pipeline", "sign", str(_pipeline(tmp_path)), "--contract", CONTRACT_ID]
    done = runner.invoke(app, [*args, "--as", "operator"])
    assert done.exit_code == 1
    _one_error(done.output, "only its consumer 'lab' signs pipelines, not 'operator'")
    assert not (tmp_path / "pipeline.json.sig").exists()
    done = runner.invoke(app, [*args[:3], "--contract", "nope", "--as", "lab"])
    assert done.exit_code == 1
    _one_error(done.output, "no contract 'nope'")


def test_compose_can_sign_what_it_writes(workspace: Workspace, tmp_path: Path) -> None:
    store_contract(workspace, make_parties(workspace))
    parts = tmp_path / "parts"
    parts.mkdir()
    document = pipeline_data()
    for part in ("model", "loss", "train", "eval", "privacy"):
        (parts / f"{part}.yaml").write_text(yaml.safe_dump(document[part]))
    (parts / "dataset.yaml").write_text(yaml.safe_dump(document["datasets"][0]))
    out = tmp_path / "composed.json"
    args = ["pipeline", "compose", str(parts), "--out", str(out)]
    done = runner.invoke(app, [*args, "--sign-as", "lab", "--contract", CONTRACT_ID])
    assert done.exit_code == 0, done.output
    signature = load_pipeline_signature(Path(f"{out}.sig"))
    assert signature.pipeline_digest == pipeline_digest(load_pipeline(out))
    done = runner.invoke(app, [*args, "--sign-as", "lab"])
    assert done.exit_code == 2 and "--sign-as and --contract go together" in done.output


def test_run_names_a_missing_signature_file_without_starting_a_room(
    workspace: Workspace, tmp_path: Path
) -> None:
    store_contract(workspace, make_parties(workspace))
    missing = tmp_path / "nowhere.sig"
    args = ["run", "--contract", CONTRACT_ID, "--pipeline", str(_pipeline(tmp_path))]
    done = runner.invoke(app, [*args, "--pipeline-signature", str(missing)])
    assert done.exit_code == 1
    _one_error(done.output, f"{missing}: cannot read the pipeline signature")
    assert list(workspace.runs.iterdir()) == []


def test_contract_show_states_the_pins(workspace: Workspace, tmp_path: Path) -> None:
    make_parties(workspace)
    template = Path(__file__).resolve().parents[2] / "docs" / "contract-template.yaml"
    draft = yaml.safe_load(template.read_text())
    digest = "sha256:" + "ab" * 32
    draft["constraints"].update(pipeline_digest=digest, max_runs=3)
    path = tmp_path / "pinned.yaml"
    path.write_text(yaml.safe_dump(draft))
    done = runner.invoke(app, ["contract", "propose", str(path), "--as", "lab"])
    assert done.exit_code == 0, done.output
    shown = runner.invoke(app, ["contract", "show", draft["id"]])
    assert f"pipeline pinned: {digest}" in shown.output
    assert "runs: at most 3 per package" in shown.output
    unpinned = tmp_path / "plain.yaml"
    unpinned.write_text(template.read_text().replace("id: mnist-demo", "id: plain"))
    assert runner.invoke(app, ["contract", "propose", str(unpinned), "--as", "lab"]).exit_code == 0
    assert "pinned" not in runner.invoke(app, ["contract", "show", "plain"]).output
