"""The configfs-tsm attester against a fake kernel over a temporary folder (fake_tsm.py)."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest

from sealroom.attest.collateral import collateral_dir
from sealroom.attest.snp_certtable import GUID_OF, build_cert_table
from sealroom.attest.tsm import ConfigfsTsmAttester, tsm_available
from sealroom.errors import AttestationError
from sealroom.workspace import Workspace
from tests.attest.fake_tsm import SNP, TDX, FakeTsmKernel, fake_snp_report, rewrite_inblob
from tests.attest.test_snp_certtable import DATA, der, real_table

REPORT_DATA = bytes(range(64))
TDX_QUOTE = (DATA / "tdx" / "tdx_quote").read_bytes()


def attester(kernel: FakeTsmKernel, privlevel: int | None = None) -> ConfigfsTsmAttester:
    return ConfigfsTsmAttester(kernel.root, fs=kernel, privlevel=privlevel)


def left_behind(kernel: FakeTsmKernel) -> list[Path]:
    return sorted(kernel.root.iterdir())


def test_snp_report_with_real_certificate_table(tmp_path: Path) -> None:
    kernel = FakeTsmKernel(tmp_path / "report", SNP, auxblob=real_table())
    tsm = attester(kernel)
    evidence = tsm.attest(REPORT_DATA)
    assert evidence.tee_type == "sev-snp" and tsm.tee_type == "sev-snp"
    assert evidence.payload == fake_snp_report(REPORT_DATA, 0)
    assert [ssl.PEM_cert_to_DER_cert(p) for p in evidence.certificates] == [
        der("vcek_milan.der"),
        der("ask_milan.pem"),
        der("ark_milan.pem"),
    ]
    assert kernel.requests == [(REPORT_DATA, 0)]
    assert len(kernel.entries_made) == 1 and left_behind(kernel) == []


def test_snp_without_certificates(tmp_path: Path) -> None:
    kernel = FakeTsmKernel(tmp_path / "report", SNP)
    evidence = attester(kernel).attest(REPORT_DATA)
    assert evidence.certificates == [] and evidence.signature == b""


def test_each_report_gets_a_fresh_entry(tmp_path: Path) -> None:
    kernel = FakeTsmKernel(tmp_path / "report", SNP)
    tsm = attester(kernel)
    tsm.attest(REPORT_DATA)
    tsm.attest(bytes(64))
    first, second = kernel.entries_made
    assert first != second and left_behind(kernel) == []
    assert [inblob for inblob, _ in kernel.requests] == [REPORT_DATA, bytes(64)]


def test_privlevel_is_written(tmp_path: Path) -> None:
    kernel = FakeTsmKernel(tmp_path / "report", SNP, floor=1)
    evidence = attester(kernel, privlevel=2).attest(REPORT_DATA)
    assert kernel.requests == [(REPORT_DATA, 2)]
    assert evidence.payload[0x30:0x34] == (2).to_bytes(4, "little")


def test_privlevel_defaults_to_the_guest_floor(tmp_path: Path) -> None:
    kernel = FakeTsmKernel(tmp_path / "report", SNP, floor=2)
    attester(kernel).attest(REPORT_DATA)
    assert kernel.requests == [(REPORT_DATA, 2)]


@pytest.mark.parametrize("level", [-1, 4, 255])
def test_privlevel_out_of_range_is_refused(tmp_path: Path, level: int) -> None:
    kernel = FakeTsmKernel(tmp_path / "report", SNP)
    with pytest.raises(AttestationError, match=f"privlevel {level} is out of range 0..3"):
        attester(kernel, privlevel=level)


def test_privlevel_below_the_floor_is_refused_and_entry_removed(tmp_path: Path) -> None:
    kernel = FakeTsmKernel(tmp_path / "report", SNP, floor=2)
    with pytest.raises(AttestationError, match=r"privlevel 1 is below .* privlevel_floor 2"):
        attester(kernel, privlevel=1).attest(REPORT_DATA)
    assert kernel.requests == [] and left_behind(kernel) == []


def test_privlevel_where_the_provider_has_none_is_refused(tmp_path: Path) -> None:
    kernel = FakeTsmKernel(tmp_path / "report", TDX, quote=TDX_QUOTE)
    with pytest.raises(AttestationError, match="privlevel 0 asked for, but the provider"):
        attester(kernel, privlevel=0).attest(REPORT_DATA)
    assert left_behind(kernel) == []


def test_tdx_quote_without_certificates(tmp_path: Path) -> None:
    quote = TDX_QUOTE
    kernel = FakeTsmKernel(tmp_path / "report", TDX, quote=quote)
    evidence = attester(kernel).attest(REPORT_DATA)
    assert (evidence.tee_type, evidence.payload) == ("tdx", quote)
    assert evidence.certificates == [] and evidence.collateral == ""
    assert kernel.requests == [(REPORT_DATA, 0)]  # no privlevel written: TDX hides it
    assert left_behind(kernel) == []


def test_tdx_quote_carries_cached_collateral(tmp_path: Path, workspace: Workspace) -> None:
    quote = TDX_QUOTE
    cached = collateral_dir(workspace) / "tdx"
    cached.mkdir(parents=True)
    (cached / "b0c06f000000.json").write_text('{"tcb_info": "cached for this FMSPC"}')
    kernel = FakeTsmKernel(tmp_path / "report", TDX, quote=quote)
    evidence = ConfigfsTsmAttester(kernel.root, ws=workspace, fs=kernel).attest(REPORT_DATA)
    assert evidence.collateral == '{"tcb_info": "cached for this FMSPC"}'


def test_tdx_quote_without_cached_collateral(tmp_path: Path, workspace: Workspace) -> None:
    kernel = FakeTsmKernel(tmp_path / "report", TDX, quote=TDX_QUOTE)
    evidence = ConfigfsTsmAttester(kernel.root, ws=workspace, fs=kernel).attest(REPORT_DATA)
    assert evidence.collateral == ""


def test_unparsable_tdx_quote_is_refused(tmp_path: Path, workspace: Workspace) -> None:
    kernel = FakeTsmKernel(tmp_path / "report", TDX, quote=b"\x07" * 600)
    tsm = ConfigfsTsmAttester(kernel.root, ws=workspace, fs=kernel)
    with pytest.raises(AttestationError, match="TDX quote from configfs-tsm does not parse"):
        tsm.attest(REPORT_DATA)
    assert left_behind(kernel) == []


def test_generation_race_is_detected_and_entry_removed(tmp_path: Path) -> None:
    kernel = FakeTsmKernel(tmp_path / "report", SNP)
    kernel.intruder = rewrite_inblob
    with pytest.raises(AttestationError, match=r"generation went 0 -> 3, expected 2: another"):
        attester(kernel).attest(REPORT_DATA)
    assert left_behind(kernel) == []


def test_unknown_provider_is_refused(tmp_path: Path) -> None:
    kernel = FakeTsmKernel(tmp_path / "report", "arm_cca_guest", quote=b"token")
    with pytest.raises(AttestationError, match=r"provider 'arm_cca_guest' .* not one sealroom"):
        attester(kernel).attest(REPORT_DATA)
    assert left_behind(kernel) == []


def test_malformed_certificate_table_is_refused(tmp_path: Path) -> None:
    table = build_cert_table([(GUID_OF["VCEK"], der("vcek_milan.der"))])
    kernel = FakeTsmKernel(tmp_path / "report", SNP, auxblob=table[:24])  # no terminator
    with pytest.raises(AttestationError, match="no all-zero terminator"):
        attester(kernel).attest(REPORT_DATA)
    assert left_behind(kernel) == []


def test_snp_report_binding_other_data_is_refused(tmp_path: Path) -> None:
    kernel = FakeTsmKernel(tmp_path / "report", SNP)
    kernel.report = lambda data, vmpl: fake_snp_report(bytes(64), vmpl)  # a stale report
    with pytest.raises(AttestationError, match="binds other report data"):
        attester(kernel).attest(REPORT_DATA)


def test_snp_report_of_the_wrong_size_or_vmpl_is_refused(tmp_path: Path) -> None:
    kernel = FakeTsmKernel(tmp_path / "report", SNP)
    kernel.report = lambda data, vmpl: fake_snp_report(data, vmpl)[:1000]
    with pytest.raises(AttestationError, match="has 1000 bytes, expected 1184"):
        attester(kernel).attest(REPORT_DATA)
    kernel.report = lambda data, vmpl: fake_snp_report(data, 3)
    with pytest.raises(AttestationError, match="is for VMPL 3, asked for 0"):
        attester(kernel).attest(REPORT_DATA)


@pytest.mark.parametrize("size", [0, 32, 63, 65])
def test_report_data_of_the_wrong_size_is_refused(tmp_path: Path, size: int) -> None:
    kernel = FakeTsmKernel(tmp_path / "report", SNP)
    with pytest.raises(AttestationError, match=f"report data must be 64 bytes, got {size}"):
        attester(kernel).attest(bytes(size))
    assert kernel.entries_made == []


def test_kernel_refusal_is_reported_and_entry_removed(tmp_path: Path) -> None:
    kernel = FakeTsmKernel(tmp_path / "report", SNP)
    kernel.report = lambda data, vmpl: b""  # the firmware returned nothing
    with pytest.raises(AttestationError, match="outblob is empty"):
        attester(kernel).attest(REPORT_DATA)
    assert left_behind(kernel) == []


def test_missing_tree_gives_the_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "sys" / "kernel" / "config" / "tsm" / "report"
    with pytest.raises(AttestationError) as info:
        ConfigfsTsmAttester(missing)
    message = str(info.value)
    assert message.startswith(f"no configfs-tsm at {missing}: not a TEE guest (SEV-SNP or TDX)")
    assert "mount -t configfs none /sys/kernel/config" in message and "\n" not in message
    assert not tsm_available(missing)


@pytest.mark.skipif(os.path.isdir("/sys/kernel/config/tsm/report"), reason="a TEE guest")
def test_this_host_has_no_configfs_tsm() -> None:
    with pytest.raises(AttestationError, match="no configfs-tsm at /sys/kernel/config/tsm/report"):
        ConfigfsTsmAttester()
