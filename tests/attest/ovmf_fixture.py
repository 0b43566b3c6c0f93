"""A synthetic OVMF image with the SEV metadata and footer table that sev-snp-measure reads.

Layout (edk2's OvmfPkg/ResetVector): the last 32 bytes of the image hold the reset vector;
just before them the footer entry (u16 size, GUID 96b582de-...), preceded by the table's
entries, each ``data || u16 size || GUID`` read backwards from the end. The SEV metadata
entry points (offset from the end) at an ``ASEV`` header followed by section descriptors
(gpa, size, type). Nothing here is a real firmware: the pages are filler, only the
structures the measurement depends on are real.
"""

from __future__ import annotations

import struct
import uuid
from pathlib import Path

FOOTER_GUID = "96b582de-1fb2-45f7-baea-a366c55a082d"
SEV_METADATA_GUID = "dc886566-984a-4798-a75e-5585a7bf67cc"
RESET_BLOCK_GUID = "00f771de-1a7e-4fcb-890e-68c77e2fb44e"
HASH_TABLE_GUID = "7255371f-3a3b-4b04-927b-1da6efa8d454"
SEC_MEM, SECRETS, CPUID, KERNEL_HASHES = 1, 2, 3, 0x10
SECTIONS = [
    (0x800000, 0x9000, SEC_MEM),
    (0x809000, 0x1000, SECRETS),
    (0x80A000, 0x1000, CPUID),
    (0x80B000, 0x1000, KERNEL_HASHES),
]
HASH_TABLE_GPA = 0x80BC00
RESET_EIP = 0x80C004
METADATA_AT = 0x1000  # offset of the ASEV header from the start of the image


def _entry(guid: str, data: bytes) -> bytes:
    return data + struct.pack("<H", len(data) + 18) + uuid.UUID(guid).bytes_le


def make_ovmf(
    path: Path,
    *,
    pages: int = 16,
    metadata: bool = True,
    kernel_hashes: bool = True,
    filler: bytes = b"OVMF",
) -> Path:
    """Write the image to ``path``: ``metadata=False`` leaves the SEV metadata entry out;
    ``kernel_hashes=False`` leaves out the kernel hashes section and hash table entry."""
    size = pages * 4096
    image = bytearray((filler * (size // len(filler) + 1))[:size])
    sections = [s for s in SECTIONS if kernel_hashes or s[2] != KERNEL_HASHES]
    header = b"ASEV" + struct.pack("<III", 16 + 12 * len(sections), 1, len(sections))
    descs = b"".join(struct.pack("<III", *s) for s in sections)
    image[METADATA_AT : METADATA_AT + len(header) + len(descs)] = header + descs
    entries = _entry(RESET_BLOCK_GUID, struct.pack("<I", RESET_EIP))
    if kernel_hashes:
        entries += _entry(HASH_TABLE_GUID, struct.pack("<II", HASH_TABLE_GPA, 0x400))
    if metadata:
        entries += _entry(SEV_METADATA_GUID, struct.pack("<I", size - METADATA_AT))
    footer = struct.pack("<H", len(entries) + 18) + uuid.UUID(FOOTER_GUID).bytes_le
    table = entries + footer
    end = size - 32
    image[end - len(table) : end] = table
    path.write_bytes(bytes(image))
    return path
