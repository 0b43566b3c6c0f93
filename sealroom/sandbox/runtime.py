"""What a confined Python needs around it: runtime paths, a scrubbed environment, an empty cwd.

The path set was found empirically (strace of ``import torch, onnx, onnxruntime, onnx2torch,
opacus, monai`` and a training step under the sandbox, see docs/sandbox.md); every entry is
read-only for the room.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import sealroom
from sealroom.errors import SandboxError

# Shared libraries, Python's own data (zoneinfo, locale), and the few /etc files that libc and
# numpy/torch read on start. Not /etc as a whole: it may hold host secrets.
SYSTEM_READ_PATHS: tuple[str, ...] = (
    "/usr/lib",
    "/usr/lib64",
    "/usr/local/lib",
    "/lib",
    "/lib64",
    "/usr/share/zoneinfo",
    "/usr/share/locale",
    "/usr/lib/locale",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/passwd",  # getpwuid() when HOME is unset or a library asks for the user name
    "/etc/group",
)

# The process's own /proc entry (/proc/self resolves to /proc/<pid> when the rule is made, so
# this grants the room its own entry only), CPU topology for OpenMP and torch's thread pools.
KERNEL_READ_PATHS: tuple[str, ...] = (
    "/proc/self",
    "/proc/cpuinfo",
    "/proc/meminfo",
    "/proc/stat",
    "/sys/devices/system/cpu",
    "/sys/fs/cgroup/cpu.max",
    # Global allocator settings torch and numpy consult for large buffers (no host secrets).
    "/sys/kernel/mm/transparent_hugepage/enabled",
    "/proc/sys/vm/overcommit_memory",
)

# Character devices the room may open read-write (writes to /dev/null are discarded).
DEVICE_PATHS: tuple[str, ...] = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")

# The only variables a launcher may pass through: thread counts, the module path, devices.
# Anything else (SEALROOM_HOME, tokens, passphrases, proxies...) never reaches the room.
PASSABLE_VARIABLES: frozenset[str] = frozenset(
    {
        "PYTHONPATH",
        "PYTHONHASHSEED",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "CUDA_VISIBLE_DEVICES",
        "CUBLAS_WORKSPACE_CONFIG",
    }
)


def _existing(paths: Iterable[str | Path]) -> list[Path]:
    return [Path(p) for p in paths if os.path.exists(p)]


def _dedupe(paths: Iterable[Path]) -> tuple[Path, ...]:
    seen: dict[Path, None] = {}
    for path in paths:
        seen.setdefault(path.resolve(), None)
    return tuple(seen)


def _python_paths() -> list[Path]:
    """sys.prefix and friends, and every sys.path entry, never the current folder.

    A sys.path entry that merely holds the sealroom package (a source checkout, an editable
    install) is replaced by the package folder: the checkout may also hold a workspace
    (``./.sealroom``), which the room must not read.
    """
    package = Path(sealroom.__file__).resolve().parent
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths = [Path(p) for p in sorted(prefixes)]
    cwd = Path.cwd().resolve()
    for entry in sys.path:
        if not entry or not os.path.exists(entry):
            continue
        path = Path(entry).resolve()
        if path == cwd:
            continue
        if path == package.parent and "site-packages" not in path.parts:
            continue  # the checkout: only its package is granted (below)
        paths.append(path)
    paths.append(package)
    return paths


def python_runtime_paths() -> tuple[Path, ...]:
    """Read-only paths a confined Python with torch, onnx, opacus and monai needs to run."""
    return _dedupe([*_python_paths(), *_existing(SYSTEM_READ_PATHS), *_existing(KERNEL_READ_PATHS)])


def device_paths() -> tuple[Path, ...]:
    """The harmless character devices the room may open read-write."""
    return tuple(_existing(DEVICE_PATHS))


def scrubbed_environment(workdir: Path, keep: Mapping[str, str] | None = None) -> dict[str, str]:
    """The room's whole environment: a fixed minimum plus the passable variables in ``keep``.

    No PATH (the room executes nothing) and nothing of the operator's environment; HOME and
    TMPDIR point at the room's private folder so a library's cache or temp file lands there.
    """
    env = {
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
        "MPLCONFIGDIR": str(workdir),
    }
    for name, value in (keep or {}).items():
        if name not in PASSABLE_VARIABLES:
            raise SandboxError(
                f"sandbox: environment variable {name} may not be passed to the room "
                f"(passable: {', '.join(sorted(PASSABLE_VARIABLES))})"
            )
        env[name] = value
    return env


def private_workdir(parent: Path | None = None) -> Path:
    """A new empty 0700 folder for the room's cwd, HOME and TMPDIR; the launcher removes it."""
    return Path(tempfile.mkdtemp(prefix="sealroom-room-", dir=parent))
