"""`sealroom demo inference` end to end: a model served from a room to a clinic in its own
home, which classifies held-out digits through the encrypted channel.

The fast test reuses a model the lab already has (no training room) and sends a few
digits; the slow one is the whole demo through the CLI, training included.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.serve.story import CLIENT, InferenceStory
from tests.e2e.stories import QuietNarrator

IMAGES = 12


def test_served_labels_equal_the_local_models_and_every_receipt_verifies(tmp_path: Path) -> None:
    from scenarios.mnist.save_model import make_model, model_onnx_bytes

    model = tmp_path / "lab-model.onnx"
    model.write_bytes(model_onnx_bytes(make_model(seed=3)))
    base = tmp_path / "demo"
    base.mkdir()
    result = InferenceStory(base, QuietNarrator(), images=IMAGES, reuse=model).play()
    assert result.images == IMAGES and result.run_id is None
    assert result.agreeing == IMAGES  # the served model IS the lab's model
    assert result.served_accuracy == result.local_accuracy
    assert result.receipts_verified == IMAGES and len(result.latencies_ms) == IMAGES
    assert result.committed_in_ledger  # the last receipt's root, in a ledger-signed entry
    assert result.url.startswith("http://127.0.0.1:") and result.insecure
    # The clinic's home holds its own key and public facts only.
    clinic = result.clinic_home
    assert (clinic / "parties" / CLIENT / "signing.pem").exists()
    for other in ("lab", "operator"):
        assert not (clinic / "parties" / other / "signing.pem").exists()
    assert not (result.home / "parties" / CLIENT / "signing.pem").exists()
    summary = result.summary()
    assert summary["p50_ms"] <= summary["p99_ms"]


@pytest.mark.slow
def test_demo_inference_trains_serves_and_matches_the_local_model(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    done = CliRunner().invoke(
        app, ["demo", "inference", "--home", str(home), "--epochs", "3", "--json"]
    )
    assert done.exit_code == 0, done.output
    summary = json.loads(done.output[done.output.index("{") :])
    assert summary["images"] == 300 and summary["agreeing"] == 300
    assert summary["served_accuracy"] == summary["local_accuracy"] >= 0.8
    assert summary["receipts_verified"] == 300 and summary["committed_in_ledger"]
    assert summary["run_id"].startswith("run-")
