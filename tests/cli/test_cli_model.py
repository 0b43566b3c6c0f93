"""`sealroom model provision|rotate|retire|show` and the inference contract through the CLI:
seal the model, sign the contract, import the model key, provision, rotate, retire."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from sealroom.attest import SoftwareAttester, make_report_data
from sealroom.cli.main import app
from sealroom.crypto.hpke import generate_ephemeral, open_sealed
from sealroom.crypto.identity import create_party, load_party
from sealroom.crypto.package import owner_data_key
from sealroom.errors import KeyReleaseDenied
from sealroom.kms import KeyService, ModelReleaseRequest, release_info
from sealroom.ledger import Ledger
from sealroom.workspace import Workspace
from tests.kms.factories import make_pipeline

EXAMPLE = Path(__file__).resolve().parents[1] / "contract" / "data" / "inference-contract.yaml"
CONTRACT = "mnist-serve"
runner = CliRunner()


def ok(*args: str) -> Any:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def refused(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return " ".join(result.stderr.split())


def seal_model(tmp_path: Path, name: str, content: bytes, owner: str = "lab") -> tuple[Path, str]:
    source = tmp_path / f"{name}.onnx"
    source.write_bytes(content)
    out = tmp_path / f"{name}.sealed"
    report = ok("seal", str(source), "--owner", owner, "--out", str(out), "--format", "onnx")
    return out, report["digest"]


def signed_serving_contract(workspace: Workspace, tmp_path: Path, model: bytes) -> tuple[Path, str]:
    """Parties, the lab's sealed model and the inference contract signed for it."""
    create_party(workspace, "lab", "consumer")
    create_party(workspace, "operator", "operator")
    create_party(workspace, "clinic", "consumer")
    package, digest = seal_model(tmp_path, "model", model)
    draft = yaml.safe_load(EXAMPLE.read_text())
    draft["model"]["package_digest"] = digest
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(draft))
    ok("contract", "propose", str(path), "--as", "lab")
    ok("contract", "sign", CONTRACT, "--as", "operator")
    return package, digest


@pytest.fixture
def story(workspace: Workspace, tmp_path: Path) -> dict[str, Any]:
    """Parties, the lab's sealed model, the signed inference contract, the model key imported."""
    package, digest = signed_serving_contract(
        workspace, tmp_path, b"not really onnx, sealed all the same"
    )
    ok("keys", "import", str(package), "--as", "lab", "--contract", CONTRACT, "--allow-insecure")
    return {"package": package, "digest": digest}


def _release(ws: Workspace, digest: str) -> bytes:
    attester = SoftwareAttester(ws)
    private, public = generate_ephemeral()
    with KeyService(ws) as service:
        nonce = service.request_nonce()
        sealed = service.release_model(
            ModelReleaseRequest(
                evidence=attester.attest(make_report_data(nonce, public)),
                nonce=nonce,
                ephemeral_public_key=public,
                contract_id=CONTRACT,
                package_digest=digest,
                instance="srv-20261126T031500-abcdef",
            )
        )
    return open_sealed(private, sealed, release_info(digest))


def _model_entries(ws: Workspace) -> int:
    with Ledger.open(ws) as ledger:
        kinds = ("model.provisioned", "model.rotated", "model.retired")
        return sum(len(ledger.entries(k)) for k in kinds)


def test_contract_show_lists_the_inference_terms(
    workspace: Workspace, story: dict[str, Any]
) -> None:
    result = runner.invoke(app, ["contract", "show", CONTRACT])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert f"serves model {story['digest']} (owner lab;" in text
    assert "clients: clinic, auditor" in text
    assert "output: top 3 classes, scores to 2 decimals" in text
    assert "budget: 10000 examples per client" in text
    assert "input: (the only input) float32[1, 28, 28] per example" in text
    summary = ok("contract", "show", CONTRACT)
    assert summary["inference"]["output"]["kind"] == "top_k"


