"""The operator as adversary: it starts `sealroom run`, so it picks the pipeline file.

Attacks: substitute a pipeline (unsigned, signed by the operator, with the consumer's
signature from another contract, with the consumer's signature for another pipeline), run
another pipeline than the one a contract pins, run more often than max_runs. Each must end
with no key released and the denial in the ledger; the honest path must still release.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sealroom.attest import SoftwareAttester
from sealroom.cli.main import app
from sealroom.contract.canonical import contract_digest
from sealroom.contract.pipeline_signature import (
    PipelineSignature,
    save_pipeline_signature,
    sign_pipeline,
    signature_path,
    signed_message,
)
from sealroom.contract.store import load_contract
from sealroom.crypto.identity import Party
from sealroom.crypto.signing import b64
from sealroom.errors import KeyReleaseDenied
from sealroom.kms import KeyService
from sealroom.kms.fetch import fetch_data_key
from sealroom.ledger import Ledger
from sealroom.pipeline.compose import pipeline_digest
from sealroom.pipeline.declaration import parse_declaration, save_declaration, sign_declaration
from sealroom.room.declared import declarations_dir
from sealroom.workspace import Workspace
from tests.kms.conftest import Room, default_policy
from tests.kms.factories import (
    CONTRACT_ID,
    DATASET_DIGEST,
    consumer_signature,
    contract_data,
    make_contract,
    make_parties,
    make_pipeline,
    pipeline_data,
    store_contract,
)

runner = CliRunner()


@pytest.fixture
def service(workspace: Workspace) -> Iterator[KeyService]:
    with KeyService(workspace) as svc:
        yield svc


@pytest.fixture
def room(workspace: Workspace) -> Room:
    return Room(workspace, SoftwareAttester(workspace))


@pytest.fixture
def data_key() -> bytes:
    return secrets.token_bytes(32)


HONEST = make_pipeline()  # what the consumer wrote and signed
SUBSTITUTE = make_pipeline(  # the operator's pick: allowed by the constraints, never signed
    name="operator-choice", train={"optimizer": {"name": "sgd"}, "epochs": 5}
)


def _setup(ws: Workspace, service: KeyService, key: bytes, **pins: Any) -> dict[str, Party]:
    parties = make_parties(ws)
    constraints = {**contract_data()["constraints"], **pins}
    store_contract(ws, parties, constraints=constraints)
    service.import_key(DATASET_DIGEST, key, "hospital", CONTRACT_ID, default_policy())
    return parties


def _ledger(ws: Workspace) -> tuple[int, list[str]]:
    with Ledger.open(ws) as ledger:
        released = len(ledger.entries("key.released"))
        denied = [str(e.payload["reason"]) for e in ledger.entries("key.denied")]
    return released, denied


def _assert_no_leak(key: bytes, *texts: str) -> None:
    for text in texts:
        assert key.hex() not in text and base64.b64encode(key).decode() not in text


def _operator_signs(ws: Workspace, parties: dict[str, Party]) -> PipelineSignature:
    contract = load_contract(ws, CONTRACT_ID).contract
    digest, sha = pipeline_digest(SUBSTITUTE), contract_digest(contract)
    return PipelineSignature(
        contract_id=CONTRACT_ID,
        contract_digest=sha,
        pipeline_digest=digest,
        signer="operator",
        signature=b64(parties["operator"].sign(signed_message(CONTRACT_ID, sha, digest))),
    )


def _consumer_signed_elsewhere(ws: Workspace, parties: dict[str, Party]) -> PipelineSignature:
    """The consumer really signed the substitute, but for another contract it is party to."""
    ids = {n: p.identity for n, p in parties.items()}
    other = make_contract(ids, id="another-contract")
    return sign_pipeline(other, pipeline_digest(SUBSTITUTE), parties["lab"])


def _honest_signature_reused(ws: Workspace, parties: dict[str, Party]) -> PipelineSignature:
    """The consumer's signature on the honest pipeline, sent along with the substitute."""
    signature = consumer_signature(ws, pipeline_digest(HONEST))
    assert signature is not None
    return signature


SUBSTITUTIONS = [
    (lambda ws, parties: None, "carries no signature from the consumer 'lab'"),
    (_operator_signs, "pipeline signed by 'operator', not by the contract's consumer 'lab'"),
    (_consumer_signed_elsewhere, "the pipeline signature is for contract another-contract"),
    (_honest_signature_reused, f"covers {pipeline_digest(HONEST)}, not this pipeline"),
]


@pytest.mark.parametrize(
    ("forge", "reason"),
    SUBSTITUTIONS,
    ids=["unsigned", "signed-by-operator", "signed-for-another-contract", "digest-a-for-b"],
)
def test_operator_substituting_the_pipeline_gets_no_key(
    workspace: Workspace,
    service: KeyService,
    room: Room,
    data_key: bytes,
    forge: Any,
    reason: str,
) -> None:
    parties = _setup(workspace, service, data_key)
    signature = forge(workspace, parties)
    request = room.request(service, pipeline_model=SUBSTITUTE, pipeline_signature=signature)
    with pytest.raises(KeyReleaseDenied, match=reason) as denied:
        service.release(request)
    released, denials = _ledger(workspace)
    assert released == 0 and len(denials) == 1 and reason in denials[0]
    _assert_no_leak(data_key, str(denied.value), *denials)


