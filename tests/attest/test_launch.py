"""SEV-SNP launch measurements of a room image: the digest sev-snp-measure computes, checked
against an independent recomputation of the launch-update chain, and the inputs refused."""

from __future__ import annotations

import hashlib
import struct
import uuid
from pathlib import Path

import pytest
from sevsnpmeasure.guest import snp_calc_launch_digest
from sevsnpmeasure.sev_mode import SevMode
from sevsnpmeasure.vcpu_types import CPU_SIGS
from sevsnpmeasure.vmm_types import VMMType
from sevsnpmeasure.vmsa import VMSA

from sealroom.attest.launch import LaunchError, SnpLaunch, snp_launch_measurement
from tests.attest.ovmf_fixture import (
    CPUID,
    HASH_TABLE_GPA,
    KERNEL_HASHES,
    RESET_EIP,
    SEC_MEM,
    SECRETS,
    SECTIONS,
    make_ovmf,
)

# The fixture image (16 pages of b"OVMF", 2 x EPYC-v4, QEMU, features 0x1), pinned so that a
# change in sev-snp-measure or in how this module calls it is seen.
PINNED = (
    "ca13aaae5e674fea839413000aef7506f1a0a063ec5484cd6e2831d6381e9161"
    "af362f5e57850974da162e69f4bb7be8"
)
VMSA_GPA = 0xFFFFFFFFF000


def _guid(text: str) -> bytes:
    return uuid.UUID(text).bytes_le


def _hashes_page(kernel: bytes, initrd: bytes, append: str) -> bytes:
    """The SEV hashes table QEMU places in the kernel-hashes page (AMD SEV API, OVMF's
    SevHashFinderLib): header GUID, length, then cmdline/initrd/kernel SHA-256 entries."""

    def entry(guid: str, data: bytes) -> bytes:
        return _guid(guid) + struct.pack("<H", 50) + hashlib.sha256(data).digest()

    body = (
        entry("97d02dd8-bd20-4c94-aa78-e7714d36ab2a", append.encode() + b"\0")
        + entry("44baf731-3a2f-4bd7-9af1-41e29169781d", initrd)
        + entry("4de79437-abd2-427f-b835-d5b172d2045b", kernel)
    )
    table = _guid("9438d606-4f22-4cc9-b479-a793d411fd21") + struct.pack("<H", 18 + len(body))
    table += body
    table += bytes(-len(table) % 16)
    offset = HASH_TABLE_GPA & 0xFFF
    return bytes(offset) + table + bytes(4096 - offset - len(table))


def independent_digest(
    ovmf: bytes, vcpus: int, kernel_page: bytes | None = None, features: int = 1
) -> str:
    """The SNP launch digest from the ABI spec's PAGE_INFO chain (SEV-SNP ABI 8.17.2):
    ld' = SHA-384(ld || contents || u16 0x70 || type || imi || vmpl perms || gpa)."""
    ld = bytes(48)

    def update(page_type: int, gpa: int, contents: bytes) -> None:
        nonlocal ld
        ld = hashlib.sha384(
            ld + contents + struct.pack("<HBBBBBBQ", 0x70, page_type, 0, 0, 0, 0, 0, gpa)
        ).digest()

    base = (1 << 32) - len(ovmf)
    for offset in range(0, len(ovmf), 4096):
        update(1, base + offset, hashlib.sha384(ovmf[offset : offset + 4096]).digest())
    for gpa, size, kind in SECTIONS:
        if kind == SEC_MEM or (kind == KERNEL_HASHES and kernel_page is None):
            for page in range(0, size, 4096):
                update(3, gpa + page, bytes(48))
        elif kind == SECRETS:
            update(5, gpa, bytes(48))
        elif kind == CPUID:
            update(6, gpa, bytes(48))
        else:
            assert kernel_page is not None
            update(1, gpa, hashlib.sha384(kernel_page).digest())
    # The VMSA register state is sev-snp-measure's (QEMU's reset state); its chaining is ours.
    vmsa = VMSA(SevMode.SEV_SNP, RESET_EIP, CPU_SIGS["EPYC-v4"], features, VMMType.QEMU)
    for page in vmsa.pages(vcpus):
        update(2, VMSA_GPA, hashlib.sha384(page).digest())
    return ld.hex()


@pytest.fixture
def image(tmp_path: Path) -> dict[str, Path]:
    kernel, initrd = tmp_path / "vmlinuz", tmp_path / "initrd.img"
    kernel.write_bytes(b"a kernel image" * 100)
    initrd.write_bytes(b"an initrd with sealroom installed" * 50)
    return {"ovmf": make_ovmf(tmp_path / "OVMF.fd"), "kernel": kernel, "initrd": initrd}


