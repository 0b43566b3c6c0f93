"""Drop every Linux capability of a room that was started as root.

Landlock and seccomp hold for root too, but capabilities would still let a root room raise
its own hard rlimits (CAP_SYS_RESOURCE) or regain full power by executing an in-memory
binary. After :func:`drop_capabilities` the room is uid 0 without a single capability: the
bounding set is empty (so no later exec brings them back), ambient, effective, permitted
and inheritable sets are empty. A room started as another user has none to drop.
"""

from __future__ import annotations

import ctypes
import os

from sealroom.errors import SandboxError

PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
CAP_SETPCAP = 8
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def status_field(name: str) -> str | None:
    """The first word of ``name:`` in /proc/self/status (e.g. CapBnd, VmData), or None."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(name + ":"):
                return line.split()[1]
    return None


def _status_hex(name: str) -> int:
    value = status_field(name)
    return int(value, 16) if value is not None else 0


def _fail(what: str) -> SandboxError:
    err = ctypes.get_errno()
    return SandboxError(f"sandbox: cannot drop capabilities ({what}): {os.strerror(err)}")


def drop_capabilities() -> int:
    """Empty every capability set of this process; returns how many it held (effective)."""
    held = _status_hex("CapEff")
    bounding = _status_hex("CapBnd")
    if not held and not bounding:
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    if held & (1 << CAP_SETPCAP):
        for cap in range(64):  # every bit set in CapBnd
            if bounding & (1 << cap) and libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise _fail(f"bounding set, capability {cap}")
    if libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0:
        raise _fail("ambient set")
    header = _CapHeader(version=_LINUX_CAPABILITY_VERSION_3, pid=0)
    data = (_CapData * 2)()  # all zero: two 32-bit halves of the 64-bit sets
    if libc.capset(ctypes.byref(header), data) != 0:
        raise _fail("capset")
    return bin(held).count("1")
