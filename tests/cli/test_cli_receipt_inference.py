"""`sealroom receipt verify FILE` on a saved inference receipt: every check printed, exit 1
with one line on a forgery; run receipts keep their own path."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.crypto.hpke_context import RoomHpkeKey
from sealroom.crypto.signing import SigningKey
from sealroom.ledger import Ledger
from sealroom.serve.attestation import attest_room, new_instance_id
from sealroom.serve.receipts import (
    ANONYMOUS,
    COMMITMENT_KIND,
    BatchSigner,
    InferenceReceipt,
    ReceiptProof,
    commitment_payload,
    outputs_sha256,
)
from sealroom.workspace import Workspace
from tests.serve.serve_harness import SoftwareTee

runner = CliRunner()
MEASUREMENT = "aa" * 32
MODEL = "sha256:" + "11" * 32
CONTRACT = "sha256:" + "33" * 32


def _proofs(n: int = 4) -> list[ReceiptProof]:
    key, instance = SigningKey.generate(), new_instance_id()
    attestation = attest_room(
        SoftwareTee(),
        nonce=os.urandom(32),
        hpke_public_key=RoomHpkeKey.generate().public_raw,
        room_key=key.public_b64,
        model_digest=MODEL,
        contract_digest=CONTRACT,
        instance=instance,
    )
    receipts = [
        InferenceReceipt(
            request_sha256=os.urandom(32).hex(),
            response_sha256=outputs_sha256([i]),
            model_digest=MODEL,
            measurement=MEASUREMENT,
            contract_id="serve-1",
            contract_digest=CONTRACT,
            client=ANONYMOUS,
            sequence=i,
            issued_at=time.time(),
            instance=instance,
            insecure=True,
        )
        for i in range(n)
    ]
    return [
        ReceiptProof(receipt=receipts[i], index=i, proof=path, batch=batch, attestation=attestation)
        for i, path, batch in BatchSigner(key, instance).sign(receipts)
    ]


def _save(tmp_path: Path, proof: ReceiptProof | dict[str, object]) -> str:
    path = tmp_path / "inference-receipt.json"
    text = proof.model_dump_json() if isinstance(proof, ReceiptProof) else json.dumps(proof)
    path.write_text(text)
    return str(path)


def _committed(ws: Workspace, proof: ReceiptProof) -> tuple[ReceiptProof, str]:
    payload = commitment_payload(
        "serve-1", proof.batch.instance, proof.batch.room_key, [proof.batch]
    )
    with Ledger.open(ws) as ledger:
        receipt = ledger.append(COMMITMENT_KIND, payload)
        key = ledger.public_key_b64
    update = {"ledger": receipt, "ledger_payload": payload}
    return proof.model_copy(update=update), key


def test_uncommitted_receipt_verifies_and_prints_each_check(
    workspace: Workspace, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["receipt", "verify", _save(tmp_path, _proofs()[2])])
    assert result.exit_code == 0, result.output
    for name in ("inclusion", "batch signature", "evidence", "attestation binding"):
        assert f"ok   {name}:" in result.stdout
    assert "verified" in result.stdout and "not yet committed" in result.stdout
    assert "insecure: true" in result.stdout


def test_committed_receipt_verifies_against_the_workspace_ledger(
    workspace: Workspace, tmp_path: Path
) -> None:
    proof, _ = _committed(workspace, _proofs()[1])
    result = runner.invoke(app, ["receipt", "verify", _save(tmp_path, proof), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["verified"] is True and report["committed"] is True
    names = [c["name"] for c in report["checks"]]
    assert names[-2:] == ["ledger commitment", "ledger copy"]
    assert all(c["ok"] for c in report["checks"])


def test_forged_proof_fails_with_one_line(workspace: Workspace, tmp_path: Path) -> None:
    proof = _proofs()[3]
    path = list(proof.proof)
    path[0] = ("f" if path[0][0] != "f" else "e") + path[0][1:]
    forged = proof.model_copy(update={"proof": path})
    result = runner.invoke(app, ["receipt", "verify", _save(tmp_path, forged)])
    assert result.exit_code == 1
    assert "FAIL inclusion" in result.stdout and "NOT verified" in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("UNVERIFIED: inclusion: receipt is not leaf 3")


def test_ledger_commitment_under_another_key_fails(workspace: Workspace, tmp_path: Path) -> None:
    proof, _ = _committed(workspace, _proofs()[0])
    wrong = SigningKey.generate().public_b64
    result = runner.invoke(
        app, ["receipt", "verify", _save(tmp_path, proof), "--ledger-key", wrong]
    )
    assert result.exit_code == 1
    assert "UNVERIFIED: ledger commitment:" in result.stderr


def test_ledger_payload_that_does_not_list_the_root_fails(
    workspace: Workspace, tmp_path: Path
) -> None:
    proofs = _proofs()
    proof, key = _committed(workspace, proofs[0])
    assert proof.ledger_payload is not None
    payload = {**proof.ledger_payload, "batches": []}
    with Ledger.open(workspace) as ledger:
        receipt = ledger.append(COMMITMENT_KIND, payload)
    empty = proof.model_copy(update={"ledger": receipt, "ledger_payload": payload})
    result = runner.invoke(app, ["receipt", "verify", _save(tmp_path, empty), "--ledger-key", key])
    assert result.exit_code == 1
    assert "does not list root" in result.stderr


def test_malformed_inference_receipt_is_one_line(workspace: Workspace, tmp_path: Path) -> None:
    data = json.loads(_proofs()[0].model_dump_json())
    data["batch"]["size"] = 0
    result = runner.invoke(app, ["receipt", "verify", _save(tmp_path, data)])
    assert result.exit_code == 1
    assert "batch.size" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_other_json_still_goes_to_the_run_receipt_path(
    workspace: Workspace, tmp_path: Path
) -> None:
    other = tmp_path / "receipt.json"
    other.write_text(json.dumps({"record": {}}))
    result = runner.invoke(app, ["receipt", "verify", str(other)])
    assert result.exit_code == 1
    assert "batch" not in result.stderr and "attestation binding" not in result.stdout


def test_a_file_that_is_neither_receipt_says_so_in_one_line(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Not "receipt.json: missing": the file given is there, it is just not a receipt."""
    for name, text in (("r.json", "{}"), ("notes.txt", "not json")):
        given = tmp_path / name
        given.write_text(text)
        result = runner.invoke(app, ["receipt", "verify", str(given)])
        assert result.exit_code == 1
        assert "not an inference receipt" in result.stderr and name in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
