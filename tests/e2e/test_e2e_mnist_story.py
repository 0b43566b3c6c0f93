"""The whole MNIST story (tiny settings): receipt, decrypted outputs, ledger, no plaintext left."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.ledger import Ledger
from sealroom.room.receipt import ReceiptError, load_receipt
from sealroom.sandbox import landlock_abi
from tests.e2e.stories import PlayedStory

runner = CliRunner()


def test_story_ends_with_a_verified_receipt_and_decrypted_outputs(mnist_story: PlayedStory) -> None:
    result = mnist_story.result
    record = result.receipt.record
    with Ledger.open(mnist_story.ws) as ledger:
        result.receipt.verify(ledger.public_key_b64)
        ledger.verify()
        kinds = [e.kind for e in ledger.entries()]
    assert record.insecure and record.room.tee_type == "software"
    assert set(record.datasets) == {"mnist"} and record.model_digest
    names = {o.name for o in record.outputs}
    assert {"trained_model.onnx", "metrics.json", "confusion_matrix.png"} <= names
    assert record.metrics == {}  # the contract makes no metric public: all go sealed
    assert {p.name for p in result.files} >= {"trained_model.onnx", "metrics.json"}
    document = (result.outputs / "metrics.json").read_bytes()
    assert 0.0 <= json.loads(document)["metrics"]["accuracy"] <= 1.0
    assert record.metrics_sha256 == hashlib.sha256(document).hexdigest()
    assert record.key_custody.startswith("embedded") and "no protection" in record.key_custody
    # The room confined itself (Landlock + seccomp) wherever the kernel offers Landlock.
    assert record.sandbox.startswith("landlock-abi") if landlock_abi() else record.sandbox == "none"
    assert kinds.count("key.released") == 2
    assert kinds.index("run.started") < kinds.index("key.released") < kinds.index("run.completed")


def test_story_leaves_no_plaintext_in_workspace_or_temp(mnist_story: PlayedStory) -> None:
    assert mnist_story.leaks() == []
    run_dir = mnist_story.result.run_dir
    assert not list(run_dir.parent.glob(".staging-*"))
    # Sealed outputs are not the decrypted ones either.
    model = (mnist_story.result.outputs / "trained_model.onnx").read_bytes()
    chunk = model[len(model) // 2 : len(model) // 2 + 64]
    assert not any(chunk in p.read_bytes() for p in run_dir.rglob("*") if p.is_file())


def test_cli_receipt_verify_and_output_decrypt(
    mnist_story: PlayedStory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEALROOM_HOME", str(mnist_story.ws.home))
    run_id = mnist_story.result.receipt.run_id
    done = runner.invoke(app, ["receipt", "verify", run_id, "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["verified"] and report["outputs_checked"] and report["insecure"]
    out = tmp_path / "out"
    done = runner.invoke(app, ["output", "decrypt", run_id, "--as", "lab", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert (out / "trained_model.onnx").read_bytes() == (
        mnist_story.result.outputs / "trained_model.onnx"
    ).read_bytes()
    done = runner.invoke(app, ["output", "decrypt", run_id, "--as", "hospital", "--out", str(out)])
    assert done.exit_code == 1 and "sealed to lab" in done.output


def test_receipt_verify_names_an_edited_output(mnist_story: PlayedStory, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(mnist_story.result.run_dir, copy)
    receipt = load_receipt(copy)
    receipt.verify_outputs(copy)
    target = copy / "outputs" / "metrics.json.sealed"
    data = bytearray(target.read_bytes())
    data[20] ^= 1
    target.write_bytes(bytes(data))
    with pytest.raises(ReceiptError, match=r"metrics\.json\.sealed"):
        receipt.verify_outputs(copy)


def test_receipt_with_edited_metrics_does_not_verify(mnist_story: PlayedStory) -> None:
    receipt = mnist_story.result.receipt
    forged = receipt.model_copy(
        update={"record": receipt.record.model_copy(update={"metrics": {"accuracy": 1.0}})}
    )
    with pytest.raises(ReceiptError, match="payload does not match"):
        forged.verify()
