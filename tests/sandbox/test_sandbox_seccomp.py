"""No network and no peeking: Landlock TCP rules, the seccomp socket filter, IPC scopes."""

from __future__ import annotations

import os
import platform
import signal
import socket
from collections.abc import Iterator

import pytest

from sealroom.sandbox import landlock_abi
from tests.sandbox.probes import run_probe

pytestmark = pytest.mark.skipif(
    landlock_abi() == 0, reason="this kernel has no Landlock (nothing to enforce here)"
)

FAMILIES = ("tcp", "udp", "inet6", "unix", "netlink", "packet", "raw")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback TCP listener the confined child will try to reach."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    try:
        yield server
    finally:
        server.close()


def _nobody_connected(server: socket.socket) -> bool:
    try:
        conn, _ = server.accept()
    except BlockingIOError:
        return True
    conn.close()
    return False


def test_no_socket_of_any_family_and_no_tcp_connect(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    result = run_probe({"probes": [["tcp_connect", str(port)], *(["socket", f] for f in FAMILIES)]})
    assert result["report"]["seccomp"] is True
    assert result["probes"] == ["PermissionError:13"] * (1 + len(FAMILIES))
    assert _nobody_connected(listener)


@pytest.mark.skipif(landlock_abi() < 4, reason="Landlock TCP rules need ABI 4")
def test_report_names_both_network_layers() -> None:
    result = run_probe({})
    assert result["report"]["network"] == "landlock-tcp+seccomp"


def test_seccomp_alone_stops_tcp_where_landlock_has_no_tcp_rules(
    listener: socket.socket,
) -> None:
    """An ABI-3 kernel (no TCP rules): the socket filter is what stops the connection."""
    port = listener.getsockname()[1]
    result = run_probe({"fake_abi": 3, "probes": [["tcp_connect", str(port)]]})
    assert result["report"]["network"] == "seccomp"
    assert result["probes"] == ["PermissionError:13"]
    assert _nobody_connected(listener)


def test_no_ptrace_and_no_signals_outside_the_room() -> None:
    parent = str(os.getpid())
    result = run_probe({"probes": [["ptrace", parent], ["signal", parent]]})
    assert result["probes"][0] == "PermissionError:1"  # seccomp: ptrace
    if landlock_abi() >= 6:
        assert result["probes"][1] == "PermissionError:1"  # Landlock signal scope


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the x32 syscall numbers are x86_64's")
def test_socket_through_the_x32_syscall_numbers_kills_the_room() -> None:
    run_probe({"probes": [["x32_socket", ""]]}, returncode=-signal.SIGSYS)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86_64 syscall numbers")
def test_namespaces_io_uring_and_memory_peeking_are_refused_threads_still_start() -> None:
    clone_newuser = 0x10000000
    result = run_probe(
        {
            "probes": [
                ["syscall", f"272:{clone_newuser}"],  # unshare(CLONE_NEWUSER)
                ["syscall", "425:8:0"],  # io_uring_setup(8, NULL)
                ["syscall", f"310:{os.getpid()}:0:0:0:0:0"],  # process_vm_readv(parent)
                ["syscall", "323:0"],  # userfaultfd
                ["start_thread", ""],
            ]
        }
    )
    assert result["probes"] == ["PermissionError:1"] * 4 + ["ok:2"]
