"""contract.rego honours a pinned pipeline digest; `sealroom policy check` reports a mismatch."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.pipeline.compose import pipeline_digest
from sealroom.policy import check_pipeline
from sealroom.workspace import Workspace
from tests.kms.factories import (
    CONTRACT_ID,
    contract_data,
    make_contract,
    make_parties,
    make_pipeline,
    pipeline_data,
    store_contract,
)


def _pinned(digest: str) -> dict[str, object]:
    return {"constraints": {**contract_data()["constraints"], "pipeline_digest": digest}}


def test_the_pinned_pipeline_is_allowed_and_any_other_denied() -> None:
    pipeline, other = make_pipeline(), make_pipeline(name="operator-choice")
    contract = make_contract(**_pinned(pipeline_digest(pipeline)))
    assert check_pipeline(contract, pipeline).violations == []
    assert check_pipeline(contract, other).violations == [
        f"pipeline digest {pipeline_digest(other)} is not the one contract {CONTRACT_ID} "
        f"pins ({pipeline_digest(pipeline)})"
    ]


def test_an_unpinned_contract_allows_any_conforming_pipeline() -> None:
    assert check_pipeline(make_contract(), make_pipeline(name="anything")).violations == []


def test_policy_check_reports_a_pinned_digest_mismatch(
    workspace: Workspace, tmp_path: Path
) -> None:
    store_contract(workspace, make_parties(workspace), **_pinned(pipeline_digest(make_pipeline())))
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(pipeline_data(name="operator-choice")))
    args = ["policy", "check", "--contract", CONTRACT_ID, "--pipeline", str(path), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    [violation] = json.loads(result.stdout)["violations"]
    assert f"is not the one contract {CONTRACT_ID} pins" in violation
