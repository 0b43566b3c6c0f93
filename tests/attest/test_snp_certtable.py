"""The SEV-SNP certificate table (configfs-tsm auxblob): real certificates, hostile tables."""

from __future__ import annotations

import ssl
import struct
from pathlib import Path
from uuid import UUID

import pytest

import sealroom
from sealroom.attest.snp_certtable import (
    ENTRY,
    GUID_OF,
    MAX_ENTRIES,
    build_cert_table,
    certificates_pem,
    parse_cert_table,
)
from sealroom.errors import AttestationError

DATA = Path(__file__).parents[1] / "data" / "attest"
# Real AMD certificates: a Milan VCEK (tests/data/attest/snp) and AMD's Milan ASK and ARK
# as the package ships them (sealroom/attest/snp/roots).
FILES = {
    "vcek_milan.der": DATA / "snp" / "vs_vcek_milan.der",
    "ask_milan.pem": Path(sealroom.__file__).parent / "attest" / "snp" / "roots" / "milan_ask.pem",
    "ark_milan.pem": Path(sealroom.__file__).parent / "attest" / "snp" / "roots" / "milan_ark.pem",
}


def der(name: str) -> bytes:
    """One of FILES as DER, whatever its file's encoding."""
    raw = FILES[name].read_bytes()
    return raw if name.endswith(".der") else ssl.PEM_cert_to_DER_cert(raw.decode("ascii"))


def real_table() -> bytes:
    """Milan VCEK, ASK and ARK, stored ARK first to prove the output order is by role."""
    return build_cert_table(
        [
            (GUID_OF["ARK"], der("ark_milan.pem")),
            (GUID_OF["VCEK"], der("vcek_milan.der")),
            (GUID_OF["ASK"], der("ask_milan.pem")),
        ]
    )


def entry(guid: UUID | bytes, offset: int, length: int) -> bytes:
    raw = guid.bytes if isinstance(guid, UUID) else guid
    return ENTRY.pack(raw, offset, length)


def test_real_table_gives_pem_certificates_signing_key_first() -> None:
    pems = certificates_pem(real_table())
    got = [ssl.PEM_cert_to_DER_cert(p) for p in pems]
    assert got == [der("vcek_milan.der"), der("ask_milan.pem"), der("ark_milan.pem")]
    assert all(p.startswith("-----BEGIN CERTIFICATE-----") for p in pems)


def test_vlek_comes_first_too() -> None:
    table = build_cert_table(
        [(GUID_OF["ASK"], der("ask_milan.pem")), (GUID_OF["VLEK"], der("vcek_milan.der"))]
    )
    pems = certificates_pem(table)
    assert ssl.PEM_cert_to_DER_cert(pems[0]) == der("vcek_milan.der")


def test_empty_auxblob_has_no_certificates() -> None:
    assert certificates_pem(b"") == []
    assert certificates_pem(bytes(ENTRY.size)) == []  # terminator only


def test_unknown_guid_is_bounds_checked_then_left_out() -> None:
    other = UUID("ecae0c0f-9502-43b1-afa2-0ae2e0d565b6")
    table = build_cert_table([(other, b"\x01" * 10), (GUID_OF["VCEK"], der("vcek_milan.der"))])
    assert len(certificates_pem(table)) == 1
    bad = entry(other, 48, 4096) + bytes(ENTRY.size) + b"\x01" * 10
    with pytest.raises(AttestationError, match=r"entry 0 \(unknown GUID\): bytes 48\.\.4144"):
        certificates_pem(bad)


def test_offset_past_the_end_is_refused() -> None:
    table = bytearray(real_table())
    struct.pack_into("<I", table, 16, len(table))  # entry 0 (ARK) offset = end of the blob
    with pytest.raises(AttestationError, match=r"entry 0 \(ARK\): bytes \d+\.\.\d+ lie outside"):
        parse_cert_table(bytes(table))


def test_huge_length_is_refused() -> None:
    table = bytearray(real_table())
    struct.pack_into("<I", table, ENTRY.size + 20, 0xFFFFFFFF)  # entry 1 (VCEK) length
    with pytest.raises(AttestationError, match=r"entry 1 \(VCEK\): .* lie outside the table"):
        parse_cert_table(bytes(table))


def test_overlapping_entries_are_refused() -> None:
    body = der("ask_milan.pem")
    start = 3 * ENTRY.size
    table = (
        entry(GUID_OF["ASK"], start, len(body))
        + entry(GUID_OF["ARK"], start + 10, len(body) - 10)
        + bytes(ENTRY.size)
        + body
    )
    with pytest.raises(AttestationError, match=r"entry 1 \(ARK\): bytes overlap entry 0"):
        parse_cert_table(table)


def test_offset_inside_the_header_is_refused() -> None:
    table = entry(GUID_OF["VCEK"], 0, 24) + bytes(ENTRY.size)
    with pytest.raises(AttestationError, match=r"entry 0 \(VCEK\): offset 0 lies inside"):
        parse_cert_table(table)


def test_missing_terminator_is_refused() -> None:
    table = real_table()
    no_end = table[: 3 * ENTRY.size]  # three entries, no all-zero entry, nothing after
    with pytest.raises(AttestationError, match=r"entry 3 at byte 72 .* no all-zero terminator"):
        parse_cert_table(no_end)


def test_too_many_entries_are_refused() -> None:
    junk = b"".join(entry(UUID(int=i + 1), 0, 1) for i in range(MAX_ENTRIES + 1))
    with pytest.raises(AttestationError, match=f"more than {MAX_ENTRIES} entries"):
        parse_cert_table(junk + bytes(ENTRY.size))


def test_repeated_guid_is_refused() -> None:
    vcek = der("vcek_milan.der")
    table = build_cert_table([(GUID_OF["VCEK"], vcek), (GUID_OF["VCEK"], vcek)])
    with pytest.raises(AttestationError, match=r"entry 1 \(VCEK\): GUID .* repeats entry 0"):
        parse_cert_table(table)


def test_empty_entry_and_null_guid_are_refused() -> None:
    with pytest.raises(AttestationError, match=r"entry 0 \(ASK\): empty certificate"):
        parse_cert_table(entry(GUID_OF["ASK"], 48, 0) + bytes(ENTRY.size))
    with pytest.raises(AttestationError, match=r"entry 0 \(unknown GUID\): null GUID"):
        parse_cert_table(entry(bytes(16), 48, 1) + bytes(ENTRY.size) + b"x")


def test_entry_that_is_not_a_certificate_is_refused() -> None:
    for junk in (b"\x04\x03abc", der("vcek_milan.der") + b"\x00", der("vcek_milan.der")[:-1]):
        table = build_cert_table([(GUID_OF["VCEK"], junk)])
        with pytest.raises(AttestationError, match=r"entry 0 \(VCEK\): not one DER certificate"):
            certificates_pem(table)


def test_pem_entry_is_accepted() -> None:
    pem = FILES["ask_milan.pem"].read_bytes()
    pems = certificates_pem(build_cert_table([(GUID_OF["ASK"], pem)]))
    assert ssl.PEM_cert_to_DER_cert(pems[0]) == der("ask_milan.pem")
