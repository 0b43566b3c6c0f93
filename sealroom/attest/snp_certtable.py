"""The SEV-SNP certificate table a host hands its guest (configfs-tsm ``auxblob``).

Layout (GHCB specification, MSG_REPORT_REQ / SNP extended guest request): entries of 24
bytes, each a GUID (16 bytes, RFC 4122 byte order), a little-endian u32 offset and a u32
length, ended by an all-zero entry; offsets count from the start of the table. The host
writes this table, so it is hostile input: every entry is bounds-checked, each certificate
must be exactly one DER structure (the table is never decoded as text), and a malformed
entry refuses the whole table. The certificates are not trusted here: a verifier chains
them to AMD's roots.
"""

from __future__ import annotations

import logging
import ssl
import struct
from dataclasses import dataclass
from uuid import UUID

from sealroom.errors import AttestationError

log = logging.getLogger("sealroom.attest")

ENTRY = struct.Struct("<16sII")  # GUID, offset, length
MAX_ENTRIES = 16  # four known GUIDs; a longer table is a host playing games
MAX_TABLE_BYTES = 1 << 20  # the kernel caps the blob at SEV_FW_BLOB_MAX_SIZE (16 KiB)

# GHCB specification, "Certificate table" GUIDs. The ASK GUID also carries the ASVK.
GUIDS: dict[UUID, str] = {
    UUID("63da758d-e664-4564-adc5-f4b93be8accd"): "VCEK",
    UUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1"): "VLEK",
    UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782"): "ASK",
    UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae"): "ARK",
}
GUID_OF: dict[str, UUID] = {name: guid for guid, name in GUIDS.items()}
# The signing key first: a verifier reads certificates[0] as the VCEK or VLEK.
ORDER = ("VCEK", "VLEK", "ASK", "ARK")
_NULL = bytes(16)


@dataclass(frozen=True)
class CertEntry:
    """One table entry: ``name`` is VCEK/VLEK/ASK/ARK, or "" for a GUID sealroom does not know."""

    guid: UUID
    name: str
    offset: int
    length: int
    data: bytes


def _refuse(index: int, name: str, problem: str) -> AttestationError:
    label = name or "unknown GUID"
    return AttestationError(f"SEV-SNP certificate table entry {index} ({label}): {problem}")


def parse_cert_table(blob: bytes) -> list[CertEntry]:
    """The entries of ``blob``; AttestationError naming the first malformed entry."""
    if not blob:
        return []
    if len(blob) > MAX_TABLE_BYTES:
        raise AttestationError(
            f"SEV-SNP certificate table has {len(blob)} bytes, more than {MAX_TABLE_BYTES}"
        )
    headers: list[tuple[UUID, int, int]] = []
    for index in range(MAX_ENTRIES + 1):
        start = index * ENTRY.size
        if start + ENTRY.size > len(blob):
            raise AttestationError(
                f"SEV-SNP certificate table entry {index} at byte {start} runs past the end of "
                f"the table ({len(blob)} bytes): no all-zero terminator"
            )
        raw_guid, offset, length = ENTRY.unpack_from(blob, start)
        if raw_guid == _NULL and offset == 0 and length == 0:
            break
        headers.append((UUID(bytes=raw_guid), offset, length))
    else:
        raise AttestationError(
            f"SEV-SNP certificate table has more than {MAX_ENTRIES} entries before its terminator"
        )
    header_end = (len(headers) + 1) * ENTRY.size
    entries: list[CertEntry] = []
    for index, (guid, offset, length) in enumerate(headers):
        name = GUIDS.get(guid, "")
        if guid.bytes == _NULL:
            raise _refuse(index, name, f"null GUID with offset {offset}, length {length}")
        if length == 0:
            raise _refuse(index, name, f"empty certificate at offset {offset}")
        if offset < header_end:
            raise _refuse(index, name, f"offset {offset} lies inside the table header")
        if offset + length > len(blob):
            raise _refuse(
                index,
                name,
                f"bytes {offset}..{offset + length} lie outside the table ({len(blob)} bytes)",
            )
        for other_index, other in enumerate(entries):
            if other.guid == guid:
                raise _refuse(index, name, f"GUID {guid} repeats entry {other_index}")
            if offset < other.offset + other.length and other.offset < offset + length:
                raise _refuse(index, name, f"bytes overlap entry {other_index}")
        entries.append(CertEntry(guid, name, offset, length, blob[offset : offset + length]))
    return entries


def _der_length(data: bytes) -> int:
    """The size a DER SEQUENCE says it has (header included), or -1 if it is none."""
    if len(data) < 2 or data[0] != 0x30:
        return -1
    if data[1] < 0x80:
        return 2 + data[1]
    count = data[1] & 0x7F
    if not 1 <= count <= 4 or len(data) < 2 + count:
        return -1
    return 2 + count + int.from_bytes(data[2 : 2 + count], "big")


def _pem(entry: CertEntry, index: int) -> str:
    """The entry as a PEM certificate, without parsing X.509 here: the verifier parses it
    (AMD's VCEKs carry serial number 0, which X.509 parsers are starting to refuse)."""
    data = entry.data
    if data.startswith(b"-----BEGIN CERTIFICATE-----"):
        try:
            data = ssl.PEM_cert_to_DER_cert(data.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise _refuse(index, entry.name, "malformed PEM certificate") from None
    if _der_length(data) != len(data):
        raise _refuse(index, entry.name, "not one DER certificate (SEQUENCE length mismatch)")
    return ssl.DER_cert_to_PEM_cert(data)


def certificates_pem(blob: bytes) -> list[str]:
    """PEM certificates of the table, VCEK/VLEK first, then ASK and ARK.

    An entry with a GUID sealroom does not know is bounds-checked like the others and then
    left out (a verifier could not use it); it is logged, not refused.
    """
    entries = parse_cert_table(blob)
    by_name: dict[str, str] = {}
    for index, entry in enumerate(entries):
        if not entry.name:
            log.info("SEV-SNP certificate table: entry %d has unknown GUID %s", index, entry.guid)
            continue
        by_name[entry.name] = _pem(entry, index)
    return [by_name[name] for name in ORDER if name in by_name]


def build_cert_table(certs: list[tuple[UUID, bytes]]) -> bytes:
    """A well-formed table holding ``certs`` in order (for tests and tools, never the guest)."""
    header = ENTRY.size * (len(certs) + 1)
    table, body = bytearray(), bytearray()
    for guid, data in certs:
        table += ENTRY.pack(guid.bytes, header + len(body), len(data))
        body += data
    return bytes(table + bytes(ENTRY.size) + body)