def test_pinned_digest_mismatch_is_refused_by_policy_check_and_key_service(
    workspace: Workspace, service: KeyService, room: Room, data_key: bytes, tmp_path: Path
) -> None:
    _setup(workspace, service, data_key, pipeline_digest=pipeline_digest(HONEST))
    path = tmp_path / "substitute.json"
    path.write_text(json.dumps(pipeline_data(name="operator-choice")))
    checked = runner.invoke(
        app, ["policy", "check", "--contract", CONTRACT_ID, "--pipeline", str(path)]
    )
    assert checked.exit_code == 1
    assert f"is not the one contract {CONTRACT_ID} pins" in " ".join(checked.output.split())
    # Signed by the consumer or not, the pin holds at the key service.
    with pytest.raises(KeyReleaseDenied, match="pins pipeline"):
        service.release(room.request(service, pipeline_model=SUBSTITUTE))
    released, denials = _ledger(workspace)
    assert released == 0 and "pins pipeline" in denials[0]


def _fetch(service: KeyService, room: Room, ws: Workspace, run_id: str) -> bytes:
    digest = pipeline_digest(HONEST)
    return fetch_data_key(
        service,
        room.attester,
        contract_id=CONTRACT_ID,
        package_digest=DATASET_DIGEST,
        pipeline=HONEST,
        pipeline_digest=digest,
        pipeline_signature=consumer_signature(ws, digest),
        run_id=run_id,
    )


def test_max_runs_one_refuses_the_second_run_at_key_release(
    workspace: Workspace, service: KeyService, room: Room, data_key: bytes
) -> None:
    _setup(workspace, service, data_key, max_runs=1)
    assert _fetch(service, room, workspace, "run-first") == data_key
    for second in ("run-second", "run-first"):  # a new run, or the first run's id replayed
        with pytest.raises(KeyReleaseDenied) as denied:
            _fetch(service, room, workspace, second)
        _assert_no_leak(data_key, str(denied.value))
    released, denials = _ledger(workspace)
    assert released == 1 and len(denials) == 2
    assert "allows 1 run (max_runs)" in denials[0]
    assert "run run-first already received this package's key" in denials[1]


def test_the_consumer_signed_pipeline_still_gets_its_key(
    workspace: Workspace, service: KeyService, room: Room, data_key: bytes
) -> None:
    _setup(workspace, service, data_key, pipeline_digest=pipeline_digest(HONEST), max_runs=1)
    assert _fetch(service, room, workspace, "run-honest") == data_key
    assert _ledger(workspace) == (1, [])


# --------------------------------------------------------------- through a real room process


def _room_workspace(ws: Workspace, tmp_path: Path) -> tuple[dict[str, Party], Path]:
    """Sealed (tiny, untrainable) dataset and model, their keys imported, the honest pipeline
    written and signed by the consumer: everything a run needs up to key release."""
    from sealroom.crypto.sealing import seal

    parties = make_parties(ws)
    digests = {}
    keys = {}
    for name, owner in (("mnist", "hospital"), ("model", "lab")):
        source = tmp_path / name
        source.mkdir()
        # The names the pipeline reads: the room checks them against the manifest first.
        for file in ("train-images", "train-labels") if name == "mnist" else ("data.bin",):
            (source / file).write_bytes(b"not really " + name.encode())
        result = seal(source, parties[owner], ws.packages / f"{name}.sealed", format="dataset")
        digests[name], keys[name] = result.digest, result.data_key
    datasets = contract_data()["datasets"]
    datasets[0]["package_digest"] = digests["mnist"]
    # The contract has privacy terms, so the hospital declares the held-out split and the
    # contract pins it; the room finds it in the workspace.
    source = HONEST.datasets[0].source.model_dump(mode="json")
    body = {
        "dataset": "mnist",
        "train": {"source": source},
        "test": {"fraction": 0.1},
        "min_size": 1,
    }
    declared = parse_declaration(body, "test")
    signed = sign_declaration(declared, parties["hospital"])
    save_declaration(declarations_dir(ws.home) / "mnist.json", signed)
    datasets[0]["declaration_digest"] = signed.digest
    store_contract(
        ws,
        parties,
        datasets=datasets,
        model={"owner": "lab", "package_digest": digests["model"]},
    )
    with KeyService(ws) as service:
        for name, owner in (("mnist", "hospital"), ("model", "lab")):
            policy = default_policy(package_digest=digests[name])
            service.import_key(digests[name], keys[name], owner, CONTRACT_ID, policy)
    pipeline = tmp_path / "pipeline.json"
    pipeline.write_text(json.dumps(pipeline_data()))
    contract = load_contract(ws, CONTRACT_ID).contract
    save_pipeline_signature(
        signature_path(pipeline), sign_pipeline(contract, pipeline_digest(HONEST), parties["lab"])
    )
    return parties, pipeline


def _run(pipeline: Path, *extra: str) -> str:
    done = runner.invoke(
        app, ["run", "--contract", CONTRACT_ID, "--pipeline", str(pipeline), *extra]
    )
    assert done.exit_code == 1, done.output
    return " ".join(done.output.split())


@pytest.mark.slow  # two real room processes; the key service's refusal is tested fast above
def test_sealroom_run_with_a_substituted_pipeline_file_gets_no_key(
    workspace: Workspace, tmp_path: Path
) -> None:
    _, honest = _room_workspace(workspace, tmp_path)
    substitute = tmp_path / "substitute.json"
    substitute.write_text(json.dumps(SUBSTITUTE.model_dump(mode="json")))
    # No .sig beside the substitute; then the honest pipeline's .sig passed along with it.
    assert "carries no signature from the consumer 'lab'" in _run(substitute)
    output = _run(substitute, "--pipeline-signature", str(signature_path(honest)))
    assert "covers" in output and "not this pipeline" in output
    released, denials = _ledger(workspace)
    assert released == 0 and len(denials) == 2
    with Ledger.open(workspace) as ledger:
        failed = ledger.entries("run.failed")
    assert [e.payload["stage"] for e in failed] == ["keys", "keys"]
    assert not list(workspace.runs.glob("run-*"))
