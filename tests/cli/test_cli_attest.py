"""`sealroom attest measure --snp`, `attest collateral add|list` and `attest verify` as a key
owner runs them: results on stdout (or --json), each refusal one line and exit 1."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from sealroom.attest import SoftwareAttester, make_report_data, measure_runtime
from sealroom.cli.main import app
from sealroom.crypto.hpke import generate_ephemeral
from sealroom.workspace import Workspace
from tests.attest import stub_hardware
from tests.attest.ovmf_fixture import make_ovmf
from tests.attest.stub_hardware import SNP_CLAIMS, SNP_MEASUREMENT, StubHardwareAttester
from tests.attest.test_launch import PINNED

runner = CliRunner()
DATA = Path(__file__).resolve().parents[1] / "data" / "attest"


def refused(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return " ".join(result.stderr.split())


def ok_json(*args: str) -> object:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --------------------------------------------------------------------------- measure


@pytest.fixture
def ovmf(tmp_path: Path) -> Path:
    return make_ovmf(tmp_path / "OVMF.fd")


def test_measure_snp_prints_the_launch_digest(ovmf: Path) -> None:
    args = ["attest", "measure", "--snp", "--ovmf", str(ovmf), "--vcpus", "2"]
    result = runner.invoke(app, [*args, "--vcpu-type", "EPYC-v4"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == PINNED
    assert "INSECURE" not in result.output
    shown = ok_json(*args, "--vcpu-type", "EPYC-v4")
    assert isinstance(shown, dict) and shown["measurement"] == PINNED
    assert shown["tee_type"] == "sev-snp" and shown["vcpus"] == 2
    assert shown["guest_features"] == "0x1" and shown["kernel_sha256"] is None


def test_measure_snp_with_a_kernel_differs_and_records_its_inputs(
    ovmf: Path, tmp_path: Path
) -> None:
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"kernel")
    shown = ok_json("attest", "measure", "--snp", "--ovmf", str(ovmf), "--kernel", str(kernel),
                    "--append", "console=ttyS0", "--vcpus", "2", "--vcpu-type", "EPYC-v4",
                    "--guest-features", "0x21")  # fmt: skip
    assert isinstance(shown, dict) and shown["measurement"] != PINNED
    assert shown["append"] == "console=ttyS0" and shown["guest_features"] == "0x21"
    assert shown["kernel_sha256"] == hashlib.sha256(b"kernel").hexdigest()


def test_plain_measure_is_still_the_software_measurement(workspace: Workspace) -> None:
    shown = ok_json("attest", "measure")
    assert isinstance(shown, dict) and shown["measurement"] == measure_runtime()
    assert shown["insecure"] is True


@pytest.mark.parametrize(
    ("extra", "line"),
    [
        (["--vcpus", "2", "--vcpu-type", "EPYC-v4"], "--snp needs --ovmf FILE"),
        (["--ovmf", "{ovmf}", "--vcpu-type", "EPYC-v4"], "--snp needs --vcpus N"),
        (["--ovmf", "{ovmf}", "--vcpus", "2"], "--snp needs --vcpu-type"),
        (["--ovmf", "{missing}", "--vcpus", "2", "--vcpu-type", "EPYC-v4"], "no such file"),
        (["--ovmf", "{plain}", "--vcpus", "2", "--vcpu-type", "EPYC-v4"], "no SEV metadata"),
        (["--ovmf", "{ovmf}", "--vcpus", "2", "--vcpu-type", "Zen9"], "unknown vCPU type 'Zen9'"),
        (
            ["--ovmf", "{ovmf}", "--vcpus", "2", "--vcpu-type", "EPYC-v4", "--initrd", "{ovmf}"],
            "--initrd needs --kernel",
        ),
        (
            [
                "--ovmf",
                "{ovmf}",
                "--vcpus",
                "2",
                "--vcpu-type",
                "EPYC-v4",
                "--guest-features",
                "zz",
            ],
            "--guest-features zz: not hex",
        ),
        (
            ["--ovmf", "{ovmf}", "--vcpus", "2", "--vcpu-type", "EPYC-v4", "--vmm-type", "xen"],
            "unknown VMM type 'xen'",
        ),
    ],
    ids=["no-ovmf", "no-vcpus", "no-type", "missing", "plain", "type", "initrd", "feat", "vmm"],
)
def test_measure_snp_bad_input_is_one_line(
    ovmf: Path, tmp_path: Path, extra: list[str], line: str
) -> None:
    paths = {
        "ovmf": str(ovmf),
        "missing": str(tmp_path / "missing.fd"),
        "plain": str(make_ovmf(tmp_path / "plain.fd", metadata=False)),
    }
    assert line in refused("attest", "measure", "--snp", *[a.format(**paths) for a in extra])


def test_snp_options_without_snp_are_refused(ovmf: Path) -> None:
    line = refused("attest", "measure", "--ovmf", str(ovmf))
    assert "--ovmf measures a SEV-SNP room image: add --snp" in line


# --------------------------------------------------------------------------- collateral


def test_collateral_add_then_list(workspace: Workspace, tmp_path: Path) -> None:
    files = [DATA / "snp" / "vs_vcek_milan.der", DATA / "tdx" / "tdx_quote_collateral.json"]
    added = ok_json("attest", "collateral", "add", *map(str, files))
    assert isinstance(added, list) and [e["tee_type"] for e in added] == ["sev-snp", "tdx"]
    listed = ok_json("attest", "collateral", "list")
    assert isinstance(listed, list) and listed[1]["path"] == "tdx/b0c06f000000.json"
    text = runner.invoke(app, ["attest", "collateral", "list"]).stdout
    assert "FMSPC b0c06f000000" in text and "SEV-VCEK" in text


def test_collateral_add_refuses_a_private_key_and_stores_none_of_the_files(
    workspace: Workspace, tmp_path: Path
) -> None:
    key = tmp_path / "key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    line = refused("attest", "collateral", "add", str(DATA / "snp" / "vs_vcek_milan.der"), str(key))
    assert "PEM block 0 is a PRIVATE KEY" in line
    assert ok_json("attest", "collateral", "list") == []


def test_collateral_list_when_empty(workspace: Workspace) -> None:
    assert "no collateral cached" in runner.invoke(app, ["attest", "collateral", "list"]).stdout


# --------------------------------------------------------------------------- verify


def _evidence_file(tmp_path: Path, attester: object, report_data: bytes) -> Path:
    evidence = attester.attest(report_data)  # type: ignore[attr-defined]
    path = tmp_path / "evidence.json"
    path.write_text(evidence.model_dump_json())
    return path


def test_verify_software_evidence_prints_claims_labelled_insecure(
    workspace: Workspace, tmp_path: Path
) -> None:
    nonce = os.urandom(32)
    _, key = generate_ephemeral()
    path = _evidence_file(tmp_path, SoftwareAttester(workspace), make_report_data(nonce, key))
    result = runner.invoke(
        app, ["attest", "verify", str(path), "--nonce", nonce.hex(), "--key", key]
    )
    assert result.exit_code == 0, result.output
    assert "INSECURE" in result.stderr
    assert measure_runtime() in result.stdout and "nonce and key bound" in result.stdout
    shown = ok_json("attest", "verify", str(path))
    assert isinstance(shown, dict) and shown["insecure"] is True
    assert shown["binding"].startswith("not checked")


def test_verify_refuses_evidence_not_binding_the_nonce(
    workspace: Workspace, tmp_path: Path
) -> None:
    nonce = os.urandom(32)
    _, key = generate_ephemeral()
    path = _evidence_file(tmp_path, SoftwareAttester(workspace), make_report_data(nonce, key))
    other = os.urandom(32).hex()
    line = refused("attest", "verify", str(path), "--nonce", other, "--key", key)
    assert "report_data does not bind this nonce and key" in line
    assert "go together" in refused("attest", "verify", str(path), "--nonce", other)


def test_verify_refuses_a_tampered_or_malformed_file(workspace: Workspace, tmp_path: Path) -> None:
    path = _evidence_file(tmp_path, SoftwareAttester(workspace), bytes(64))
    document = json.loads(path.read_text())
    document["tee_type"] = "sgx"
    path.write_text(json.dumps(document))
    assert "no verifier for TEE type 'sgx'" in refused("attest", "verify", str(path))
    path.write_text("{")
    assert f"{path}: " in refused("attest", "verify", str(path))


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    policy = {"measurements": [SNP_MEASUREMENT], "snp": {"min_tcb": {"snp": 14}}}
    path.write_text(yaml.safe_dump(policy))
    return path


def test_verify_hardware_claims_under_a_policy(
    workspace: Workspace, tmp_path: Path, policy_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub_hardware.install(monkeypatch)
    path = _evidence_file(tmp_path, StubHardwareAttester(SNP_CLAIMS), bytes(64))
    shown = ok_json("attest", "verify", str(path), "--policy", str(policy_file))
    assert isinstance(shown, dict) and shown["policy"] == "met"
    assert shown["platform"] == "Milan" and shown["tcb"]["snp"] == 14 and shown["vmpl"] == 0
    text = runner.invoke(app, ["attest", "verify", str(path), "--now", "2025-07-01T00:00:00Z"])
    assert text.exit_code == 0 and "INSECURE" not in text.output and "Milan" in text.stdout
    low = _evidence_file(tmp_path, StubHardwareAttester(SNP_CLAIMS, tcb={"snp": 13}), bytes(64))
    line = refused("attest", "verify", str(low), "--policy", str(policy_file))
    assert "TCB component snp is 13 in the report, below the minimum 14" in line


def test_verify_refuses_a_malformed_policy_or_naive_time(
    workspace: Workspace, tmp_path: Path, policy_file: Path
) -> None:
    path = _evidence_file(tmp_path, SoftwareAttester(workspace), bytes(64))
    policy_file.write_text(yaml.safe_dump({"measurements": [SNP_MEASUREMENT],
                                           "snp": {"max_vmpl": 9}}))  # fmt: skip
    assert "snp.max_vmpl" in refused("attest", "verify", str(path), "--policy", str(policy_file))
    assert "needs a timezone" in refused("attest", "verify", str(path), "--now", "2025-07-01")
