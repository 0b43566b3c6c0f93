"""Attacks on receipts and the ledger: tail rollback, an empty replacement ledger, a receipt
forged with a fresh key, an edited receipt, a contract pinning another ledger.

Each runs the CLI as an auditor would (typer's runner) and asserts the attack is refused with
one line and exit 1, and that nothing says "verified".
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from sealroom.attest.evidence import Claims, Evidence
from sealroom.cli.main import app
from sealroom.contract import contract_digest, load_contract
from sealroom.crypto.identity import create_party
from sealroom.crypto.signing import SigningKey, b64
from sealroom.ledger import Ledger
from sealroom.ledger.entries import head_message
from sealroom.ledger.keys import load_or_create_ledger_key
from sealroom.room.receipt import COMPLETED, RoomInfo, RunReceipt, RunRecord
from sealroom.room.runkey import RunKey, room_report_data
from sealroom.room.session import sign_record
from sealroom.workspace import ENV_VAR, Workspace

runner = CliRunner()
DIGEST = "sha256:" + "ab" * 32
RUN = "run-20261125T000000-adv001"


def _software_evidence(report_data: bytes) -> Evidence:
    """Software evidence as SoftwareAttester makes it, signed by a throwaway host key."""
    host = SigningKey.generate()
    claims = Claims(
        tee_type="software",
        measurement="00" * 32,
        insecure=True,
        report_data=report_data,
        issued_at=datetime.now(UTC),
    )
    payload = claims.model_dump_json().encode("utf-8")
    return Evidence(
        tee_type="software", payload=payload, signature=host.sign(payload), signer=host.public_b64
    )


def _record(contract_id: str = "c1", digest: str = DIGEST) -> RunRecord:
    # Mirrors tests/room/test_room_receipt.py: a room-signed run.completed payload without a
    # room run.
    key = RunKey()
    record = RunRecord(
        run_id=RUN,
        contract_id=contract_id,
        contract_digest=digest,
        pipeline="mnist",
        pipeline_digest=DIGEST,
        datasets={"mnist": DIGEST},
        model_digest=None,
        room=RoomInfo(tee_type="software", measurement="00" * 32, insecure=True),
        insecure=True,
        consumer="lab",
        consumer_fingerprint="ff" * 16,
        outputs=[],
        outputs_key_sha256="00" * 32,
        metrics={"accuracy": 0.5},
        metrics_sha256="11" * 32,
        key_custody="embedded: test",
        sandbox="none",
        started="2026-11-25T00:00:00Z",
        ended="2026-11-25T00:01:00Z",
        room_key=key.public_b64,
        room_evidence=_software_evidence(room_report_data(RUN, key.public_b64)),
    )
    return sign_record(record, key)


def _record_run(ledger: Ledger, run_dir: Path, record: RunRecord) -> RunReceipt:
    """Append the run.completed entry and write the run folder's receipt.json."""
    receipt = ledger.append(COMPLETED, record.model_dump(mode="json"))
    run_receipt = RunReceipt(
        record=record, receipt=receipt, ledger_public_key=ledger.public_key_b64
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    run_receipt.save(run_dir)
    return run_receipt


@pytest.fixture
def ran(workspace: Workspace) -> RunReceipt:
    """A ledger of 6 entries; entry 4 is the run's, with its receipt in runs/RUN."""
    with Ledger.open(workspace) as ledger:
        for i in range(3):
            ledger.append("key.released", {"n": i})
        receipt = _record_run(ledger, workspace.runs / RUN, _record())
        ledger.append("budget.charged", {"run_id": RUN})
        ledger.append("run.cleanup", {"run_id": RUN})
    return receipt


def _invoke(*args: str) -> tuple[int, str, str]:
    done = runner.invoke(app, list(args))
    return done.exit_code, done.stdout, done.stderr


def _one_error(stderr: str, needle: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], stderr


def _roll_back(ws: Workspace, keep: int, with_key: bool = True) -> None:
    """Drop the guard, delete the tail, fix the head; the operator of the embedded default
    holds the ledger key and re-signs the head, an intruder without it cannot."""
    conn = sqlite3.connect(ws.ledger_db)
    conn.execute("DROP TRIGGER entries_no_delete")
    conn.execute("DELETE FROM entries WHERE seq > ?", (keep,))
    last = conn.execute("SELECT entry_hash FROM entries WHERE seq = ?", (keep,)).fetchone()[0]
    signature = None
    if with_key:
        signature = b64(load_or_create_ledger_key(ws.keys).sign(head_message(keep, last)))
    conn.execute("UPDATE head SET seq = ?, entry_hash = ?, signature = ?", (keep, last, signature))
    conn.commit()
    conn.close()


def _pin(ws: Workspace) -> str:
    code, out, err = _invoke("ledger", "head")
    assert code == 0, err
    return out.strip()


def _no_workspace(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "no-workspace-here"))


