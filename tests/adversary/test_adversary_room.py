"""The consumer as adversary, against the room: nothing private in failure text, no secret
in the room process, no metric in the public record, no forged run record.

Each test plays the attack against a real room process (the MNIST story's workspace) or,
for the forged record, against the operator's end of the channel, and asserts that it
fails and that nothing leaks.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sealroom.attest.software import SoftwareAttester
from sealroom.cli.main import app
from sealroom.contract.store import load_contract
from sealroom.contract.workflow import propose_contract, sign_contract
from sealroom.crypto.identity import load_party
from sealroom.crypto.sealing import seal
from sealroom.errors import RoomError
from sealroom.kms.models import ReleasePolicy
from sealroom.kms.repository import KmsRepository
from sealroom.kms.rootkey import RootKey
from sealroom.kms.service import KeyService
from sealroom.ledger import Ledger
from sealroom.pipeline.signing import sign_pipeline_file
from sealroom.room import launcher
from sealroom.room.channel import Request, Response
from sealroom.room.consumer import decrypt_run
from sealroom.room.operator import OperatorDesk
from sealroom.room.receipt import RunRecord
from sealroom.room.runkey import RunKey, room_report_data
from sealroom.room.session import sign_record
from sealroom.workspace import Workspace
from tests.adversary.room_attacks import BYPASS_HOOK, HOOK, gather_model, key_stealing_model
from tests.e2e import conftest as e2e
from tests.e2e.stories import PlayedStory
from tests.serve.serve_harness import SoftwareTee

mnist_story = e2e.mnist_story  # the played MNIST story the end-to-end tests share
party_passphrase = e2e.party_passphrase  # its parties' keys are under the demo passphrase

runner = CliRunner()
ANSWER = "training failed: IndexError raised by the model"


def _contract_with_model(
    story: PlayedStory,
    tmp_path: Path,
    contract_id: str,
    model_bytes: bytes | None = None,
    **constraints: object,
) -> None:
    """mnist-demo again, with the consumer's hostile model; both keys imported for it."""
    ws = story.ws
    model_dir = tmp_path / "hostile-model"
    model_dir.mkdir()
    (model_dir / "model.onnx").write_bytes(model_bytes or gather_model())
    out = ws.packages / f"{contract_id}-model.sealed"
    model = seal(model_dir, load_party(ws, "lab"), out, format="model")
    draft = load_contract(ws, "mnist-demo").contract.model_dump(mode="json")
    data_digest = draft["datasets"][0]["package_digest"]
    draft.update(id=contract_id, model={"owner": "lab", "package_digest": model.digest})
    draft["constraints"].update(constraints)
    path = tmp_path / "contract.json"
    path.write_text(json.dumps(draft))
    propose_contract(ws, path, "lab")
    sign_contract(ws, contract_id, "hospital")
    sign_contract(ws, contract_id, "operator")
    repo = KmsRepository(ws.kms_db)
    try:
        record = repo.get_key(data_digest, "mnist-demo")
    finally:
        repo.close()
    assert record is not None
    data_key = RootKey.load_or_create(ws.keys).unwrap(record.wrapped_key, data_digest, "mnist-demo")
    with KeyService(ws) as service:
        for digest, key, owner in (
            (data_digest, data_key, "hospital"),
            (model.digest, model.data_key, "lab"),
        ):
            policy = ReleasePolicy(
                contract_id=contract_id,
                package_digest=digest,
                measurements=record.policy.measurements,
                allow_insecure=True,
            )
            service.import_key(digest, key, owner, contract_id, policy)


def _pipeline(story: PlayedStory, contract_id: str = "mnist-demo", tmp: Path | None = None) -> Path:
    """The story's pipeline; for another contract, a copy the consumer signed for that one."""
    original = story.base / "consumer-lab" / "pipeline.json"
    if contract_id == "mnist-demo" or tmp is None:
        return original
    copy = tmp / f"{contract_id}.pipeline.json"
    shutil.copyfile(original, copy)
    sign_pipeline_file(story.ws, copy, contract_id, "lab")
    return copy


