"""Landlock rules for a room: read-only and read-write path sets, no TCP, scoped IPC.

Two stacked Landlock layers (a thread may hold up to 16; each access must pass every layer):

1. the file-system layer, built with the PyPI ``landlock`` package (``landlock.Ruleset``);
2. a network-and-scope layer built here with raw syscalls, because that package only knows
   ``handled_access_fs``: TCP bind/connect (ABI >= 4) and the abstract-Unix-socket and signal
   scopes (ABI >= 6) need the longer ``landlock_ruleset_attr`` of the kernel's uapi header.

Landlock restricts only the calling thread and the threads and processes it starts afterwards,
so :func:`restrict` must run while the process has a single thread.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import landlock
from landlock import FSAccess

from sealroom.errors import SandboxError

# x86_64 (and aarch64/riscv: the Landlock calls share numbers on every 64-bit Linux arch).
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1 << 0

# include/uapi/linux/landlock.h
ACCESS_NET_BIND_TCP = 1 << 0  # ABI 4
ACCESS_NET_CONNECT_TCP = 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

# What a read-only grant allows: open and list, never execute (the room has no reason to
# exec a program; a library that tries gets EACCES).
READ_FILE = FSAccess.READ_FILE
READ_DIR = FSAccess.READ_FILE | FSAccess.READ_DIR
# What a read-write grant allows beneath a directory: regular files and folders only; no
# devices, fifos, sockets or symlinks, and no execute.
_WRITE_DIR_BASE = (
    READ_DIR
    | FSAccess.WRITE_FILE
    | FSAccess.REMOVE_DIR
    | FSAccess.REMOVE_FILE
    | FSAccess.MAKE_DIR
    | FSAccess.MAKE_REG
)


class _RulesetAttr(ctypes.Structure):
    """struct landlock_ruleset_attr, all three fields (the kernel reads ``size`` bytes)."""

    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, or 0 where Landlock is missing or disabled."""
    syscall = _libc().syscall
    syscall.restype = ctypes.c_long
    version = syscall(
        ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET),
        None,
        ctypes.c_size_t(0),
        ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION),
    )
    return max(int(version), 0)


def _handled_fs(abi: int) -> FSAccess:
    """Every file-system right this ABI knows: what is not handled is not restricted."""
    handled = FSAccess(0)
    for flag in FSAccess:
        handled |= flag
    if abi < 2:
        handled &= ~FSAccess.REFER
    if abi < 3:
        handled &= ~FSAccess.TRUNCATE
    if abi < 5:
        handled &= ~FSAccess.IOCTL_DEV
    return handled


def _write_dir(abi: int) -> FSAccess:
    # REFER lets files move between two granted folders (a library's temp-then-rename).
    rights = _WRITE_DIR_BASE | FSAccess.REFER | FSAccess.TRUNCATE
    return rights & _handled_fs(abi)


def _file_only(rights: FSAccess) -> FSAccess:
    """A rule on a regular file or device may carry only file rights (else EINVAL)."""
    return rights & (
        FSAccess.EXECUTE
        | FSAccess.WRITE_FILE
        | FSAccess.READ_FILE
        | FSAccess.TRUNCATE
        | FSAccess.IOCTL_DEV
    )


def _allow(ruleset: landlock.Ruleset, path: Path, rights: FSAccess) -> None:
    granted = rights if path.is_dir() else _file_only(rights)
    try:
        ruleset.allow(str(path), rules=granted)
    except OSError as exc:
        raise SandboxError(f"sandbox: cannot grant access to {path}: {exc.strerror}") from exc


def _filesystem_layer(
    abi: int,
    read_paths: tuple[Path, ...],
    write_paths: tuple[Path, ...],
    device_paths: tuple[Path, ...],
) -> landlock.Ruleset:
    ruleset = landlock.Ruleset(restrict_rules=_handled_fs(abi))
    for path in read_paths:
        _allow(ruleset, path, READ_DIR)
    for path in write_paths:
        _allow(ruleset, path, _write_dir(abi))
    # /dev/null and friends: read and write, and ioctl (isatty() on a device is an ioctl).
    device_rights = (
        FSAccess.READ_FILE | FSAccess.WRITE_FILE | FSAccess.IOCTL_DEV | FSAccess.TRUNCATE
    ) & _handled_fs(abi)
    for path in device_paths:
        _allow(ruleset, path, device_rights)
    return ruleset


def _network_layer(abi: int) -> int | None:
    """A ruleset fd that handles TCP and IPC scopes with no rule at all: everything denied."""
    attr = _RulesetAttr(
        handled_access_net=(ACCESS_NET_BIND_TCP | ACCESS_NET_CONNECT_TCP) if abi >= 4 else 0,
        scoped=(SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if abi >= 6 else 0,
    )
    if not (attr.handled_access_net or attr.scoped):
        return None
    # Older kernels reject a struct longer than they know (E2BIG): pass only what they read.
    size = ctypes.sizeof(attr) if abi >= 6 else 2 * ctypes.sizeof(ctypes.c_uint64)
    syscall = _libc().syscall
    syscall.restype = ctypes.c_long
    fd = syscall(
        ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET),
        ctypes.byref(attr),
        ctypes.c_size_t(size),
        ctypes.c_uint32(0),
    )
    if fd < 0:
        err = ctypes.get_errno()
        raise SandboxError(f"sandbox: landlock network ruleset refused: {os.strerror(err)}")
    return int(fd)


def _restrict_self(fd: int) -> None:
    syscall = _libc().syscall
    syscall.restype = ctypes.c_long
    if syscall(ctypes.c_long(SYS_LANDLOCK_RESTRICT_SELF), ctypes.c_int(fd), ctypes.c_uint32(0)):
        err = ctypes.get_errno()
        raise SandboxError(f"sandbox: landlock_restrict_self failed: {os.strerror(err)}")


def restrict(
    abi: int,
    read_paths: tuple[Path, ...],
    write_paths: tuple[Path, ...],
    device_paths: tuple[Path, ...],
) -> None:
    """Enforce both layers on this thread (irreversibly); sets no_new_privs on the way."""
    # The package judges success by ctypes' saved errno: clear what an earlier call left there.
    ctypes.set_errno(0)
    fs = _filesystem_layer(abi, read_paths, write_paths, device_paths)
    net = _network_layer(abi)
    try:
        fs.apply()  # the package sets PR_SET_NO_NEW_PRIVS, then restricts
        if net is not None:
            _restrict_self(net)
    except landlock.LandlockError as exc:
        raise SandboxError(f"sandbox: landlock refused the ruleset: {exc}") from exc
    finally:
        # Ruleset fds left open would only let the room edit copies nobody enforces; close them.
        os.close(fs._fd)
        if net is not None:
            os.close(net)
