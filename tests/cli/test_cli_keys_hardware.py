"""`sealroom keys import|grant` with hardware terms: the stored policy carries them, `keys
list` shows them, and a malformed term is one line before anything is stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sealroom.cli.main import app
from sealroom.kms import KeyService
from sealroom.workspace import Workspace
from tests.cli.test_cli_model import CONTRACT, ok, refused, runner, signed_serving_contract

MEASUREMENT = "5a" * 48


@pytest.fixture
def package(workspace: Workspace, tmp_path: Path) -> Path:
    sealed, _ = signed_serving_contract(workspace, tmp_path, b"a model sealed for a hardware room")
    return sealed


def _import(package: Path, *terms: str) -> list[str]:
    return ["keys", "import", str(package), "--as", "lab", "--contract", CONTRACT,
            "--measurement", MEASUREMENT, *terms]  # fmt: skip


def test_import_stores_the_hardware_terms_and_list_shows_them(
    workspace: Workspace, package: Path
) -> None:
    terms = ["--tee", "sev-snp", "--min-tcb", "snp=14", "--min-tcb", "microcode=209",
             "--max-vmpl", "1", "--host-data", "AB" * 32, "--rtmr", "2=" + "cd" * 48,
             "--tdx-status", "UpToDate", "--tdx-status", "SWHardeningNeeded"]  # fmt: skip
    shown = ok(*_import(package, *terms))
    assert shown["tee_types"] == ["sev-snp"]
    assert shown["snp"]["min_tcb"] == {"snp": 14, "microcode": 209}
    assert shown["snp"]["max_vmpl"] == 1 and shown["snp"]["host_data"] == "ab" * 32
    assert shown["tdx"]["rtmrs"] == [None, None, "cd" * 48]
    assert shown["tdx"]["tcb_statuses"] == ["UpToDate", "SWHardeningNeeded"]
    with KeyService(workspace) as service:
        [record] = service.keys()
    assert record.policy.snp.min_tcb == {"snp": 14, "microcode": 209}
    assert record.policy.tdx.rtmrs[2] == "cd" * 48
    [listed] = ok("keys", "list")
    assert listed["snp"]["max_vmpl"] == 1
    text = runner.invoke(app, ["keys", "list"])
    assert "rooms: sev-snp; SEV-SNP: VMPL <= 1, TCB microcode>=209, TCB snp>=14" in " ".join(
        text.stdout.split()
    )


def test_import_without_terms_allows_both_hardware_tees_with_default_terms(
    workspace: Workspace, package: Path
) -> None:
    shown = ok(*_import(package))
    assert shown["tee_types"] == ["sev-snp", "tdx"]
    assert shown["snp"]["max_vmpl"] == 0 and shown["tdx"]["tcb_statuses"] == ["UpToDate"]


BAD_TERMS: list[tuple[list[str], str]] = [
    (["--tee", "software"], "--tee software: not a hardware TEE"),
    (["--tee", "sgx"], "--tee sgx: not a hardware TEE"),
    (["--min-tcb", "snp"], "--min-tcb snp: expected COMPONENT=SVN"),
    (["--min-tcb", "snp=x"], "--min-tcb snp=x: expected COMPONENT=SVN with a whole number"),
    (["--min-tcb", "ucode=3"], "unknown TCB component 'ucode'"),
    (["--min-tcb", "snp=300"], "TCB component snp must be 0..255"),
    (["--max-vmpl", "4"], "--max-vmpl: Input should be less than or equal to 3"),
    (["--host-data", "abcd"], "--host-data: host_data must be 32 bytes of hex"),
    (["--rtmr", "4=" + "00" * 48], "--rtmr 4=" + "00" * 48 + ": TDX has RTMR0..RTMR3"),
    (["--rtmr", "x=00"], "--rtmr x=00: expected INDEX=HEX"),
    (["--rtmr", "1=00"], "rtmr1 must be 48 bytes of hex"),
    (["--tdx-status", "OutOfDate"], "--tdx-status: TCB status 'OutOfDate' cannot be allowed"),
]


@pytest.mark.parametrize(("terms", "line"), BAD_TERMS, ids=[" ".join(t) for t, _ in BAD_TERMS])
def test_a_malformed_term_is_one_line_and_stores_nothing(
    workspace: Workspace, package: Path, terms: list[str], line: str
) -> None:
    assert line in refused(*_import(package, *terms))
    with KeyService(workspace) as service:
        assert service.keys() == []


def test_grant_carries_the_terms_in_the_signed_policy(
    workspace: Workspace, package: Path, tmp_path: Path
) -> None:
    from sealroom.kms.grant import load_grant

    public = ok("kms", "public-key")
    service = tmp_path / "kms.pub.json"
    service.write_text(__import__("json").dumps(public))
    out = tmp_path / "model.grant.json"
    args: list[Any] = ["keys", "grant", str(package), "--as", "lab", "--contract", CONTRACT,
                       "--to", str(service), "--out", str(out), "--measurement", MEASUREMENT,
                       "--tee", "tdx", "--tdx-status", "SWHardeningNeeded"]  # fmt: skip
    ok(*args)
    granted = load_grant(out)
    assert granted.policy.tee_types == ["tdx"]
    assert granted.policy.tdx.tcb_statuses == ["SWHardeningNeeded"]
    shown = ok("keys", "import-grant", str(out))
    assert shown["tdx"]["tcb_statuses"] == ["SWHardeningNeeded"]