def test_a_data_dependent_model_error_reaches_nobody_but_its_category(
    mnist_story: PlayedStory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _contract_with_model(mnist_story, tmp_path, "mnist-gather")
    monkeypatch.setenv("SEALROOM_HOME", str(mnist_story.ws.home))
    done = runner.invoke(
        app,
        [
            "run",
            "--contract",
            "mnist-gather",
            "--pipeline",
            str(_pipeline(mnist_story, "mnist-gather", tmp_path)),
        ],
    )
    assert done.exit_code == 1
    errors = [line for line in done.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].endswith(f"failed: {ANSWER} (stage: train)"), done.output
    with Ledger.open(mnist_story.ws) as ledger:
        payload = ledger.entries("run.failed")[-1].payload
    assert payload["reason"] == ANSWER and payload["stage"] == "train"
    assert payload["recorded_by"] == "room" and str(payload["run_id"]) in errors[0]
    # Neither the operator's terminal (every event it showed) nor the ledger holds the text.
    everything = done.output + json.dumps(payload)
    assert "out of bounds" not in everything and "index " not in everything.lower()
    assert not re.search(r"\d", payload["reason"])
    assert mnist_story.leaks() == []


def test_failure_details_go_only_sealed_to_the_consumer(
    mnist_story: PlayedStory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A contract without privacy terms may allow failure details: the message then reaches
    the consumer sealed, and still nobody else."""
    _contract_with_model(mnist_story, tmp_path, "mnist-details", failure_details=True)
    monkeypatch.setenv("SEALROOM_HOME", str(mnist_story.ws.home))
    with pytest.raises(RoomError, match=f"failed: {ANSWER}") as info:
        launcher.run_room(
            mnist_story.ws, "mnist-details", _pipeline(mnist_story, "mnist-details", tmp_path)
        )
    assert "out of bounds" not in str(info.value)
    with Ledger.open(mnist_story.ws) as ledger:
        payload = ledger.entries("run.failed")[-1].payload
    assert payload["reason"] == ANSWER
    run_dir = mnist_story.ws.runs / str(payload["run_id"])
    assert not (run_dir / "receipt.json").exists()
    assert b"out of bounds" not in b"".join(p.read_bytes() for p in run_dir.rglob("*.*"))
    out = tmp_path / "details"
    done = runner.invoke(
        app, ["output", "decrypt", str(payload["run_id"]), "--as", "lab", "--out", str(out)]
    )
    assert done.exit_code == 0, done.output
    assert "out of bounds" not in done.output
    text = (out / "error.txt").read_text()
    assert text.startswith("stage train: IndexError: index ") and "out of bounds" in text
    done = runner.invoke(
        app, ["output", "decrypt", str(payload["run_id"]), "--as", "hospital", "--out", str(out)]
    )
    assert done.exit_code == 1 and "sealed to another party" in done.output


def _fake_room(monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    monkeypatch.setattr(launcher, "_room_command", lambda: [sys.executable, "-c", script])


def test_the_rooms_stderr_reaches_nobody(
    mnist_story: PlayedStory, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_room(
        monkeypatch,
        "import sys; sys.stdin.readline(); "
        "sys.stderr.write('pixel 0.8316 of record 17\\n' * 50); "
        "print('pixel 0.8316 of record 17'); sys.exit(3)",
    )
    with pytest.raises(RoomError) as info:
        launcher.run_room(mnist_story.ws, "mnist-demo", _pipeline(mnist_story), run_id="run-err")
    assert str(info.value) == "run run-err failed: room process exited with code 3"
    with Ledger.open(mnist_story.ws) as ledger:
        [failed] = ledger.find("run.failed", run_id="run-err")
    assert failed.payload["reason"] == "room process exited with code 3"
    assert failed.payload["recorded_by"] == "operator"


def test_an_oversize_line_kills_the_room(
    mnist_story: PlayedStory, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_room(
        monkeypatch,
        "import sys, time; sys.stdin.readline(); "
        'sys.stdout.write(\'{"type": "log", "message": "\' + \'x\' * (2 << 20)); '
        "sys.stdout.flush(); time.sleep(60)",
    )
    with pytest.raises(RoomError, match="broke the channel protocol and was killed"):
        launcher.run_room(mnist_story.ws, "mnist-demo", _pipeline(mnist_story), run_id="run-big")


def test_the_room_never_opens_the_key_service_ledger_or_party_keys(
    mnist_story: PlayedStory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An audit hook in the room process refuses (and logs) every open of the operator's
    secrets: the run still completes, so every key release went through the channel."""
    ws = mnist_story.ws
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOOK)
    opened = tmp_path / "opened.txt"
    deny = [ws.keys, ws.kms_db, ws.ledger_db, ws.home / "budget.db", ws.parties, ws.contracts]
    environment = launcher.room_environment

    def hooked(workdir: Path) -> dict[str, str]:
        env = environment(workdir)
        env["PYTHONPATH"] = f"{hook}:{env['PYTHONPATH']}"
        env["SEALROOM_TEST_DENY"] = ":".join(str(p.resolve()) for p in deny)
        env["SEALROOM_TEST_LOG"] = str(opened)
        return env

    monkeypatch.setattr(launcher, "room_environment", hooked)
    # The hook works: a process that opens the root key is stopped and logged.
    probe = subprocess.run(
        [sys.executable, "-c", f"open({str(ws.keys / 'kms-root.key')!r}, 'rb')"],
        env=hooked(tmp_path),
        capture_output=True,
    )
    assert probe.returncode != 0 and b"PermissionError" in probe.stderr
    assert opened.read_text().strip().endswith("kms-root.key")
    opened.unlink()
    monkeypatch.setenv("SEALROOM_HOME", str(ws.home))
    with Ledger.open(ws) as ledger:
        released = len(ledger.entries("key.released"))
    done = runner.invoke(
        app, ["run", "--contract", "mnist-demo", "--pipeline", str(_pipeline(mnist_story))]
    )
    assert done.exit_code == 0, done.output
    assert not opened.exists(), opened.read_text()
    with Ledger.open(ws) as ledger:
        assert len(ledger.entries("key.released")) == released + 2
        completed = ledger.entries("run.completed")[-1].payload
    # (d) released metrics are sealed: not on the operator's terminal, not in the ledger.
    assert completed["metrics"] == {} and completed["metrics_sha256"]
    text = json.dumps(completed)  # "confusion_matrix.png" is an output's name, not a value
    assert '"confusion_matrix":' not in text and "accuracy" not in text
    # Whole words only: a run id or digest may hold "f1" as hex.
    metric_names = r"\b(accuracy|precision|recall|f1|confusion\w*)\b"
    assert not re.search(metric_names, done.output, re.IGNORECASE)
    assert "no protection from the operator" in completed["key_custody"]
    # ... while the consumer gets every one of them.
    receipt, _ = decrypt_run(
        ws, completed["run_id"], load_party(ws, "lab"), tmp_path / "lab-outputs"
    )
    metrics = json.loads((tmp_path / "lab-outputs" / "metrics.json").read_bytes())["metrics"]
    assert {"accuracy", "f1", "confusion_matrix"} <= set(metrics)
    assert receipt.record.metrics == {}


def test_a_forged_run_record_is_refused_by_the_operator(mnist_story: PlayedStory) -> None:
    ws: Workspace = mnist_story.ws
    honest = mnist_story.result.receipt.record
    signed = load_contract(ws, "mnist-demo")
    desk = OperatorDesk(ws, "run-forged", signed)

    def record(payload: dict[str, object], kind: str = "run.completed") -> Response:
        call = {"op": "record", "kind": kind, "payload": payload}
        return desk.handle(Request.model_validate({"id": 1, "call": call}))

    started = {"run_id": "run-forged", "contract_id": "mnist-demo", "pipeline_digest": "x"}
    assert record(started, "run.started").ok

    key = RunKey()
    evidence = SoftwareAttester(ws).attest(room_report_data("run-forged", key.public_b64))
    base = honest.model_copy(
        update={"run_id": "run-forged", "room_key": key.public_b64, "room_evidence": evidence}
    )
    # Signed by a key other than the one its evidence binds.
    wrong = sign_record(base, RunKey())
    answer = record(wrong.model_dump(mode="json"))
    assert not answer.ok and "room signature does not verify" in answer.error
    # Signed and bound, but the evidence is not from this workspace's attestation key.
    fake = SoftwareTee(honest.room.measurement)(room_report_data("run-forged", key.public_b64))
    forged: RunRecord = sign_record(base.model_copy(update={"room_evidence": fake}), key)
    answer = record(forged.model_dump(mode="json"))
    assert not answer.ok and "attestation key" in answer.error
    with Ledger.open(ws) as ledger:
        assert ledger.find("run.completed", run_id="run-forged") == []
    honest_one = sign_record(base, key)
    assert record(honest_one.model_dump(mode="json")).ok


@pytest.mark.parametrize(
    "sandboxed",
    [True, pytest.param(False, marks=pytest.mark.slow)],  # the control: `make test-all`
    ids=["sandboxed", "control-no-landlock"],
)
def test_a_room_without_model_checks_is_stopped_by_the_sandbox(
    mnist_story: PlayedStory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandboxed: bool
) -> None:
    """The issue's critical attack with the model validation bypassed on purpose: the room
    runs in a folder where ``keys/`` is the workspace's key folder. The sandbox stops the
    read; the control (Landlock switched off, --allow-unsandboxed) shows the key leaking."""
    ws = mnist_story.ws
    secret = (ws.keys / "kms-root.key").read_bytes()
    contract_id = f"mnist-steal-{'sbx' if sandboxed else 'ctl'}"
    _contract_with_model(mnist_story, tmp_path, contract_id, key_stealing_model(len(secret)))
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(BYPASS_HOOK)
    environment, workdir = launcher.room_environment, launcher.private_workdir

    def hooked(folder: Path) -> dict[str, str]:
        env = environment(folder)
        env["PYTHONPATH"] = f"{hook}:{env['PYTHONPATH']}"
        if not sandboxed:
            env["SEALROOM_TEST_NO_LANDLOCK"] = "1"
        return env

    def beside_the_keys() -> Path:
        folder = workdir()
        (folder / "keys").symlink_to(ws.keys)  # as if run from the workspace folder
        return folder

    monkeypatch.setattr(launcher, "room_environment", hooked)
    monkeypatch.setattr(launcher, "private_workdir", beside_the_keys)
    pipeline = _pipeline(mnist_story, contract_id, tmp_path)
    if sandboxed:
        # onnx's C++ reader is refused the file: the model cannot be built, the run fails.
        with pytest.raises(RoomError, match=r"failed: training failed: ModelError \(stage: train"):
            launcher.run_room(ws, contract_id, pipeline)
        with Ledger.open(ws) as ledger:
            failed = ledger.entries("run.failed")[-1].payload
        assert not (ws.runs / str(failed["run_id"])).exists()
        return
    receipt = launcher.run_room(ws, contract_id, pipeline, allow_unsandboxed=True)
    assert receipt.record.sandbox == "none"
    out = tmp_path / "out"
    decrypt_run(ws, receipt.run_id, load_party(ws, "lab"), out)
    leaked = b"".join(p.read_bytes() for p in out.rglob("trained_model.*"))
    assert secret in leaked  # without the sandbox the root key rides out in the model