def test_firmware_only_launch_matches_the_pin_the_library_and_the_spec(
    image: dict[str, Path],
) -> None:
    got = snp_launch_measurement(SnpLaunch(image["ovmf"], 2, "EPYC-v4"))
    assert got == PINNED and len(got) == 96
    ovmf = str(image["ovmf"])
    library = snp_calc_launch_digest(2, CPU_SIGS["EPYC-v4"], ovmf, "", "", "", 1, "")
    assert got == library.hex()
    assert got == independent_digest(image["ovmf"].read_bytes(), 2)


def test_direct_boot_launch_measures_kernel_initrd_and_command_line(
    image: dict[str, Path],
) -> None:
    launch = SnpLaunch(image["ovmf"], 4, "EPYC-v4", image["kernel"], image["initrd"], "quiet")
    page = _hashes_page(image["kernel"].read_bytes(), image["initrd"].read_bytes(), "quiet")
    assert snp_launch_measurement(launch) == independent_digest(image["ovmf"].read_bytes(), 4, page)


def test_every_input_changes_the_measurement(image: dict[str, Path], tmp_path: Path) -> None:
    base = SnpLaunch(image["ovmf"], 2, "EPYC-v4", image["kernel"], image["initrd"], "quiet")
    other_kernel = tmp_path / "vmlinuz2"
    other_kernel.write_bytes(image["kernel"].read_bytes() + b"\0")
    other_ovmf = make_ovmf(tmp_path / "OVMF2.fd", filler=b"ovmf")
    variants = [
        base,
        SnpLaunch(image["ovmf"], 3, "EPYC-v4", image["kernel"], image["initrd"], "quiet"),
        SnpLaunch(image["ovmf"], 2, "EPYC-Milan", image["kernel"], image["initrd"], "quiet"),
        SnpLaunch(image["ovmf"], 2, "EPYC-v4", other_kernel, image["initrd"], "quiet"),
        SnpLaunch(image["ovmf"], 2, "EPYC-v4", image["kernel"], image["ovmf"], "quiet"),
        SnpLaunch(image["ovmf"], 2, "EPYC-v4", image["kernel"], image["initrd"], "quiet debug"),
        SnpLaunch(image["ovmf"], 2, "EPYC-v4", image["kernel"], image["initrd"], None),
        SnpLaunch(other_ovmf, 2, "EPYC-v4", image["kernel"], image["initrd"], "quiet"),
        SnpLaunch(image["ovmf"], 2, "EPYC-v4", image["kernel"], image["initrd"], "quiet", "ec2"),
        SnpLaunch(
            image["ovmf"], 2, "EPYC-v4", image["kernel"], image["initrd"], "quiet", "QEMU", 0x5
        ),
    ]
    digests = [snp_launch_measurement(v) for v in variants]
    assert len(set(digests)) == len(digests)


def _refused(launch: SnpLaunch) -> str:
    with pytest.raises(LaunchError) as refused:
        snp_launch_measurement(launch)
    message = str(refused.value)
    assert "\n" not in message
    return message


def test_bad_inputs_are_refused_in_one_line(image: dict[str, Path], tmp_path: Path) -> None:
    ovmf, kernel = image["ovmf"], image["kernel"]
    assert "no such file" in _refused(SnpLaunch(tmp_path / "none.fd", 2, "EPYC-v4"))
    assert "unknown vCPU type 'EPYC-v9'" in _refused(SnpLaunch(ovmf, 2, "EPYC-v9"))
    assert "1 to 512 vCPUs" in _refused(SnpLaunch(ovmf, 0, "EPYC-v4"))
    assert "unknown VMM type 'kvm'" in _refused(SnpLaunch(ovmf, 2, "EPYC-v4", vmm_type="kvm"))
    assert "--initrd needs --kernel" in _refused(
        SnpLaunch(ovmf, 2, "EPYC-v4", initrd=image["initrd"])
    )
    assert "--append needs --kernel" in _refused(SnpLaunch(ovmf, 2, "EPYC-v4", append="quiet"))
    assert "kernel " in _refused(SnpLaunch(ovmf, 2, "EPYC-v4", tmp_path / "no-kernel"))
    plain = make_ovmf(tmp_path / "plain.fd", metadata=False)
    assert "no SEV metadata" in _refused(SnpLaunch(plain, 2, "EPYC-v4"))
    odd = tmp_path / "odd.fd"
    odd.write_bytes(ovmf.read_bytes()[:-100])
    assert "not a whole number of 4 KiB pages" in _refused(SnpLaunch(odd, 2, "EPYC-v4"))
    no_hashes = make_ovmf(tmp_path / "nohashes.fd", kernel_hashes=False)
    snp_launch_measurement(SnpLaunch(no_hashes, 2, "EPYC-v4"))  # firmware alone measures
    assert "cannot measure a kernel" in _refused(SnpLaunch(no_hashes, 2, "EPYC-v4", kernel))
    broken = bytearray(ovmf.read_bytes())
    broken[0x1000:0x1004] = b"XSEV"
    bad = tmp_path / "bad.fd"
    bad.write_bytes(bytes(broken))
    assert "Wrong SEV metadata signature" in _refused(SnpLaunch(bad, 2, "EPYC-v4"))