def test_tail_rollback_is_caught_by_receipt_verify_and_expect_head(
    workspace: Workspace, ran: RunReceipt
) -> None:
    code, out, _ = _invoke("receipt", "verify", RUN)
    assert code == 0 and "verified: ledger entry 4" in out
    pin = _pin(workspace)
    assert pin.startswith("6:")

    _roll_back(workspace, keep=3)
    code, out, _ = _invoke("ledger", "verify")  # the chain alone cannot tell
    assert code == 0 and "3 entries" in out

    code, out, err = _invoke("receipt", "verify", RUN)
    assert code == 1 and "verified" not in out
    _one_error(err, f"run {RUN}: ledger entry 4 is not in the ledger at {workspace.ledger_db}")
    code, out, err = _invoke("receipt", "verify", RUN, "--json")
    report = json.loads(out)
    assert code == 1 and report["verified"] is False
    assert "ledger entry 4 is not in the ledger" in report["reason"]

    code, out, err = _invoke("ledger", "verify", "--expect-head", pin)
    assert code == 1 and "verified" not in out
    _one_error(err, "ledger entry 6 is not in the ledger")


def test_rollback_without_the_ledger_key_is_caught_by_ledger_verify(
    workspace: Workspace, ran: RunReceipt
) -> None:
    _roll_back(workspace, keep=3, with_key=False)
    code, out, err = _invoke("ledger", "verify")
    assert code == 1 and "verified" not in out
    _one_error(err, "ledger entry 3 is the recorded head, but the head is not signed")
    code, _, err = _invoke("receipt", "verify", RUN)
    assert code == 1
    _one_error(err, "ledger entry 4 is not in the ledger")


def test_rollback_then_rewritten_tail_is_caught(workspace: Workspace, ran: RunReceipt) -> None:
    pin = _pin(workspace)
    _roll_back(workspace, keep=3)
    with Ledger.open(workspace) as ledger:  # the key holder re-signs a different history
        for i in range(4):
            ledger.append("key.released", {"n": 10 + i})
        assert ledger.verify() == 7
    code, _, err = _invoke("receipt", "verify", RUN)
    assert code == 1
    _one_error(err, "ledger entry 4 in the ledger at")
    assert "rolled back and rewritten" in err
    code, _, err = _invoke("ledger", "verify", "--expect-head", pin)
    assert code == 1
    _one_error(err, "ledger entry 6 in the ledger at")


def test_empty_replacement_ledger_is_caught(workspace: Workspace, ran: RunReceipt) -> None:
    pin = _pin(workspace)
    for suffix in ("", "-wal", "-shm"):
        Path(str(workspace.ledger_db) + suffix).unlink(missing_ok=True)
    with Ledger.open(workspace) as ledger:  # same key, nothing in it
        assert ledger.verify() == 0
    code, out, _ = _invoke("ledger", "verify")
    assert code == 0 and "0 entries" in out

    code, out, err = _invoke("receipt", "verify", RUN)
    assert code == 1 and "verified" not in out
    _one_error(err, "ledger entry 4 is not in the ledger")
    code, _, err = _invoke("ledger", "verify", "--expect-head", pin)
    assert code == 1
    _one_error(err, "ledger entry 6 is not in the ledger")


