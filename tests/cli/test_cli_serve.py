"""`sealroom serve` as the operator runs it, `sealroom infer` from the client's own home,
`sealroom receipt verify` on a saved inference receipt, and `sealroom model provision`
refused to anyone but the model owner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sealroom.attest.software import attestation_key
from sealroom.cli.main import app
from sealroom.crypto.identity import create_party
from sealroom.ledger import Ledger
from sealroom.workspace import ENV_VAR, Workspace
from tests.serve.helpers import CONTRACT_ID, Served, build

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Served, Workspace]:
    """The operator's workspace (model provisioned) and the client's home (alice)."""
    client_ws = Workspace.create(tmp_path / "client")
    alice = create_party(client_ws, "alice", "consumer")
    operator_ws = Workspace.create(tmp_path / "operator")
    monkeypatch.setenv(ENV_VAR, str(operator_ws.home))
    served = build(operator_ws, tmp_path, client_public=alice.identity.signing_key)
    bundle = tmp_path / "contract.json"
    bundle.write_text(served.signed.model_dump_json())
    key_file = tmp_path / "attest.pub"
    key_file.write_text(attestation_key(operator_ws).public_b64 + "\n")
    monkeypatch.setenv(ENV_VAR, str(client_ws.home))
    for args in (["contract", "import", str(bundle)], ["attest", "trust", str(key_file)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    return served, client_ws


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def serving(homes: tuple[Served, Workspace]) -> Iterator[tuple[str, float]]:
    """`sealroom serve --port 0 --json` in its own process; yields (url, startup seconds)."""
    served, _ = homes
    env = {**os.environ, ENV_VAR: str(served.ws.home), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            *(sys.executable, "-c", "from sealroom.cli.main import main; main()", "serve"),
            *("--json", "--contract", CONTRACT_ID, "--port", "0"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
        # A shell that starts the suite in the background ignores SIGINT in every child
        # (POSIX), and the Ctrl-C below would then never arrive: give `serve` a terminal's.
        preexec_fn=_default_sigint,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else "no output"
        ready = json.loads(line)
        yield ready["url"], ready["startup_s"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_then_infer_from_the_client_home(
    homes: tuple[Served, Workspace],
    serving: tuple[str, float],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    served, _ = homes
    url, startup = serving
    assert startup > 0
    one = tmp_path / "one.npy"
    np.save(one, np.array([0.1, 0.2, -0.3, 0.4], dtype=np.float32))
    batch = tmp_path / "batch.npy"
    np.save(batch, np.zeros((3, 4), dtype=np.float32))
    receipts = tmp_path / "receipts"
    args = ["infer", "--url", url, "--contract", CONTRACT_ID, "--as", "alice"]
    result = runner.invoke(app, [*args, "--receipts", str(receipts), str(one), str(batch)])
    assert result.exit_code == 0, result.output
    assert f"{one}: " in result.output and f"{batch}: " in result.output
    assert "verification document" in result.output
    assert "ledger commitment: ok: root listed in ledger entry" in result.output
    saved = sorted(p.name for p in receipts.iterdir())
    assert saved == ["batch.receipt.json", "one.receipt.json"]
    verify = runner.invoke(app, ["receipt", "verify", str(receipts / "one.receipt.json")])
    assert verify.exit_code == 0, verify.output
    with Ledger.open(served.ws) as ledger:
        assert ledger.find("inference.started", contract_id=CONTRACT_ID)


def test_infer_refuses_a_wrong_model_pin_and_a_stranger(
    homes: tuple[Served, Workspace], serving: tuple[str, float], tmp_path: Path
) -> None:
    url, _ = serving
    one = tmp_path / "one.npy"
    np.save(one, np.zeros(4, dtype=np.float32))
    base = ["infer", "--url", url, "--contract", CONTRACT_ID]
    pinned = runner.invoke(
        app, [*base, "--as", "alice", "--model-digest", "sha256:" + "0" * 64, str(one)]
    )
    assert pinned.exit_code == 1 and "attestation is for model" in pinned.output
    anonymous = runner.invoke(app, [*base, str(one)])
    assert anonymous.exit_code == 1 and "(401)" in anonymous.output


def test_infer_reads_a_png_scaled_to_the_signature(tmp_path: Path) -> None:
    from sealroom.cli.serve import load_input

    image = tmp_path / "digit.png"
    Image.fromarray(np.full((56, 56), 255, dtype=np.uint8), mode="L").save(image)
    array = load_input(image, [1, 28, 28], "float32")
    assert array.shape == (1, 28, 28) and array.dtype == np.float32
    assert float(array.max()) == pytest.approx(1.0)
    rgb = load_input(image, [3, 8, 8], "uint8")
    assert rgb.shape == (3, 8, 8) and int(rgb.max()) == 255


def test_model_provision_by_a_non_owner_is_refused(
    homes: tuple[Served, Workspace], monkeypatch: pytest.MonkeyPatch
) -> None:
    served, _ = homes
    monkeypatch.setenv(ENV_VAR, str(served.ws.home))
    for action in (["provision"], ["retire"]):
        result = runner.invoke(
            app, ["model", *action, "--contract", CONTRACT_ID, "--as", "operator"]
        )
        assert result.exit_code == 1 and "owner" in result.output
    with Ledger.open(served.ws) as ledger:
        assert len(ledger.find("model.provisioned", contract_id=CONTRACT_ID)) == 1
        assert not ledger.find("model.retired", contract_id=CONTRACT_ID)
