"""The SEV-SNP launch measurement a release policy should allow, computed from the room image.

A provider rebuilds the room image (OVMF, kernel, initrd, command line) itself and computes
the digest the AMD secure processor will report for it, so it pins a room it has checked
rather than a number the operator sent. The computation is ``sev-snp-measure``'s
(``sevsnpmeasure.guest.snp_calc_launch_digest``: the SNP launch-update chain of SHA-384
PAGE_INFO digests over the OVMF pages, its metadata sections, the kernel hashes page and
one VMSA per vCPU); this module validates the inputs first, so that a wrong file is one
line naming it instead of a stack trace or, worse, a digest of the wrong thing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sealroom.errors import AttestationError

MAX_OVMF_BYTES = 64 << 20
MAX_VCPUS = 512
VMM_TYPES = ("QEMU", "ec2", "gce")
PAGE = 4096


class LaunchError(AttestationError):
    """The inputs of a launch measurement are missing, malformed or inconsistent."""


@dataclass(frozen=True)
class SnpLaunch:
    """What the VMM launches: firmware, optional direct-boot kernel, vCPUs, guest features."""

    ovmf: Path
    vcpus: int
    vcpu_type: str
    kernel: Path | None = None
    initrd: Path | None = None
    append: str | None = None
    vmm_type: str = "QEMU"
    guest_features: int = 0x1  # SEV_FEATURES of the VMSAs; 0x1 (SNPActive) as QEMU sets it


def vcpu_types() -> list[str]:
    from sevsnpmeasure.vcpu_types import CPU_SIGS

    return list(CPU_SIGS)


def _check_file(path: Path, what: str, limit: int | None = None) -> None:
    if not path.is_file():
        raise LaunchError(f"{what} {path}: no such file")
    if limit is not None and path.stat().st_size > limit:
        raise LaunchError(f"{what} {path}: larger than {limit >> 20} MiB; not a firmware image")


def _check_inputs(launch: SnpLaunch) -> None:
    if not 1 <= launch.vcpus <= MAX_VCPUS:
        raise LaunchError(f"--vcpus {launch.vcpus}: a guest has 1 to {MAX_VCPUS} vCPUs")
    if launch.vcpu_type not in vcpu_types():
        raise LaunchError(
            f"unknown vCPU type {launch.vcpu_type!r} (known: {', '.join(vcpu_types())})"
        )
    if launch.vmm_type not in VMM_TYPES:
        raise LaunchError(f"unknown VMM type {launch.vmm_type!r} (known: {', '.join(VMM_TYPES)})")
    if not 0 <= launch.guest_features < 1 << 64:
        raise LaunchError(f"--guest-features {launch.guest_features:#x}: not a 64-bit value")
    if launch.kernel is None and (launch.initrd is not None or launch.append is not None):
        given = "--initrd" if launch.initrd is not None else "--append"
        raise LaunchError(f"{given} needs --kernel: the initrd and command line are measured "
                          "only with a direct-boot kernel")  # fmt: skip
    _check_file(launch.ovmf, "OVMF", MAX_OVMF_BYTES)
    if launch.ovmf.stat().st_size % PAGE or launch.ovmf.stat().st_size == 0:
        raise LaunchError(f"OVMF {launch.ovmf}: size is not a whole number of 4 KiB pages")
    for path, what in ((launch.kernel, "kernel"), (launch.initrd, "initrd")):
        if path is not None:
            _check_file(path, what)


def _check_ovmf(launch: SnpLaunch) -> None:
    """Refuse firmware that sev-snp-measure would measure as if it were something else."""
    from sevsnpmeasure.ovmf import OVMF, SectionType

    try:
        ovmf = OVMF(str(launch.ovmf))
    except (RuntimeError, ValueError) as exc:  # bad SEV metadata header, truncated table
        raise LaunchError(f"OVMF {launch.ovmf}: {exc}") from None
    if not ovmf.metadata_items():
        raise LaunchError(
            f"OVMF {launch.ovmf}: no SEV metadata in its footer table; not a firmware built "
            "for SEV-SNP guests (e.g. edk2's OvmfPkg/AmdSev)"
        )
    try:
        ovmf.sev_es_reset_eip()
    except RuntimeError:
        raise LaunchError(
            f"OVMF {launch.ovmf}: no SEV-ES reset block in its footer table"
        ) from None
    if launch.kernel is not None and not (
        ovmf.has_metadata_section(SectionType.SNP_KERNEL_HASHES)
        and ovmf.is_sev_hashes_table_supported()
    ):
        raise LaunchError(
            f"OVMF {launch.ovmf}: cannot measure a kernel (no SNP kernel hashes section); "
            "build OvmfPkg/AmdSev for direct kernel boot"
        )


def snp_launch_measurement(launch: SnpLaunch) -> str:
    """The 48-byte SEV-SNP launch digest (96 hex digits) of this launch; LaunchError if the
    inputs cannot be measured."""
    from sevsnpmeasure.guest import snp_calc_launch_digest
    from sevsnpmeasure.vcpu_types import CPU_SIGS
    from sevsnpmeasure.vmm_types import VMMType

    _check_inputs(launch)
    _check_ovmf(launch)
    try:
        digest = snp_calc_launch_digest(
            launch.vcpus,
            CPU_SIGS[launch.vcpu_type],
            str(launch.ovmf),
            str(launch.kernel) if launch.kernel is not None else "",
            str(launch.initrd) if launch.initrd is not None else "",
            launch.append if launch.append is not None else "",
            launch.guest_features,
            "",
            VMMType[launch.vmm_type],
        )
    except (RuntimeError, ValueError, AssertionError, OSError) as exc:
        raise LaunchError(f"cannot measure the launch of {launch.ovmf}: {exc}") from None
    return bytes(digest).hex()


def _sha256(path: Path | None) -> str | None:
    return None if path is None else hashlib.sha256(path.read_bytes()).hexdigest()


def launch_report(launch: SnpLaunch, measurement: str) -> dict[str, Any]:
    """What was measured, for the JSON output: a provider can record the exact inputs."""
    return {
        "tee_type": "sev-snp",
        "measurement": measurement,
        "ovmf": str(launch.ovmf),
        "ovmf_sha256": _sha256(launch.ovmf),
        "kernel_sha256": _sha256(launch.kernel),
        "initrd_sha256": _sha256(launch.initrd),
        "append": launch.append,
        "vcpus": launch.vcpus,
        "vcpu_type": launch.vcpu_type,
        "vmm_type": launch.vmm_type,
        "guest_features": f"{launch.guest_features:#x}",
    }
