"""A seccomp filter for a room: no sockets of any family, no peeking at other processes.

Landlock's TCP rules stop TCP bind/connect; they say nothing about UDP, raw, Unix, netlink or
packet sockets. The room talks to its operator over the stdin/stdout pipes it was started
with, so it needs no socket at all: ``socket()`` fails with EACCES (Python: PermissionError)
for every family. torch, onnxruntime, onnx2torch, opacus and monai import and train without
one (tests/sandbox/test_sandbox_runtime.py). ``socketpair()`` stays allowed: it can only join
two ends inside the room, and Python's ``multiprocessing``/asyncio self-pipes use it.

Everything else not listed is allowed (default ALLOW): this is a deny list on top of Landlock,
not a complete syscall allow-list (which torch's native code makes brittle).
"""

from __future__ import annotations

import errno
from collections.abc import Iterable

from sealroom.errors import SandboxError

# Calls that fail with EACCES, as Landlock's own refusals do. execve: Landlock already denies
# executing any file (no EXECUTE right is granted), this also closes fexecve() of a memfd.
DENIED_EACCES: tuple[str, ...] = ("socket", "execve", "execveat")

# Calls that fail with EPERM: reading or writing another process's memory, io_uring (its
# IORING_OP_SOCKET/CONNECT would bypass the socket rule), new namespaces (attack surface for
# a root room), and the privileged calls a root-run room could otherwise still make.
DENIED_EPERM: tuple[str, ...] = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "open_by_handle_at",
    "name_to_handle_at",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "iopl",
    "ioperm",
    "reboot",
    "swapon",
    "swapoff",
    "syslog",
    "acct",
    "settimeofday",
    "clock_settime",
    "sethostname",
    "setdomainname",
    "fanotify_init",
)

# clone() flags that make a new namespace: refused, threads and forks still work.
_CLONE_NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)


def seccomp_available() -> bool:
    """Whether libseccomp (Debian's libseccomp.so.2) loads through pyseccomp."""
    try:
        import pyseccomp  # noqa: F401 (loading it opens libseccomp)
    except (ImportError, OSError):
        return False
    return True


def load_filter(extra_denied: Iterable[str] = ()) -> None:
    """Install the filter on every thread of this process (irreversible)."""
    try:
        import pyseccomp as seccomp
    except (ImportError, OSError) as exc:
        raise SandboxError(f"sandbox: libseccomp is not available: {exc}") from exc
    filt = seccomp.SyscallFilter(seccomp.ALLOW)
    try:
        for name in DENIED_EACCES:
            filt.add_rule(seccomp.ERRNO(errno.EACCES), name)
        for name in (*DENIED_EPERM, *extra_denied):
            filt.add_rule(seccomp.ERRNO(errno.EPERM), name)
        for flag in _CLONE_NAMESPACE_FLAGS:
            filt.add_rule(
                seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag)
            )
        # clone3 passes its flags in memory a filter cannot read: say "not implemented" and
        # glibc falls back to clone(), whose flags the rules above do see.
        filt.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
        filt.set_attr(seccomp.Attr.CTL_TSYNC, 1)
        filt.load()  # libseccomp sets PR_SET_NO_NEW_PRIVS first (CTL_NNP defaults to on)
    except (OSError, ValueError) as exc:
        raise SandboxError(f"sandbox: seccomp filter refused: {exc}") from exc
