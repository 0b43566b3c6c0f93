"""SEV-SNP report parsing: real reports' fields, TCB layouts by family, malformed fields."""

from __future__ import annotations

import struct

import pytest

from sealroom.attest.snp.report import decode_tcb, parse_report
from sealroom.errors import AttestationError
from tests.attest.snp_real import VS_MEASUREMENT, gsg_report, vs_report


def test_virtee_milan_report_fields() -> None:
    report = parse_report(vs_report())
    assert report.version == 2
    assert report.policy == 0x30000
    assert report.debug is False
    assert report.vmpl == 0
    assert report.signing_key == "vcek"
    assert report.measurement.hex() == VS_MEASUREMENT
    assert report.cpuid is None  # v2: no CPUID fields
    assert report.tcb("Milan").as_dict() == {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115}


def test_go_sev_guest_report_allows_debug() -> None:
    report = parse_report(gsg_report())
    assert report.policy == 0xB0000
    assert report.debug is True
    assert report.report_data[:5] == bytes([1, 2, 3, 4, 5])
    assert report.tcb("Milan").as_dict() == {"bootloader": 2, "tee": 0, "snp": 5, "microcode": 68}


def test_tcb_layout_differs_for_turin() -> None:
    raw = bytes([1, 2, 3, 4, 0, 0, 5, 6])
    assert decode_tcb(raw, "Milan").as_dict() == {
        "bootloader": 1,
        "tee": 2,
        "snp": 5,
        "microcode": 6,
    }
    assert decode_tcb(raw, "Genoa") == decode_tcb(raw, "Milan")
    assert decode_tcb(raw, "Turin").as_dict() == {
        "fmc": 1,
        "bootloader": 2,
        "tee": 3,
        "snp": 4,
        "microcode": 6,
    }
    with pytest.raises(AttestationError, match="no TCB_VERSION layout"):
        decode_tcb(raw, "Naples")


def _with(offset: int, fmt: str, value: int) -> bytes:
    data = bytearray(vs_report())
    struct.pack_into(fmt, data, offset, value)
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (vs_report()[:-1], "1183 bytes, expected 1184"),
        (vs_report() + b"\0", "1185 bytes, expected 1184"),
        (b"", "0 bytes"),
        (_with(0x00, "<I", 1), "version 1 \\(offset 0x0\\) is not supported"),
        (_with(0x00, "<I", 4), "version 4 \\(offset 0x0\\)"),
        (_with(0x08, "<Q", 0x10000), "policy \\(offset 0x8\\) has reserved bit 17 clear"),
        (_with(0x30, "<I", 4), "VMPL 4 \\(offset 0x30\\)"),
        (_with(0x34, "<I", 2), "signature algorithm 2 \\(offset 0x34\\)"),
        (_with(0x48, "<I", 7 << 2), "signing key 7 \\(offset 0x48"),
        (_with(0x48, "<I", 0b10), "MASK_CHIP_KEY"),
        (_with(0x48, "<I", 1 << 5), "signer info 0x20 \\(offset 0x48\\) has reserved bits"),
        (_with(0x4C, "<I", 1), "reserved field \\(offset 0x4c"),
        (_with(0x190, "<I", 1), "reserved field \\(offset 0x188"),
        (_with(0x2D0, "<I", 1), "signature r padding"),
        (_with(0x318, "<I", 1), "signature s padding"),
        (_with(0x400, "<I", 1), "signature padding \\(offset 0x330"),
    ],
)
def test_malformed_report_is_refused_naming_the_field(data: bytes, match: str) -> None:
    with pytest.raises(AttestationError, match=match):
        parse_report(data)


def test_v3_cpuid_names_the_family() -> None:
    data = bytearray(vs_report())
    struct.pack_into("<I", data, 0, 3)
    data[0x188:0x18B] = bytes([0x19, 0x11, 0x01])
    assert parse_report(bytes(data)).cpuid_family == "Genoa"
    data[0x188:0x18B] = bytes([0x1A, 0x02, 0x00])
    assert parse_report(bytes(data)).cpuid_family == "Turin"
    data[0x188:0x18B] = bytes([0x17, 0x31, 0x00])  # Rome: no SEV-SNP
    with pytest.raises(AttestationError, match="CPUID family 0x17 model 0x31"):
        _ = parse_report(bytes(data)).cpuid_family