def test_the_owner_provisions_rotates_and_retires(
    workspace: Workspace, story: dict[str, Any], tmp_path: Path
) -> None:
    assert ok("model", "show", "--contract", CONTRACT)["digest"] is None
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("test passphrase, not a secret\n")
    made = ok(
        "model", "provision", "--contract", CONTRACT, "--package", story["digest"], "--as", "lab",
        "--passphrase-file", str(passphrase),
    )  # fmt: skip
    assert made["kind"] == "model.provisioned" and made["serving"] == story["digest"]
    key = owner_data_key(story["package"], load_party(workspace, "lab"))
    assert _release(workspace, story["digest"]) == key

    new_package, new_digest = seal_model(tmp_path, "model-v2", b"the second model")
    # The new model is not named by the contract: its owner imports its key all the same.
    ok(
        "keys",
        "import",
        str(new_package),
        "--as",
        "lab",
        "--contract",
        CONTRACT,
        "--allow-insecure",
    )
    rotated = ok("model", "rotate", "--contract", CONTRACT, "--package", new_digest, "--as", "lab")
    assert rotated["statement"]["previous_digest"] == story["digest"]
    with pytest.raises(KeyReleaseDenied, match="is not the model contract mnist-serve serves"):
        _release(workspace, story["digest"])
    assert _release(workspace, new_digest) == owner_data_key(
        new_package, load_party(workspace, "lab")
    )

    result = runner.invoke(app, ["model", "retire", "--contract", CONTRACT, "--as", "lab"])
    assert result.exit_code == 0, result.output
    assert "nothing is served under it any more" in " ".join(result.stdout.split())
    shown = ok("model", "show", "--contract", CONTRACT)
    assert shown["retired"] is True and shown["serving"] is None
    assert [h["action"] for h in shown["history"]] == ["provision", "rotate", "retire"]
    with pytest.raises(KeyReleaseDenied, match="retired by its owner"):
        _release(workspace, new_digest)
    line = refused(
        "model", "rotate", "--contract", CONTRACT, "--package", story["digest"], "--as", "lab"
    )
    assert "is retired" in line


@pytest.mark.parametrize("command", ["provision", "rotate", "retire"])
def test_a_non_owner_is_refused(workspace: Workspace, story: dict[str, Any], command: str) -> None:
    if command != "provision":
        ok("model", "provision", "--contract", CONTRACT, "--as", "lab")
    before = _model_entries(workspace)
    args = ["model", command, "--contract", CONTRACT, "--as", "operator"]
    if command == "rotate":
        args += ["--package", "sha256:" + "7" * 64]
    line = refused(*args)
    assert line == (
        "error: refused: operator is not the model owner of contract mnist-serve (owner: lab)"
    )
    assert _model_entries(workspace) == before


def test_a_bad_digest_is_one_line(workspace: Workspace, story: dict[str, Any]) -> None:
    line = refused(
        "model", "provision", "--contract", CONTRACT, "--package", "md5:x", "--as", "lab"
    )
    assert "'md5:x' is not a package digest" in line


def test_show_lists_ignored_entries(workspace: Workspace, story: dict[str, Any]) -> None:
    ok("model", "provision", "--contract", CONTRACT, "--as", "lab")
    with Ledger.open(workspace) as ledger:
        ledger.append("model.retired", {"contract_id": CONTRACT, "package_digest": story["digest"]})
    result = runner.invoke(app, ["model", "show", "--contract", CONTRACT])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert f"serving {story['digest']}" in text and "ignored ledger entry" in text


def test_policy_check_refuses_a_training_pipeline(
    workspace: Workspace, story: dict[str, Any], tmp_path: Path
) -> None:
    pipeline = tmp_path / "pipeline.json"
    pipeline.write_text(make_pipeline(privacy=None).model_dump_json())
    result = runner.invoke(
        app, ["policy", "check", "--contract", CONTRACT, "--pipeline", str(pipeline)]
    )
    assert result.exit_code == 1
    assert "contract mnist-serve is an inference contract: no training run" in result.stdout


def test_only_the_model_owner_imports_a_model_key(
    workspace: Workspace, story: dict[str, Any], tmp_path: Path
) -> None:
    """A package the contract does not name counts as the model owner's: anyone else's
    import under the inference contract is refused."""
    package, digest = seal_model(tmp_path, "clinic-model", b"the clinic's model", owner="clinic")
    line = refused(
        "keys", "import", str(package), "--as", "clinic", "--contract", CONTRACT, "--allow-insecure"
    )
    assert f"contract {CONTRACT} names lab as owner of {digest}, not clinic" in line


def test_sign_here_import_there(
    workspace: Workspace, story: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "provision.json"
    result = runner.invoke(
        app,
        ["model", "sign", "--contract", CONTRACT, "--action", "provision", "--as", "lab",
         "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _model_entries(workspace) == 0  # signing records nothing
    recorded = ok("model", "import", str(out))
    assert recorded["serving"] == story["digest"] and recorded["kind"] == "model.provisioned"
    line = refused("model", "import", str(out))
    assert "was already recorded (replayed)" in line
    line = refused(
        "model", "sign", "--contract", CONTRACT, "--action", "delete", "--as", "lab",
        "--out", str(tmp_path / "x.json"),
    )  # fmt: skip
    assert "--action 'delete': use provision, rotate or retire" in line
    assert _model_entries(workspace) == 1