def test_auditor_checks_a_receipt_against_a_copy_of_the_ledger(
    workspace: Workspace, ran: RunReceipt, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pub, good, rolled = tmp_path / "ledger.pub", tmp_path / "good.db", tmp_path / "rolled.db"
    pub.write_text(ran.ledger_public_key + "\n")
    shutil.copy(workspace.ledger_db, good)
    _roll_back(workspace, keep=3)
    shutil.copy(workspace.ledger_db, rolled)
    run_dir = tmp_path / RUN
    shutil.copytree(workspace.runs / RUN, run_dir)
    _no_workspace(monkeypatch, tmp_path)

    code, out, err = _invoke(
        "receipt", "verify", str(run_dir), "--key-file", str(pub), "--ledger", str(good), "--json"
    )
    report = json.loads(out)
    assert code == 0, err
    assert report["verified"] is True and report["ledger_checked"] == str(good)
    code, out, err = _invoke(
        "receipt", "verify", str(run_dir), "--key-file", str(pub), "--ledger", str(rolled)
    )
    assert code == 1 and "verified" not in out
    _one_error(err, f"ledger entry 4 is not in the ledger at {rolled}")
    code, _, err = _invoke("ledger", "verify", "--ledger", str(good), "--key-file", str(pub))
    assert code == 0, err
    absent = tmp_path / "absent.db"
    code, _, err = _invoke(
        "receipt", "verify", str(run_dir), "--key-file", str(pub), "--ledger", str(absent)
    )
    assert code == 1
    _one_error(err, f"no ledger database at {absent}")
    assert not absent.exists()


def _forge(tmp_path: Path, record: RunRecord | None = None) -> Path:
    """A receipt for the same run id, signed by a ledger the forger made with a fresh key."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    forger = Ledger(tmp_path / "forger.db", SigningKey.generate())
    with forger:
        record = record or _record()  # room-signed by the forger's own fresh run key
        run_dir = tmp_path / "forged" / RUN
        _record_run(forger, run_dir, record)
    return run_dir


def test_forged_receipt_is_unverified_without_a_trusted_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = _forge(tmp_path)
    _no_workspace(monkeypatch, tmp_path)
    code, out, err = _invoke("receipt", "verify", str(run_dir))
    assert code == 1 and "verified" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("UNVERIFIED: "), err
    assert "the receipt is only self-consistent" in lines[0]
    code, out, err = _invoke("receipt", "verify", str(run_dir), "--json")
    report = json.loads(out)
    assert code == 1 and report["verified"] is False and report["trusted_key"] is False
    assert report["reason"].startswith(f"run {RUN}: no trusted ledger key")


def test_forged_receipt_is_refused_by_a_workspace_or_a_key(
    workspace: Workspace, ran: RunReceipt, tmp_path: Path
) -> None:
    run_dir = _forge(tmp_path)
    code, out, err = _invoke("receipt", "verify", str(run_dir))
    assert code == 1 and "verified" not in out
    _one_error(err, "receipt names a ledger key that is not the trusted one")
    code, _, err = _invoke("receipt", "verify", str(run_dir), "--ledger-key", ran.ledger_public_key)
    assert code == 1
    _one_error(err, "not the trusted one")
    # Even re-labelled with the real key, the forger's signature does not verify.
    data = json.loads((run_dir / "receipt.json").read_text())
    data["ledger_public_key"] = ran.ledger_public_key
    (run_dir / "receipt.json").write_text(json.dumps(data))
    code, _, err = _invoke("receipt", "verify", str(run_dir))
    assert code == 1
    _one_error(err, "signature does not verify with the ledger public key")


def test_receipt_with_an_edited_payload_is_refused(
    workspace: Workspace, ran: RunReceipt, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = workspace.runs / RUN / "receipt.json"
    data = json.loads(path.read_text())
    data["record"]["insecure"] = False
    data["record"]["room"]["insecure"] = False
    path.write_text(json.dumps(data))
    code, out, err = _invoke("receipt", "verify", RUN)
    assert code == 1 and "verified" not in out
    _one_error(err, "payload does not match the recorded digest")
    pub = tmp_path / "ledger.pub"
    pub.write_text(ran.ledger_public_key)
    _no_workspace(monkeypatch, tmp_path)
    code, _, err = _invoke("receipt", "verify", str(path), "--key-file", str(pub))
    assert code == 1
    _one_error(err, "payload does not match the recorded digest")


def _sole_party_draft(tmp_path: Path, **extra: str) -> Path:
    draft = {
        "id": "adv-contract",
        "purpose": "an adversary test",
        "parties": [{"name": "lab", "role": "consumer"}],
        "consumer": "lab",
        "constraints": {
            "model_formats": ["onnx"],
            "optimizers": ["sgd"],
            "losses": ["cross_entropy"],
            "metrics": ["accuracy"],
            "max_epochs": 1,
            "released_outputs": ["metrics"],
        },
        "expires": "1d",
        **extra,
    }
    path = tmp_path / "draft.yaml"
    path.write_text(yaml.safe_dump(draft))
    return path


def test_contract_pinning_a_foreign_ledger_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    create_party(workspace, "lab", "consumer")
    foreign = SigningKey.generate().public_b64
    draft = _sole_party_draft(tmp_path, ledger_public_key=foreign)
    code, _, err = _invoke("contract", "propose", str(draft), "--as", "lab")
    assert code == 1
    _one_error(err, f"contract adv-contract pins ledger key {foreign[:12]}…, not the ledger in use")
    with Ledger.open(workspace) as ledger:
        assert len(ledger) == 0  # nothing registered
    assert not (workspace.contracts / "adv-contract.receipt.json").exists()


def test_contract_pin_decides_which_ledger_key_a_receipt_needs(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_party(workspace, "lab", "consumer")
    code, _, err = _invoke("contract", "propose", str(_sole_party_draft(tmp_path)), "--as", "lab")
    assert code == 0, err
    signed = load_contract(workspace, "adv-contract")
    with Ledger.open(workspace) as ledger:
        assert signed.contract.ledger_public_key == ledger.public_key_b64
        assert signed.digest == contract_digest(signed.contract)
        _record_run(ledger, workspace.runs / RUN, _record("adv-contract", signed.digest))
    bundle = tmp_path / "contract.json"
    assert _invoke("contract", "export", "adv-contract", "--out", str(bundle))[0] == 0
    run_dir = tmp_path / RUN
    shutil.copytree(workspace.runs / RUN, run_dir)
    _no_workspace(monkeypatch, tmp_path)

    code, out, err = _invoke("receipt", "verify", str(run_dir), "--contract", str(bundle))
    assert code == 0, err
    assert "the ledger key contract adv-contract pins" in out
    other = SigningKey.generate().public_b64
    code, out, err = _invoke(
        "receipt", "verify", str(run_dir), "--contract", str(bundle), "--ledger-key", other
    )
    assert code == 1 and "verified" not in out
    _one_error(err, "the ledger key contract adv-contract pins is")
    # A forger's receipt for that run does not verify under the contract's pin either.
    forged = _forge(tmp_path / "f", _record("adv-contract", signed.digest))
    code, _, err = _invoke("receipt", "verify", str(forged), "--contract", str(bundle))
    assert code == 1
    _one_error(err, "receipt names a ledger key that is not the trusted one")
    # Nor does a bundle for another contract vouch for the run.
    code, _, err = _invoke(
        "receipt", "verify", str(_forge(tmp_path / "g")), "--contract", str(bundle)
    )
    assert code == 1
    _one_error(err, "ran under contract c1")
