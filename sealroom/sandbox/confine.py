"""confine(): turn the calling room process into a sandboxed one, irreversibly.

Order matters: every check that can refuse runs first (single thread, Landlock present, paths
exist, no secret reachable), then rlimits, then Landlock (file system, TCP, IPC scopes), then
the capabilities are dropped, then the seccomp filter. A process that gets a report back is
confined; one that gets a SandboxError must exit without touching any data.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

from sealroom.errors import SandboxError
from sealroom.sandbox import landlock_rules, seccomp_filter
from sealroom.sandbox.privileges import drop_capabilities, status_field
from sealroom.sandbox.runtime import device_paths


@dataclass(frozen=True)
class SandboxPolicy:
    """What a room may touch. Paths must exist; folders are granted with everything beneath."""

    read_paths: tuple[Path, ...]  # read-only: runtime paths, sealed packages, the pipeline file
    write_paths: tuple[Path, ...]  # read-write: the staging folder, the private workdir
    max_memory_bytes: int | None = None  # RLIMIT_DATA (see docs/sandbox.md for why not AS)
    max_processes: int | None = None  # RLIMIT_NPROC (per user; not enforced for root)
    max_file_bytes: int | None = None  # RLIMIT_FSIZE: a bigger write fails with EFBIG
    max_open_files: int | None = None  # RLIMIT_NOFILE
    allow_unsandboxed: bool = False  # the operator's explicit flag for a kernel without Landlock
    # Paths that must stay unreachable (the workspace's keys, kms.db...): confine refuses a
    # policy that grants one of them or a folder above one.
    secret_paths: tuple[Path, ...] = ()


@dataclass(frozen=True)
class SandboxReport:
    """What confine() enforced, for the run's receipt (``kind`` is what the receipt prints)."""

    kind: str  # "landlock-abi7+seccomp", or "none" when the file system is not confined
    landlock_abi: int  # 0: no Landlock
    network: str  # "landlock-tcp+seccomp", "seccomp" or "none"
    seccomp: bool
    rlimits: dict[str, int] = field(default_factory=dict)
    capabilities_dropped: int = 0  # how many a root-started room held before confine()
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "landlock_abi": self.landlock_abi,
            "network": self.network,
            "seccomp": self.seccomp,
            "rlimits": dict(self.rlimits),
            "capabilities_dropped": self.capabilities_dropped,
            "seconds": round(self.seconds, 4),
        }


def _thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def _resolved(paths: tuple[Path, ...], role: str) -> tuple[Path, ...]:
    out = []
    for path in paths:
        if not os.path.exists(path):
            raise SandboxError(f"sandbox: {role} path {path} does not exist")
        out.append(Path(path).resolve())
    return tuple(out)


def _check_secrets(granted: tuple[Path, ...], secrets: tuple[Path, ...]) -> None:
    for secret in secrets:
        target = Path(secret).resolve()
        for path in granted:
            if target == path or path in target.parents:
                raise SandboxError(
                    f"sandbox: granted path {path} would expose the protected path {target}"
                )


def _set_limit(limits: dict[str, int], name: str, which: int, value: int | None) -> None:
    if value is None:
        return
    if value < 0:
        raise SandboxError(f"sandbox: {name} must not be negative (got {value})")
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    # soft == hard: the room can lower its limits, never raise them again.
    resource.setrlimit(which, (value, value))
    limits[name] = value


def _apply_rlimits(policy: SandboxPolicy) -> dict[str, int]:
    limits: dict[str, int] = {}
    _set_limit(limits, "core", resource.RLIMIT_CORE, 0)  # a crash leaves no memory image
    # RLIMIT_DATA, not RLIMIT_AS: torch, onnxruntime and CUDA reserve gigabytes of address space
    # they never touch (4.2 GB of VmSize for a 1.1 GB VmData after importing the stack).
    _set_limit(limits, "data", resource.RLIMIT_DATA, policy.max_memory_bytes)
    _set_limit(limits, "nproc", resource.RLIMIT_NPROC, policy.max_processes)
    _set_limit(limits, "fsize", resource.RLIMIT_FSIZE, policy.max_file_bytes)
    _set_limit(limits, "nofile", resource.RLIMIT_NOFILE, policy.max_open_files)
    return limits


def data_segment_bytes() -> int:
    """This process's VmData (private writable memory, reserved or touched) in bytes."""
    kib = status_field("VmData")
    if kib is None:
        raise SandboxError("sandbox: /proc/self/status has no VmData line")
    return int(kib) * 1024


def limit_memory_growth(extra_bytes: int) -> int:
    """Cap RLIMIT_DATA at the current data segment plus ``extra_bytes``; returns the limit.

    Called once the room's libraries are imported: some reserve address space they never
    touch (rego-cpp's allocator maps 256 GiB read-write), so an absolute RLIMIT_DATA would
    refuse the runtime itself; the contract's memory limit bounds what the room adds on top.
    Lowering is always allowed; with capabilities dropped it cannot be raised again.
    """
    limits: dict[str, int] = {}
    _set_limit(limits, "data", resource.RLIMIT_DATA, data_segment_bytes() + extra_bytes)
    return limits["data"]


def confine(policy: SandboxPolicy) -> SandboxReport:
    """Confine this process: call it in the room after reading the request, before any import
    that starts threads (torch does) and before touching data. Irreversible.
    """
    started = time.perf_counter()
    threads = _thread_count()
    if threads != 1:
        # Landlock binds only the calling thread (and what it starts later): a thread that
        # already runs would stay free.
        raise SandboxError(
            f"sandbox: confine() must run before any thread starts (this process has {threads})"
        )
    read = _resolved(policy.read_paths, "read")
    write = _resolved(policy.write_paths, "write")
    _check_secrets(read + write, policy.secret_paths)
    abi = landlock_rules.landlock_abi()
    has_seccomp = seccomp_filter.seccomp_available()
    if abi == 0 and not policy.allow_unsandboxed:
        raise SandboxError(
            "sandbox: this kernel has no Landlock; refusing to run the room unconfined "
            "(the operator may allow it explicitly, and the receipt then says sandbox: none)"
        )
    if not has_seccomp and not policy.allow_unsandboxed:
        raise SandboxError("sandbox: libseccomp (libseccomp.so.2) is not available")
    limits = _apply_rlimits(policy)
    if abi:
        landlock_rules.restrict(abi, read, write, device_paths())
    dropped = drop_capabilities()  # after the rlimits: root could otherwise raise them again
    if has_seccomp:
        seccomp_filter.load_filter()
    if abi >= 4:
        network = "landlock-tcp+seccomp" if has_seccomp else "landlock-tcp"
    else:
        network = "seccomp" if has_seccomp else "none"
    kind = f"landlock-abi{abi}" + ("+seccomp" if has_seccomp else "") if abi else "none"
    return SandboxReport(
        kind=kind,
        landlock_abi=abi,
        network=network,
        seccomp=has_seccomp,
        rlimits=limits,
        capabilities_dropped=dropped,
        seconds=time.perf_counter() - started,
    )
